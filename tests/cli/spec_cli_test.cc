// The spec tools as a user runs them: `kiln spec check|fmt|ids`, `kiln dockerfile`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/process.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using kiln::testing::run_process;
using kiln::testing::source_dir;
using ::testing::HasSubstr;
using ::testing::Not;

std::string example(const std::string& name) {
  return source_dir() + "/examples/" + name;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SpecCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("spec_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  fs::path dir_;
};

TEST_F(SpecCli, HelpListsTheCommands) {
  auto r = run_process({KILN_BINARY, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("spec"));
  EXPECT_THAT(r.out, HasSubstr("dockerfile"));
  EXPECT_THAT(r.out, HasSubstr("--log-level"));
}

TEST_F(SpecCli, UsageErrorsExitTwo) {
  EXPECT_EQ(run_process({KILN_BINARY, "no-such-command"}).exit_code, 2);
  EXPECT_EQ(run_process({KILN_BINARY}).exit_code, 2);
  auto bad_level = run_process({KILN_BINARY, "--log-level", "loud", "spec", "check", example("hello.spec")});
  EXPECT_EQ(bad_level.exit_code, 2);
  EXPECT_THAT(bad_level.err, HasSubstr("unknown log level \"loud\""));
}

TEST_F(SpecCli, CheckAcceptsTheExamples) {
  std::vector<std::string> argv = {KILN_BINARY, "spec", "check"};
  for (const auto& entry : fs::directory_iterator(source_dir() + "/examples"))
    if (entry.path().extension() == ".spec") argv.push_back(entry.path().string());
  ASSERT_GE(argv.size(), 6u) << "examples/ should hold at least three specs";
  auto r = run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(std::to_string(argv.size() - 3) + " specs ok"));
}

TEST_F(SpecCli, CheckReportsFileLineAndColumn) {
  std::string good = write("good.spec", "((from busybox)\n (run (shell \"true\")))\n");
  std::string bad = write("bad.spec", "((from busybox)\n (rnu (shell \"true\")))\n");
  auto r = run_process({KILN_BINARY, "spec", "check", good, bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(bad + ":2:2:"));
  EXPECT_THAT(r.err, HasSubstr("rnu"));
  EXPECT_THAT(r.err, HasSubstr("1 of 2 specs have errors"));
  EXPECT_THAT(r.err, Not(HasSubstr(good + ":")));
}

TEST_F(SpecCli, FmtPrintsCanonicalForm) {
  std::string messy = write("messy.spec", "( (from   busybox) ; base\n (run (shell \"echo hi\") ) )");
  auto r = run_process({KILN_BINARY, "spec", "fmt", messy});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "((from busybox)\n (run (shell \"echo hi\"))\n)\n");

  EXPECT_EQ(run_process({KILN_BINARY, "spec", "fmt", "--check", messy}).exit_code, 1);
  std::string canonical = write("canonical.spec", r.out);
  EXPECT_EQ(run_process({KILN_BINARY, "spec", "fmt", "--check", canonical}).exit_code, 0);

  EXPECT_EQ(run_process({KILN_BINARY, "spec", "fmt", "--write", messy}).exit_code, 0);
  EXPECT_EQ(read(messy), r.out);
}

TEST_F(SpecCli, ExamplesAreCanonical) {
  for (const auto& entry : fs::directory_iterator(source_dir() + "/examples")) {
    if (entry.path().extension() != ".spec") continue;
    auto r = run_process({KILN_BINARY, "spec", "fmt", "--check", entry.path().string()});
    EXPECT_EQ(r.exit_code, 0) << entry.path() << ": " << r.err;
  }
}

TEST_F(SpecCli, DockerfileConvertsMultiStage) {
  auto plain = run_process({KILN_BINARY, "dockerfile", "-f", example("multistage.spec")});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_THAT(plain.out, HasSubstr("FROM busybox as "));
  EXPECT_THAT(plain.out, HasSubstr("COPY --from="));

  auto spec = write("cache.spec",
                    "((from busybox)\n (run (cache (downloads (target /var/cache/dl))) (shell \"ls\"))\n)\n");
  auto without = run_process({KILN_BINARY, "dockerfile", "-f", spec});
  auto with = run_process({KILN_BINARY, "dockerfile", "-f", spec, "--buildkit"});
  EXPECT_EQ(without.out, "FROM busybox\nRUN ls\n");
  EXPECT_EQ(with.out, "FROM busybox\nRUN --mount=type=cache,id=downloads,target=/var/cache/dl,uid=0 ls\n");
}

// Splits `kiln spec ids` output into its id column.
std::vector<std::string> id_column(const std::string& out) {
  std::vector<std::string> ids;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) ids.push_back(line.substr(0, line.find(' ')));
  return ids;
}

TEST_F(SpecCli, IdsAreStableAndOnlyChangeFromTheEditedCopyOn) {
  auto first = run_process({KILN_BINARY, "spec", "ids", "-f", example("hello.spec"), example("context")});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto again = run_process({KILN_BINARY, "spec", "ids", "-f", example("hello.spec"), example("context")});
  EXPECT_EQ(first.out, again.out);
  auto ids = id_column(first.out);
  ASSERT_EQ(ids.size(), 5u) << first.out;  // from, run, copy, run, run
  for (const auto& id : ids) EXPECT_EQ(id.size(), 64u) << id;
  EXPECT_THAT(first.out, HasSubstr("  (from busybox)\n"));

  fs::copy(example("context"), dir_ / "context", fs::copy_options::recursive);
  std::ofstream(dir_ / "context" / "greeting.txt", std::ios::app) << "one more line\n";
  auto edited =
      run_process({KILN_BINARY, "spec", "ids", "-f", example("hello.spec"), (dir_ / "context").string()});
  ASSERT_EQ(edited.exit_code, 0) << edited.err;
  auto edited_ids = id_column(edited.out);
  ASSERT_EQ(edited_ids.size(), ids.size());
  EXPECT_EQ(edited_ids[0], ids[0]);
  EXPECT_EQ(edited_ids[1], ids[1]);
  for (std::size_t i = 2; i < ids.size(); ++i) EXPECT_NE(edited_ids[i], ids[i]) << "step " << i;
}

TEST_F(SpecCli, IdsFromAManifestFileMatchTheDirectory) {
  std::string manifest = (dir_ / "context.manifest").string();
  auto written = run_process({KILN_BINARY, "spec", "manifest", example("context"), "-o", manifest});
  ASSERT_EQ(written.exit_code, 0) << written.err;
  auto from_dir = run_process({KILN_BINARY, "spec", "ids", "-f", example("hello.spec"), example("context")});
  auto from_manifest = run_process({KILN_BINARY, "spec", "ids", "-f", example("hello.spec"), manifest});
  EXPECT_EQ(from_manifest.exit_code, 0) << from_manifest.err;
  EXPECT_EQ(from_manifest.out, from_dir.out);

  std::string junk = write("junk.manifest", "not a manifest");
  auto bad = run_process({KILN_BINARY, "spec", "ids", "-f", example("hello.spec"), junk});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("neither a directory nor a context manifest"));
}

TEST_F(SpecCli, IdsJsonListsEveryStep) {
  auto r = run_process(
      {KILN_BINARY, "spec", "ids", "--json", "-f", example("multistage.spec"), example("context")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto text = run_process({KILN_BINARY, "spec", "ids", "-f", example("multistage.spec"), example("context")});
  auto ids = id_column(text.out);
  // One object per step, in the text output's order, with the stage of child builds.
  for (const auto& id : ids) EXPECT_THAT(r.out, HasSubstr("\"id\": \"" + id + "\""));
  EXPECT_THAT(r.out, HasSubstr("\"kind\": \"copy\""));
  EXPECT_THAT(r.out, HasSubstr("\"stage\": \"report\""));
  EXPECT_THAT(r.out, HasSubstr("\"parent\": null"));
}

TEST_F(SpecCli, IdsNeedAContextForContextCopies) {
  auto r = run_process({KILN_BINARY, "spec", "ids", "-f", example("hello.spec")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("hello.spec:"));
  EXPECT_THAT(r.err, HasSubstr("context"));
  EXPECT_EQ(r.out, "");

  std::string no_copy = write("no-copy.spec", "((from busybox)\n (run (shell \"true\"))\n)\n");
  auto ok = run_process({KILN_BINARY, "spec", "ids", "-f", no_copy});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(id_column(ok.out).size(), 2u);
}

TEST_F(SpecCli, DockerfileOfAnInvalidSpecFails) {
  std::string bad = write("bad.spec", "((run (shell x)))");
  auto r = run_process({KILN_BINARY, "dockerfile", "-f", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(bad + ":1:"));
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace kiln
