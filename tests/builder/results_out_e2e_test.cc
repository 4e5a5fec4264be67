// Results out of `kiln build`: `--output SRC:DESTDIR` (files of the result
// into a host directory). The real kiln binary, runc and the overlayfs
// store. Needs root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tests/support/kiln_output.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kiln {
namespace {

using ::testing::AllOf;
using testing::got_id;
using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::run_process;

void write_file(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string random_bytes(std::size_t n) {
  std::mt19937 gen(42);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(gen());
  return out;
}

class ResultsOutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ProcessResult made =
        run_process({testing::source_dir() + "/scripts/make-base-image", home_.path() + "/layout/busybox"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    payload_ = random_bytes(300000);
    write_file(home_.path() + "/context/payload.bin", payload_);
  }

  ProcessResult build(const std::string& spec_text, std::vector<std::string> flags) {
    write_file(home_.path() + "/build.spec", spec_text);
    std::vector<std::string> argv = {"/usr/bin/env", "KILN_HOME=" + home_.path(), KILN_BINARY, "build",
                                     "-f",           home_.path() + "/build.spec"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(home_.path() + "/context");
    return run_process(argv);
  }

  std::string busybox_alias() const { return "busybox=oci:" + home_.path() + "/layout/busybox:latest"; }

  testing::TempDir home_{"kiln-results-out-e2e", "/var/tmp"};
  std::string payload_;
};

const char* kAppSpec = R"(((from busybox)
 (copy (src payload.bin) (dst /app/data/payload.bin))
 (run (shell "mkdir -p /app/bin && printf '#!/bin/sh\necho tool\n' > /app/bin/tool && chmod 0750 /app/bin/tool && ln -s tool /app/bin/current && ln -s /etc/passwd /app/passwd-link && rm /bin/vi"))
 (env GREETING hello)
 (workdir /app))
)";

TEST_F(ResultsOutTest, OutputCopiesFilesDirectoriesAndSymlinksOfTheResult) {
  std::string out = home_.path() + "/out";
  ProcessResult r = build(kAppSpec, {"--image-alias", busybox_alias(), "--output", "/app:" + out + "/app",
                                     "--output", "/app/data/payload.bin:" + out + "/single", "--output",
                                     "/app/passwd-link:" + out + "/followed"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_NE(got_id(r), "");
  EXPECT_THAT(r.err, HasSubstr("kiln: output /app -> " + out + "/app: 6 entries"));
  // Byte-identical files; the run step's mode and symlinks kept.
  EXPECT_EQ(read_bytes(out + "/app/data/payload.bin"), payload_);
  EXPECT_EQ(read_bytes(out + "/single/payload.bin"), payload_);
  EXPECT_EQ(read_bytes(out + "/app/bin/tool"), "#!/bin/sh\necho tool\n");
  struct stat st {};
  ASSERT_EQ(::stat((out + "/app/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(std::filesystem::read_symlink(out + "/app/bin/current"), "tool");
  // An absolute symlink inside the tree is copied as a link, never followed...
  EXPECT_EQ(std::filesystem::read_symlink(out + "/app/passwd-link"), "/etc/passwd");
  // ...and a SRC that is one is followed inside the result, not on the host.
  EXPECT_THAT(read_bytes(out + "/followed/passwd-link"), HasSubstr("nobody:"));
  EXPECT_FALSE(std::filesystem::is_symlink(out + "/followed/passwd-link"));
}

TEST_F(ResultsOutTest, AMissingOutputSourceFailsClearlyAfterTheBuild) {
  std::string out = home_.path() + "/out";
  ProcessResult bad_flag = build(kAppSpec, {"--image-alias", busybox_alias(), "--output", "/app"});
  EXPECT_EQ(bad_flag.exit_code, 2) << bad_flag.err;
  EXPECT_THAT(bad_flag.err, HasSubstr("expected SRC:DESTDIR"));
  ProcessResult missing = build(kAppSpec, {"--image-alias", busybox_alias(), "--output", "/nope/x:" + out});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(got_id(missing), "");  // the build itself succeeded
  EXPECT_THAT(missing.err, HasSubstr("--output source /nope/x does not exist in the result"));
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace kiln
