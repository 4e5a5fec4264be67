// The rules of ContextTarReader, seen through both of its users: the
// manifest the scheduler computes (context_tar_manifest) and the tree the
// worker unpacks (unpack_context_tar). Whatever one refuses the other
// refuses with the same message, and what both accept describes one tree.
#include "common/context/context_tar_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "common/context/context_tar.h"
#include "common/context/raw_tar_for_test.h"
#include "common/ids/temp_tree_for_test.h"

namespace kiln::context {
namespace {

using ::testing::HasSubstr;

class ContextTarReaderTest : public ::testing::Test {
 protected:
  std::string tar() const { return tree_.host("ctx.tar"); }
  std::string fresh_dir() {
    std::string dir = tree_.host("out" + std::to_string(++dirs_));
    std::filesystem::create_directories(dir);
    return dir;
  }

  // Writes the tar with `write`; both users refuse it, with the same
  // message, holding `needle`.
  void expect_refused(const std::function<void(RawTar&)>& write, const std::string& needle) {
    {
      RawTar w(tar());
      write(w);
    }
    expect_refused(needle);
  }
  // Both users refuse the tar, with the same message, holding `needle`.
  void expect_refused(const std::string& needle) {
    auto manifest = context_tar_manifest(tar());
    ASSERT_FALSE(manifest) << "the manifest accepted a tar that " << needle;
    EXPECT_EQ(manifest.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_THAT(manifest.error().to_string(), HasSubstr(needle));
    Status unpacked = unpack_context_tar(tar(), fresh_dir());
    ASSERT_FALSE(unpacked) << "unpacked a tar that " << needle;
    EXPECT_EQ(unpacked.error().to_string(), manifest.error().to_string());
  }

  // Writes the tar with `write`; both users accept it, as below.
  ids::ContextManifest expect_accepted(const std::function<void(RawTar&)>& write) {
    {
      RawTar w(tar());
      write(w);
    }
    return expect_accepted();
  }
  // Both accept; the manifest is the manifest of the unpacked tree.
  ids::ContextManifest expect_accepted() {
    auto manifest = context_tar_manifest(tar());
    EXPECT_TRUE(manifest) << manifest.error().to_string();
    std::string dir = fresh_dir();
    Status unpacked = unpack_context_tar(tar(), dir);
    EXPECT_TRUE(unpacked) << unpacked.error().to_string();
    auto walked = ids::ContextManifest::from_directory(dir);
    EXPECT_TRUE(walked) << walked.error().to_string();
    if (!manifest || !walked) return *ids::ContextManifest::from_entries({});
    EXPECT_EQ(manifest->serialize(), walked->serialize());
    return std::move(*manifest);
  }

  ids::TempTree tree_;
  int dirs_ = 0;
};

TEST_F(ContextTarReaderTest, ManifestOfWhatTheWriterPackedIsTheDirectorysManifest) {
  tree_.file("src/a/main.c", "int main() {}\n");
  tree_.file("src/run.sh", "#!/bin/sh\n", 0755);
  tree_.symlink("src/link", "a/main.c");
  tree_.dir("src/empty");
  tree_.file("caf\xc3\xa9 \"q\" $x.txt", "odd\n");
  ASSERT_TRUE(write_context_tar(tree_.host("src"), tar()));
  ids::ContextManifest manifest = expect_accepted();
  EXPECT_EQ(manifest.serialize(), ids::ContextManifest::from_directory(tree_.host("src"))->serialize());
}

TEST_F(ContextTarReaderTest, NonAsciiNamesKeepTheirBytes) {
  const std::string odd = "caf\xc3\xa9 \"q\"\t$x.txt";
  tree_.file("ctx/" + odd, "odd\n");
  ASSERT_TRUE(write_context_tar(tree_.host("ctx"), tar()));
  ids::ContextManifest manifest = expect_accepted();
  ASSERT_EQ(manifest.entries().size(), 2u);
  EXPECT_EQ(manifest.entries()[1].path, odd);
}

TEST_F(ContextTarReaderTest, AHardLinkIsItsTargetsFileModeIncluded) {
  ids::ContextManifest manifest = expect_accepted([](RawTar& w) {
    w.file("tool", "#!/bin/sh\n", 0755).hardlink("again", "tool", 0644).hardlink("third", "./again");
  });
  ASSERT_EQ(manifest.entries().size(), 4u);
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(manifest.entries()[i].content, manifest.entries()[3].content);
    EXPECT_TRUE(manifest.entries()[i].executable) << manifest.entries()[i].path;
  }
}

TEST_F(ContextTarReaderTest, TheRootEntryIsSkippedAndNothingElseMayReplaceIt) {
  EXPECT_EQ(expect_accepted([](RawTar& w) { w.dir("./").dir(".").file("a", "x"); }).entries().size(), 2u);
  expect_refused([](RawTar& w) { w.file(".", "x"); }, "replaces the context's root");
}

TEST_F(ContextTarReaderTest, EachPathIsListedOnce) {
  expect_refused([](RawTar& w) { w.file("a", "1").file("./a", "2"); }, "is listed twice");
  expect_refused([](RawTar& w) { w.dir("d").dir("d/"); }, "is listed twice");
  expect_refused([](RawTar& w) { w.file("d/f", "x").file("d", "replaces the implied directory"); },
                 "replaces a directory that entries listed earlier are in");
  // Listing an implied directory later is fine.
  expect_accepted([](RawTar& w) { w.file("d/f", "x").dir("d", 0700); });
}

TEST_F(ContextTarReaderTest, NothingIsListedBelowASymlinkOrAFile) {
  expect_refused([](RawTar& w) { w.dir("sub").symlink("d", "sub").file("d/file", "through the link"); },
                 "goes through \"d\", a symlink or a file");
  expect_refused([](RawTar& w) { w.file("f", "x").file("f/g", "y"); },
                 "goes through \"f\", a symlink or a file");
}

TEST_F(ContextTarReaderTest, SpecialAndSparseFilesAreRefused) {
  expect_refused([](RawTar& w) { w.file("ok", "x").fifo("pipe"); }, "is a fifo");
  expect_refused([](RawTar& w) { w.device("null"); }, "is a character device");
  expect_refused([](RawTar& w) { w.sparse_file("holes", "data", 1 << 20); }, "is a sparse file");
}

TEST_F(ContextTarReaderTest, OnlyUncompressedTarsAreRead) {
  {
    RawTar w(tar(), RawTar::Compression::kGzip);
    w.file("a", "x");
  }
  expect_refused("is not a readable tar");
  tree_.file("ctx.tar", "no tar at all");
  expect_refused("is not a readable tar");
}

TEST_F(ContextTarReaderTest, HardLinksNameEarlierFilesInside) {
  expect_refused([](RawTar& w) { w.file("f", "x").hardlink("/abs", "f"); }, "is an absolute path");
  expect_refused([](RawTar& w) { w.hardlink("h", "/etc/passwd"); }, "outside the context");
  expect_refused([](RawTar& w) { w.dir("d").hardlink("h", "d"); }, "not a file unpacked before it");
  expect_refused([](RawTar& w) { w.file("f", "x").symlink("s", "f").hardlink("h", "s"); },
                 "not a file unpacked before it");
}

TEST_F(ContextTarReaderTest, SymlinksMayNotBeEmptyOrAbsolute) {
  expect_refused([](RawTar& w) { w.symlink("l", ""); }, "is a symlink with no target");
  expect_refused([](RawTar& w) { w.symlink("l", "/etc/passwd"); },
                 "is a symlink to the absolute path \"/etc/passwd\"");
}

// A layout of symlinks (and the files and directories they lead through).
struct LinkCase {
  const char* what;
  std::vector<std::pair<std::string, std::string>> links;  // path -> target
  bool inside;
};

// The reader decides from the entries whether links stay inside; the on-disk
// check (git checkouts) follows them on a real tree. They must agree.
TEST_F(ContextTarReaderTest, EscapingSymlinksAreJudgedAsOnDisk) {
  const std::vector<LinkCase> cases = {
      {"a dangling link", {{"a", "missing"}}, true},
      {"a link to a sibling's file", {{"d/l", "../f"}}, true},
      {"a link above the root", {{"up", "../outside"}}, false},
      {"a link two levels up", {{"d/l", "../../f"}}, false},
      {"links that escape only together", {{"d/b", ".."}, {"l", "d/b/../outside"}}, false},
      {"a link through a file", {{"l", "f/x"}}, false},
      {"a link through a file and back", {{"l", "f/../d"}}, true},
      {"a loop", {{"x", "y"}, {"y", "x"}}, false},
      {"\"..\" after a missing name", {{"l", "missing/../.."}}, false},
      {"a link to a directory", {{"l", "d/./"}}, true},
      {"a chain that stays", {{"d/a", "b"}, {"d/b", "../f"}}, true},
  };
  for (const LinkCase& c : cases) {
    SCOPED_TRACE(c.what);
    tree_.remove("disk");
    tree_.file("disk/f", "file\n");
    tree_.dir("disk/d");
    {
      RawTar w(tar());
      w.file("f", "file\n").dir("d");
      for (const auto& [path, target] : c.links) {
        tree_.symlink("disk/" + path, target);
        w.symlink(path, target);
      }
    }
    Status on_disk = check_symlinks_stay_inside(tree_.host("disk"));
    EXPECT_EQ(static_cast<bool>(on_disk), c.inside);
    if (c.inside) {
      expect_accepted();
    } else {
      expect_refused("which leads outside the context");
    }
  }
}

TEST_F(ContextTarReaderTest, EntriesComeOutNormalisedWithRwxBitsOnly) {
  {
    RawTar w(tar());
    w.dir("./src//", 0750).file("src/./run.sh", "#!/bin/sh\n", 04755).symlink("src/l", "run.sh");
  }
  auto reader = ContextTarReader::open(tar());
  ASSERT_TRUE(reader) << reader.error().to_string();
  std::vector<TarEntry> entries;
  for (;;) {
    auto entry = reader->next();
    ASSERT_TRUE(entry) << entry.error().to_string();
    if (!*entry) break;
    if ((*entry)->kind == TarEntry::Kind::kFile) {
      std::string content;
      ASSERT_TRUE(reader->read_content([&](std::string_view bytes) -> Status {
        content += bytes;
        return {};
      }));
      EXPECT_EQ(content, "#!/bin/sh\n");
    }
    entries.push_back(**entry);
  }
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].path, "src");
  EXPECT_EQ(entries[0].name, "./src//");
  EXPECT_EQ(entries[0].permissions, 0750u);
  EXPECT_EQ(entries[1].path, "src/run.sh");
  EXPECT_EQ(entries[1].permissions, 0755u);
  EXPECT_TRUE(entries[1].executable());
  EXPECT_EQ(entries[2].kind, TarEntry::Kind::kSymlink);
  EXPECT_EQ(entries[2].target, "run.sh");
}

}  // namespace
}  // namespace kiln::context
