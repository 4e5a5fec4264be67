#include "common/ids/manifest.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "common/ids/temp_tree_for_test.h"
#include "common/sha256.h"

namespace kiln::ids {
namespace {

using Type = ManifestEntry::Type;
using Names = std::vector<std::string>;

DirectoryContext open_dir(const TempTree& tree, unsigned threads = 0) {
  auto dir = DirectoryContext::open(tree.root(), threads);
  EXPECT_TRUE(dir.has_value()) << dir.error().to_string();
  return std::move(*dir);
}

Manifest must(Result<Manifest> m) {
  EXPECT_TRUE(m.has_value()) << m.error().to_string();
  return m ? std::move(*m) : Manifest{};
}

std::vector<std::string> paths(const Manifest& m) {
  std::vector<std::string> out;
  for (const auto& e : m.entries) out.push_back(e.path);
  return out;
}

const ManifestEntry* entry(const Manifest& m, std::string_view path) {
  for (const auto& e : m.entries)
    if (e.path == path) return &e;
  return nullptr;
}

Digest digest_of(std::string_view content) {
  Sha256 h;
  h.update(content);
  return h.digest();
}

// The error message of a failing manifest, "" if it succeeded.
std::string error_of(Result<Manifest> m) {
  return m ? std::string() : m.error().message();
}

TEST(NormalizeSourcePath, NormalisesAndRejectsDotDot) {
  EXPECT_EQ(*normalize_source_path("./a//b/"), "a/b");
  EXPECT_EQ(*normalize_source_path("/a/b"), "a/b");
  EXPECT_EQ(*normalize_source_path("/"), "");
  EXPECT_EQ(*normalize_source_path("."), "");
  for (std::string bad : {"..", "a/../b", "../x", "/.."}) {
    auto r = normalize_source_path(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message().find("can't use .. in source paths"), std::string::npos);
    EXPECT_NE(r.error().message().find(bad), std::string::npos);
  }
}

TEST(Manifest, EncodingIsExact) {
  TempTree tree;
  tree.file("d/f", "hi\n");
  tree.file("d/x", "", 0700);
  tree.symlink("d/l", "f");
  auto dir = open_dir(tree);
  Manifest m = must(dir.manifest("d", {}));
  EXPECT_EQ(m.encode(),
            "(16:kiln-manifest-v1(3:dir1:d)"
            "(4:file3:d/f64:98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be41:-)"
            "(7:symlink3:d/l1:f)"
            "(4:file3:d/x64:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8551:x))");
  EXPECT_EQ(m.digest(), sha256_hex(m.encode()));
}

TEST(Manifest, RecordsContentDigestAndExecutableBit) {
  TempTree tree;
  tree.file("s/plain", "data", 0644);
  tree.file("s/user-x", "data", 0744);
  tree.file("s/other-x", "data", 0641);
  tree.file("s/readonly", "data", 0400);
  auto dir = open_dir(tree);
  Manifest m = must(dir.manifest("s", {}));
  EXPECT_FALSE(entry(m, "s/plain")->executable);
  EXPECT_TRUE(entry(m, "s/user-x")->executable);
  EXPECT_TRUE(entry(m, "s/other-x")->executable);
  EXPECT_FALSE(entry(m, "s/readonly")->executable);
  EXPECT_EQ(to_hex(entry(m, "s/plain")->content), sha256_hex("data"));
}

TEST(Manifest, SortsByBytesOfTheFullPath) {
  TempTree tree;
  tree.file("a/b", "1");
  tree.file("a.txt", "2");
  tree.file("a/B", "3");
  tree.file("a/\xc3\xa9", "4");  // a UTF-8 byte above ASCII sorts last
  auto dir = open_dir(tree);
  EXPECT_EQ(paths(must(dir.manifest("/", {}))), (Names{"", "a", "a.txt", "a/B", "a/b", "a/\xc3\xa9"}));
}

TEST(Manifest, RecordsSymlinksWithTargetsWithoutFollowing) {
  TempTree tree;
  tree.file("s/real", "x");
  tree.symlink("s/up", "../../etc/passwd");
  tree.symlink("s/dangling", "nowhere");
  tree.dir("elsewhere/deep");
  tree.symlink("s/dirlink", "../elsewhere");
  auto dir = open_dir(tree);
  Manifest m = must(dir.manifest("s", {}));
  EXPECT_EQ(paths(m), (Names{"s", "s/dangling", "s/dirlink", "s/real", "s/up"}));
  EXPECT_EQ(entry(m, "s/up")->type, Type::kSymlink);
  EXPECT_EQ(entry(m, "s/up")->target, "../../etc/passwd");
  EXPECT_EQ(entry(m, "s/dangling")->target, "nowhere");
  EXPECT_EQ(entry(m, "s/dirlink")->type, Type::kSymlink);

  // A symlink as the source itself is recorded, not followed.
  Manifest link = must(dir.manifest("s/dirlink", {}));
  ASSERT_EQ(link.entries.size(), 1u);
  EXPECT_EQ(link.entries[0].type, Type::kSymlink);
  EXPECT_EQ(link.entries[0].target, "../elsewhere");
}

TEST(Manifest, IncludesEmptyDirectories) {
  TempTree tree;
  tree.dir("s/empty/nested-empty");
  auto dir = open_dir(tree);
  Manifest m = must(dir.manifest("s", {}));
  EXPECT_EQ(paths(m), (Names{"s", "s/empty", "s/empty/nested-empty"}));
  EXPECT_EQ(entry(m, "s/empty")->type, Type::kDirectory);
}

TEST(Manifest, ExcludesNamesAtEveryDepthButNeverTheSourceItself) {
  TempTree tree;
  tree.file(".git/config", "top");
  tree.file("src/.git/config", "x");
  tree.file("src/a/.git", "a file named .git");
  tree.file("src/a/b/c/.git/HEAD", "deep");
  tree.file("src/a/b/c/keep.c", "keep");
  tree.file("src/node_modules/m/index.js", "js");
  tree.file("src/a/node_modules", "file");
  tree.file("src/a/.gitignore", "not an exact name match");
  auto dir = open_dir(tree);
  Names exclude{".git", "node_modules"};
  Manifest m = must(dir.manifest("src", exclude));
  EXPECT_EQ(paths(m),
            (Names{"src", "src/a", "src/a/.gitignore", "src/a/b", "src/a/b/c", "src/a/b/c/keep.c"}));

  Manifest git = must(dir.manifest(".git", exclude));
  EXPECT_EQ(paths(git), (Names{".git", ".git/config"}));

  Manifest root = must(dir.manifest(".", exclude));
  EXPECT_EQ(entry(root, ".git"), nullptr);
  EXPECT_NE(entry(root, "src/a/b/c/keep.c"), nullptr);
}

TEST(Manifest, NormalisesTheSourcePath) {
  TempTree tree;
  tree.file("src/f", "x");
  auto dir = open_dir(tree);
  Manifest plain = must(dir.manifest("src", {}));
  EXPECT_EQ(plain.source, "src");
  for (std::string spelling : {"./src", "/src", "src/", ".//src/./"}) {
    EXPECT_EQ(must(dir.manifest(spelling, {})), plain) << spelling;
  }
}

TEST(Manifest, RejectsDotDot) {
  TempTree tree;
  tree.file("a/f", "x");
  auto dir = open_dir(tree);
  EXPECT_NE(error_of(dir.manifest("a/../a/f", {})).find("can't use .. in source paths"), std::string::npos);
}

TEST(Manifest, RejectsMissingSource) {
  TempTree tree;
  tree.file("a/f", "x");
  auto dir = open_dir(tree);
  auto m = dir.manifest("a/nope", {});
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(m.error().message().find("source path \"a/nope\" not found in the context"), std::string::npos);
}

TEST(Manifest, RejectsPathsThroughSymlinks) {
  TempTree tree;
  tree.file("data/real/f", "x");
  tree.symlink("data/inside", "real");
  tree.symlink("data/escape", "../../etc");
  tree.symlink("abs", "/etc");
  auto dir = open_dir(tree);

  std::string inside = error_of(dir.manifest("data/inside/f", {}));
  EXPECT_NE(inside.find("goes through the symlink \"data/inside\""), std::string::npos) << inside;
  EXPECT_NE(inside.find("inside the context"), std::string::npos) << inside;
  EXPECT_NE(inside.find("write \"data/real/f\" instead"), std::string::npos) << inside;

  std::string escape = error_of(dir.manifest("data/escape/passwd", {}));
  EXPECT_NE(escape.find("\"data/escape\" -> \"../../etc\", which leaves the context"), std::string::npos)
      << escape;

  std::string absolute = error_of(dir.manifest("/abs/passwd", {}));
  EXPECT_NE(absolute.find("\"abs\" -> \"/etc\", which leaves the context"), std::string::npos) << absolute;
}

TEST(Manifest, RejectsPathsThroughFiles) {
  TempTree tree;
  tree.file("a/f", "x");
  auto dir = open_dir(tree);
  std::string e = error_of(dir.manifest("a/f/g", {}));
  EXPECT_NE(e.find("\"a/f\" is not a directory"), std::string::npos) << e;
}

TEST(Manifest, RejectsFifosUnlessExcluded) {
  TempTree tree;
  tree.file("s/f", "x");
  tree.fifo("s/sub/pipe");
  auto dir = open_dir(tree);
  EXPECT_NE(error_of(dir.manifest("s/sub/pipe", {})).find("unsupported file type"), std::string::npos);
  std::string below = error_of(dir.manifest("s", {}));
  EXPECT_NE(below.find("unsupported file type: \"s/sub/pipe\""), std::string::npos) << below;
  Manifest excluded = must(dir.manifest("s", Names{"pipe"}));
  EXPECT_EQ(paths(excluded), (Names{"s", "s/f", "s/sub"}));
}

TEST(DirectoryContext, OpenRejectsNonDirectories) {
  TempTree tree;
  tree.file("f", "x");
  EXPECT_FALSE(DirectoryContext::open(tree.host("f")).has_value());
  EXPECT_FALSE(DirectoryContext::open(tree.host("missing")).has_value());
}

TEST(DirectoryContext, ParallelHashingMatchesOneThread) {
  TempTree tree;
  for (int i = 0; i < 40; ++i)
    tree.file("big/f" + std::to_string(i),
              std::string(static_cast<std::size_t>(i) * 9000 + 1, char('a' + i % 26)));
  auto one = open_dir(tree, 1);
  auto two = open_dir(tree, 2);
  Manifest a = must(one.manifest("big", {}));
  Manifest b = must(two.manifest("big", {}));
  EXPECT_EQ(a, b);
  EXPECT_EQ(to_hex(entry(b, "big/f39")->content),
            sha256_hex(std::string(39 * 9000 + 1, char('a' + 39 % 26))));
}

// A tree with every kind of entry, excludes, nesting and awkward names.
void make_varied_tree(TempTree& tree) {
  tree.file("README", "readme\n");
  tree.file("src/main.c", "int main() { return 0; }\n");
  tree.file("src/tool.sh", "#!/bin/sh\necho hi\n", 0755);
  tree.file("src/lib/a.c", "a");
  tree.file("src/lib/.git/HEAD", "ref");
  tree.file("src/lib/build/out.o", std::string(3 << 20, 'o'));  // large enough to hash in parallel
  tree.file("src/a.b/x", "dotted dir");
  tree.file("src/with space/\x01\xff name", "odd bytes");
  tree.symlink("src/link", "main.c");
  tree.symlink("src/escape", "../../outside");
  tree.symlink("src/libdir", "lib");
  tree.dir("src/empty");
  tree.dir("docs/.git");
  tree.file("docs/guide.md", "guide");
  tree.fifo("tmp/pipe");
  tree.file("tmp/keep", "k");
}

TEST(ContextManifest, SelectionEqualsDirectoryWalk) {
  TempTree tree;
  make_varied_tree(tree);
  auto dir = open_dir(tree);
  auto whole = ContextManifest::from_directory(tree.root());
  ASSERT_TRUE(whole.has_value()) << whole.error().to_string();
  auto reparsed = ContextManifest::parse(whole->serialize());
  ASSERT_TRUE(reparsed.has_value()) << reparsed.error().to_string();
  EXPECT_EQ(reparsed->entries(), whole->entries());

  struct Case {
    std::string source;
    Names exclude;
  };
  std::vector<Case> cases = {
      {"src", {}},
      {"src", {".git", "build"}},
      {"/src/lib", {".git"}},
      {"./src/main.c", {}},
      {"src/link", {}},
      {"src/escape", {}},
      {"src/empty", {}},
      {".", {".git", "pipe"}},
      {"/", {"src", "tmp"}},
      {"docs", {".git"}},
      {"src/a.b", {}},
      {"src/with space", {}},
      // Errors must agree too.
      {"tmp", {}},
      {"tmp/pipe", {}},
      {"nope", {}},
      {"src/libdir/a.c", {}},
      {"src/escape/x", {}},
      {"src/main.c/x", {}},
      {"../x", {}},
      {".", {}},
  };
  for (const Case& c : cases) {
    auto walked = dir.manifest(c.source, c.exclude);
    auto selected = reparsed->select(c.source, c.exclude);
    ASSERT_EQ(walked.has_value(), selected.has_value()) << c.source;
    if (walked) {
      EXPECT_EQ(*walked, *selected) << c.source;
      EXPECT_EQ(walked->digest(), selected->digest()) << c.source;
      EXPECT_FALSE(walked->entries.empty());
    } else {
      EXPECT_EQ(walked.error().kind(), selected.error().kind()) << c.source;
      EXPECT_EQ(walked.error().message(), selected.error().message()) << c.source;
    }
  }
}

TEST(ContextManifest, RecordsSpecialFilesInsteadOfFailing) {
  TempTree tree;
  tree.fifo("p");
  auto whole = ContextManifest::from_directory(tree.root());
  ASSERT_TRUE(whole.has_value()) << whole.error().to_string();
  EXPECT_EQ(whole->serialize(), "(15:kiln-context-v1(3:dir0:)(7:special1:p))");
}

TEST(ContextManifest, ParseRejectsBrokenManifests) {
  const std::string hex(64, 'a');
  std::vector<std::pair<std::string, std::string>> cases = {
      {"(15:kiln-context-v2(3:dir0:))", "version tag"},
      {"(3:dir0:)", "version tag"},
      {"(15:kiln-context-v1)", "root directory"},
      {"(15:kiln-context-v1(3:dir1:a))", "root directory"},
      {"(15:kiln-context-v1(3:dir0:)(3:dir1:b)(3:dir1:a))", "sorted"},
      {"(15:kiln-context-v1(3:dir0:)(3:dir1:a)(3:dir1:a))", "sorted"},
      {"(15:kiln-context-v1(3:dir0:)(3:dir3:a/b))", "parent"},
      {"(15:kiln-context-v1(3:dir0:)(4:file1:a1:-)(4:file3:a/b64:" + hex + "1:-))", "fields"},
      {"(15:kiln-context-v1(3:dir0:)(4:file1:a64:" + hex + "1:-)(4:file3:a/b64:" + hex + "1:-))", "parent"},
      {"(15:kiln-context-v1(3:dir0:)(4:file1:a3:abc1:-))", "64 lowercase hex"},
      {"(15:kiln-context-v1(3:dir0:)(4:file1:a64:" + hex + "1:y))", "mode"},
      {"(15:kiln-context-v1(3:dir0:)(3:dir2:..))", "normalised"},
      {"(15:kiln-context-v1(3:dir0:)(3:dir2:a/))", "normalised"},
      {"(15:kiln-context-v1(3:dir0:)(7:symlink1:a0:))", "symlink target"},
      {"(15:kiln-context-v1(3:dir0:)(4:fifo1:a))", "unknown entry"},
      {"(15:kiln-context-v1(3:dir0:)", "malformed"},
  };
  for (const auto& [bytes, expected] : cases) {
    auto m = ContextManifest::parse(bytes);
    ASSERT_FALSE(m.has_value()) << bytes;
    EXPECT_NE(m.error().to_string().find(expected), std::string::npos)
        << bytes << " -> " << m.error().to_string();
  }
}

TEST(DirectoryContext, RehashesFilesChangedBetweenManifests) {
  TempTree tree;
  tree.file("s/f", "aaaa");
  auto dir = open_dir(tree);
  Manifest before = must(dir.manifest("s", {}));
  struct stat st {};
  ASSERT_EQ(::stat(tree.host("s/f").c_str(), &st), 0);
  // Same size, and the mtime put back: only ctime tells the content changed.
  tree.file("s/f", "bbbb");
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, tree.host("s/f").c_str(), times, 0), 0);
  Manifest after = must(dir.manifest("s", {}));
  EXPECT_EQ(to_hex(entry(after, "s/f")->content), sha256_hex("bbbb"));
  EXPECT_NE(before.digest(), after.digest());
  // A copy of a file, then of the directory holding it, agree on its digest.
  EXPECT_EQ(must(dir.manifest("s/f", {})).entries[0], *entry(after, "s/f"));
}

ManifestEntry file_entry(std::string path, std::string_view content, bool executable = false) {
  ManifestEntry e;
  e.type = Type::kFile;
  e.path = std::move(path);
  e.content = digest_of(content);
  e.executable = executable;
  return e;
}

TEST(ContextManifest, FromEntriesAddsImpliedDirectoriesAndMatchesTheWalk) {
  TempTree tree;
  tree.file("a/b/c.txt", "c");
  tree.file("a/run", "r", 0755);
  tree.symlink("z/link", "../a/run");
  auto walked = ContextManifest::from_directory(tree.root());
  ASSERT_TRUE(walked.has_value());

  ManifestEntry link;
  link.type = Type::kSymlink;
  link.path = "z/link";
  link.target = "../a/run";
  // As a tar might list them: unsorted, without the directories.
  auto built =
      ContextManifest::from_entries({link, file_entry("a/run", "r", true), file_entry("a/b/c.txt", "c")});
  ASSERT_TRUE(built.has_value()) << built.error().to_string();
  EXPECT_EQ(built->entries(), walked->entries());
  EXPECT_EQ(built->serialize(), walked->serialize());
}

TEST(ContextManifest, FromEntriesRejectsBadEntries) {
  EXPECT_FALSE(ContextManifest::from_entries({file_entry("a/../b", "x")}).has_value());
  EXPECT_FALSE(ContextManifest::from_entries({file_entry("/a", "x")}).has_value());
  EXPECT_FALSE(ContextManifest::from_entries({file_entry("a", "x"), file_entry("a", "y")}).has_value());
  auto under_file = ContextManifest::from_entries({file_entry("a", "x"), file_entry("a/b", "y")});
  ASSERT_FALSE(under_file.has_value());
  EXPECT_NE(under_file.error().message().find("parent of \"a/b\" is not a directory"), std::string::npos);
}

}  // namespace
}  // namespace kiln::ids
