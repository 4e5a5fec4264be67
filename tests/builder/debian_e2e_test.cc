// End-to-end tests on a real distribution: the `kiln` binary and runc
// building C programs with make on the Debian 12 image that
// scripts/make-debian-image makes with debootstrap (gcc, make, libc6-dev;
// its config sets no PATH) and caches under /var/cache/kiln-test. Each test
// has its own KILN_HOME and store, with `debian` an alias of that image and
// `busybox` the default base image. The specs and sources are the README's
// example, examples/debian/. Needs root (runc, mounts, loop devices for btrfs).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/store/store_test_util.h"
#include "tests/support/debian_image.h"
#include "tests/support/kiln_output.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace kiln {
namespace {

using testing::count_of;
using testing::got_id;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ProcessResult;
using testing::run_process;

class DebianE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    debian_ = testing::debian_image_reference(&error);
    ASSERT_FALSE(debian_.empty()) << error;
    ProcessResult busybox =
        run_process({testing::source_dir() + "/scripts/make-base-image", home_.path() + "/images/busybox"});
    ASSERT_EQ(busybox.exit_code, 0) << busybox.err;
  }

  // `kiln ARGS...` with this test's KILN_HOME; builds get the debian alias
  // and, when a test chose one, its store.
  ProcessResult kiln(std::vector<std::string> args) {
    if (!args.empty() && args[0] == "build") {
      args.insert(args.begin() + 1, {"--image-alias", "debian=" + debian_});
      if (!store_.empty()) args.insert(args.begin() + 1, {"--store", store_});
    }
    std::vector<std::string> argv = {"/usr/bin/env", "KILN_HOME=" + home_.path(), KILN_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv);
  }

  std::string spec_file(const std::string& name, const std::string& text) {
    std::string path = home_.path() + "/" + name;
    store::testing::write_file(path, text);
    return path;
  }

  static std::string example(const std::string& name) {
    return testing::source_dir() + "/examples/debian/" + name;
  }

  testing::TempDir home_{"kiln-debian-e2e", "/var/tmp"};
  std::string debian_;
  std::string store_;  // "BACKEND:DIR"; empty: overlayfs in KILN_HOME
};

// The same cases on overlayfs (ext4) and btrfs (a loop device from
// tests/store's fixture).
class DebianE2eStoreTest : public DebianE2eTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    DebianE2eTest::SetUp();
    std::string backend = GetParam();
    store_ = backend + ":" +
             store::testing::TestFilesystems::get().fresh_dir(backend == "btrfs" ? "btrfs" : "ext4");
  }
};

// The README's example: without docker's default PATH, make finds no `cc`
// and gcc's driver no `ld` (issue 18).
TEST_P(DebianE2eStoreTest, CompilesAndRunsACProgramWithMakeThenServesItFromCache) {
  ProcessResult canonical = kiln({"spec", "fmt", "--check", example("compile.spec")});
  EXPECT_EQ(canonical.exit_code, 0) << canonical.err;
  ProcessResult first = kiln({"build", "-f", example("compile.spec"), example("context")});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_THAT(first.out, HasSubstr("cc -O2 -Wall   -c -o hello.o hello.c\n"));
  EXPECT_THAT(first.out, HasSubstr("hello, world from Debian, built by gcc 12."));
  EXPECT_EQ(count_of(first.out, "---> saved as"), 3u) << first.out;
  // The fetch showed its progress while it ran...
  EXPECT_THAT(first.out, HasSubstr("unpacking layer 1/1 sha256:"));
  EXPECT_THAT(first.out, HasSubstr("  layer 1/1: 16.0 MiB of "));

  ProcessResult second = kiln({"build", "-f", example("compile.spec"), example("context")});
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_EQ(got_id(second), got_id(first));
  EXPECT_EQ(count_of(second.out, " from cache"), 3u) << second.out;
  // ...and a cached step replays its own log: the compile's output, the
  // image's layer line, not the fetch's byte counts.
  EXPECT_THAT(second.out, HasSubstr("hello, world from Debian"));
  EXPECT_THAT(second.out, HasSubstr("unpacking layer 1/1 sha256:"));
  EXPECT_THAT(second.out, Not(HasSubstr(" MiB of "))) << second.out;
}

// The environment docker would give: PATH (the image sets none), HOSTNAME,
// HOME from /etc/passwd; what the spec sets wins.
TEST_F(DebianE2eTest, StepsGetDockersDefaultEnvironmentAndTheSpecOverridesIt) {
  std::string spec = spec_file("env.spec", R"spec(((from debian)
 (run (shell "env | sort | grep -E '^(PATH|HOME|HOSTNAME)=' && hostname"))
 (env PATH /usr/bin:/bin)
 (env HOME /work)
 (user (uid 4242) (gid 4242))
 (run (shell "echo PATH=$PATH HOME=$HOME uid=$(id -u)"))))spec");
  ProcessResult r = kiln({"build", "-f", spec, home_.path()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("HOME=/root\nHOSTNAME=builder\n"
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nbuilder\n"));
  EXPECT_THAT(r.out, HasSubstr("PATH=/usr/bin:/bin HOME=/work uid=4242\n"));
}

TEST_F(DebianE2eTest, NamedUserComesFromTheImagesPasswd) {
  std::string spec = spec_file("user.spec", R"spec(((from debian)
 (user (name nobody))
 (run (shell "id && echo HOME=$HOME && whoami"))
 (copy (src user.spec) (dst /tmp/))
 (run (shell "stat -c '%U:%G %a' /tmp/user.spec"))))spec");
  ProcessResult r = kiln({"build", "-f", spec, home_.path()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
                               "HOME=/nonexistent\nnobody\n"));
  EXPECT_THAT(r.out, HasSubstr("nobody:nogroup 644\n"));

  ProcessResult ghost = kiln({"build", "-f", spec_file("ghost.spec", R"spec(((from debian)
 (user (name ghost))
 (run (shell "id"))))spec"),
                              home_.path()});
  EXPECT_EQ(ghost.exit_code, 1);
  EXPECT_THAT(ghost.err, HasSubstr("ghost.spec:3:2: run: (user (name ghost)): the image's /etc/passwd has "
                                   "no user \"ghost\""));
}

// Hard links and absolute symlink chains survive the unpacking and a snapshot
// (the second run sees the first run's snapshot, not the unpacked image).
TEST_P(DebianE2eStoreTest, HardLinksAndAbsoluteSymlinkChainsStayIntact) {
  std::string spec = spec_file("links.spec", R"spec(((from debian)
 (run (shell "echo snapshot > /marker"))
 (run (shell "cat /marker && readlink /usr/bin/cc /etc/alternatives/cc && readlink -f /usr/bin/cc && stat -c '%h %i' /usr/bin/perl /usr/bin/perl5.36.0 && [ /usr/bin/perl -ef /usr/bin/perl5.36.0 ] && echo same-file && cc --version | head -n 1"))))spec");
  ProcessResult r = kiln({"build", "-f", spec, home_.path()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("snapshot\n/etc/alternatives/cc\n/usr/bin/gcc\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("\n/usr/bin/[a-z0-9_]+-linux-gnu-gcc-12\n"));
  std::smatch m;
  std::string out = r.out;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("\n2 ([0-9]+)\n2 ([0-9]+)\nsame-file\n"))) << out;
  EXPECT_EQ(m[1].str(), m[2].str());
  EXPECT_THAT(r.out, HasSubstr("cc (Debian 12."));
}

// Built in the Debian stage, run in a busybox stage that has no C library:
// the binary is linked statically (libc6-dev ships libc.a).
TEST_F(DebianE2eTest, MultiStageCopiesAStaticBinaryIntoBusybox) {
  ProcessResult r = kiln({"build", "-f", example("static.spec"), example("context")});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("cc -static -o hello-static hello.o greet.o\n"));
  EXPECT_THAT(r.out, HasSubstr("/: (run (shell hello))\nhello, world from Debian"));
  std::string check = spec_file("check.spec", R"spec(((build compile
        ((from debian)
         (workdir /src)
         (copy (src hello.c greet.c greet.h Makefile) (dst ./))
         (run (shell "make hello-static"))))
 (from busybox)
 (copy (from (build compile)) (src /src/hello-static) (dst /usr/local/bin/hello))
 (run (shell "test ! -e /usr/bin/gcc && test ! -e /lib && test ! -e /usr/lib && ls -l /usr/local/bin/hello | cut -c1-10"))))spec");
  ProcessResult stage = kiln({"build", "-f", check, example("context")});
  ASSERT_EQ(stage.exit_code, 0) << stage.out << stage.err;
  EXPECT_THAT(stage.out, HasSubstr("-rwxr-xr-x\n"));
  // The compile stage is shared with the first build: served from cache.
  EXPECT_THAT(stage.out, HasSubstr("/src: (run (shell \"make hello-static\"))"));
  EXPECT_EQ(count_of(stage.out, " from cache"), 5u) << stage.out;  // three there, busybox, the copy
}

// The fixture's cache check, on copies of the cached image: an intact copy is
// used as it is; a copy with one byte of its layer changed, or with a blob
// missing, is rebuilt. (Here from a mirror nobody listens on, so that the
// rebuild fails at once and says why, and the copy is left as it was.)
TEST_F(DebianE2eTest, TheImageScriptRebuildsAnImageWhoseBlobsDoNotMatch) {
  const std::string image_dir = debian_.substr(4, debian_.rfind(':') - 4);  // oci:DIR:12
  auto script = [&](const std::string& dir) {
    return run_process({"/usr/bin/env", "DEBIAN_MIRROR=http://127.0.0.1:1/debian",
                        testing::source_dir() + "/scripts/make-debian-image", dir});
  };
  auto copy_of_image = [&](const std::string& name) {
    std::string dir = home_.path() + "/" + name;
    std::filesystem::copy(image_dir, dir, std::filesystem::copy_options::recursive);
    return dir;
  };
  auto blobs = [](const std::string& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(dir + "/blobs/sha256")) out.push_back(e.path());
    std::ranges::sort(out, {}, [](const auto& p) { return std::filesystem::file_size(p); });
    return out;  // the layer last
  };

  std::string intact = copy_of_image("intact");
  ProcessResult kept = script(intact);
  EXPECT_EQ(kept.exit_code, 0) << kept.err;
  EXPECT_EQ(kept.out, "oci:" + intact + ":12\n");
  EXPECT_THAT(kept.err, HasSubstr("nothing to do"));

  std::string flipped = copy_of_image("flipped");
  std::filesystem::path layer = blobs(flipped).back();
  {
    std::fstream f(layer, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096);
    char byte = 0;
    f.read(&byte, 1);
    f.seekp(4096);
    byte = static_cast<char>(byte ^ 1);
    f.write(&byte, 1);
  }
  std::string missing = copy_of_image("missing");
  std::filesystem::remove(blobs(missing).front());
  for (const std::string& damaged : {flipped, missing}) {
    ProcessResult r = script(damaged);
    EXPECT_EQ(r.exit_code, 1) << damaged << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(damaged + " is damaged or from another recipe: rebuilding it"));
    EXPECT_THAT(r.err, HasSubstr("debootstrap from http://127.0.0.1:1/debian failed"));
    EXPECT_EQ(r.out, "");
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, DebianE2eStoreTest, ::testing::Values("overlayfs", "btrfs"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace kiln
