// libFuzzer target for the build context tar reader (common/context/): the
// input is a tar, read as the scheduler reads it (context_tar_manifest, for
// step ids) and unpacked as the worker unpacks it (unpack_context_tar) into
// a fresh directory under a temporary root, removed after each input.
//
// For any input it checks, and aborts when one fails:
//   - no crash, no leak, no exception;
//   - refusals are kInvalidArgument (a bad tar is the client's error);
//   - nothing is written outside the destination, whether the unpack
//     succeeded or not: the root holds only the destination and a sibling
//     `outside/` whose one file is unchanged;
//   - an unpacked tree has no symlink that leads out of it
//     (check_symlinks_stay_inside; a refused tar may leave one behind in the
//     partial tree, which the worker removes, since links are checked once
//     every entry is in place);
//   - the scheduler and the worker agree: the manifest succeeds exactly when
//     the unpack does, and then the unpacked directory's own manifest
//     (ContextManifest::from_directory) is the tar's manifest, so step ids
//     computed at submit are those of the tree the worker builds from;
//   - the manifest's serialisation parses back to the same manifest.
// Seeds: `context_tar_fuzz --write-seeds=tests/fuzz/corpus/context_tar` (tars
// from write_context_tar, as `kiln submit` makes them, and libarchive tars
// with what it never writes: hard links, GNU and pax headers, "..", devices).
// Run with scripts/fuzz context_tar.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>

#include "common/context/context_tar.h"
#include "common/fs.h"
#include "common/ids/manifest.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace fs = std::filesystem;
using kiln::ErrorKind;
using kiln::fuzz::check;
using kiln::fuzz::fail;

constexpr std::string_view kSecret = "host secret\n";

// Removes `path` even where the tar left directories without permissions.
void force_remove(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (!ec) return;
  for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
  }
  ::chmod(path.c_str(), 0700);
  fs::remove_all(path, ec);
  if (ec) fail("cannot clean the fuzz directory", path.string() + ": " + ec.message());
}

// The process's scratch space: in /dev/shm when there is one (fast), removed at exit.
const fs::path& scratch() {
  static const fs::path dir = [] {
    std::string base = fs::exists("/dev/shm") ? "/dev/shm" : fs::temp_directory_path().string();
    std::string pattern = base + "/kiln-fuzz-context.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp failed", pattern);
    std::atexit([] { force_remove(scratch()); });
    return fs::path(pattern);
  }();
  return dir;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) out.insert(entry.path().filename().string());
  return out;
}

void check_nothing_outside(const fs::path& run) {
  check(names_in(run) == std::set<std::string>{"dest", "outside"},
        "the unpack wrote next to its destination");
  check(names_in(run / "outside") == std::set<std::string>{"secret"}, "the unpack wrote into a sibling");
  auto secret = kiln::read_file((run / "outside" / "secret").string());
  check(secret && *secret == kSecret, "the unpack changed a file outside its destination");
  check(names_in(scratch()) == std::set<std::string>{"ctx.tar", "run"}, "the unpack wrote above its root");
}

void fuzz_tar(std::string_view bytes) {
  const fs::path tar = scratch() / "ctx.tar";
  {
    std::ofstream out(tar, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) fail("cannot write the input tar", tar.string());
  }
  const fs::path run = scratch() / "run";
  const fs::path dest = run / "dest";
  fs::create_directories(dest);
  fs::create_directories(run / "outside");
  if (!kiln::write_file((run / "outside" / "secret").string(), kSecret)) fail("cannot write the sentinel");

  auto manifest = kiln::context::context_tar_manifest(tar.string());
  auto unpacked = kiln::context::unpack_context_tar(tar.string(), dest.string());
  check_nothing_outside(run);

  if (!manifest) {
    check(manifest.error().kind() == ErrorKind::kInvalidArgument, "a refusal of the wrong kind",
          manifest.error().to_string());
  }
  if (!unpacked) {
    check(unpacked.error().kind() == ErrorKind::kInvalidArgument, "an unpack error of the wrong kind",
          unpacked.error().to_string());
  }
  if (manifest.has_value() != unpacked.has_value()) {
    fail(manifest ? "the scheduler accepts a tar the worker refuses"
                  : "the worker unpacks a tar the scheduler refuses",
         manifest ? unpacked.error().to_string() : manifest.error().to_string());
  }
  if (manifest) {
    auto inside = kiln::context::check_symlinks_stay_inside(dest.string());
    if (!inside) fail("the unpack left a symlink that leads outside", inside.error().to_string());
    auto on_disk = kiln::ids::ContextManifest::from_directory(dest.string(), 1);
    if (!on_disk) fail("the unpacked directory has no manifest", on_disk.error().to_string());
    const std::string serialized = manifest->serialize();
    if (on_disk->serialize() != serialized)
      fail("the unpacked tree differs from the tar's manifest",
           serialized + "\n---\n" + on_disk->serialize());
    auto parsed = kiln::ids::ContextManifest::parse(serialized);
    if (!parsed) fail("a manifest's serialisation does not parse", parsed.error().to_string());
    check(parsed->serialize() == serialized, "a manifest parses back different", serialized);
  }
  force_remove(run);
}

// ---- seeds ----

// A tar written entry by entry with libarchive, in memory.
class RawTar {
 public:
  explicit RawTar(int format = ARCHIVE_FORMAT_TAR_PAX_RESTRICTED) : a_(archive_write_new()) {
    archive_write_set_format(a_, format);
    archive_write_set_bytes_in_last_block(a_, 1);
    archive_write_open_memory(a_, buffer_.data(), buffer_.size(), &used_);
  }
  ~RawTar() { archive_write_free(a_); }
  RawTar& dir(const char* name, mode_t perm = 0755) { return add(name, AE_IFDIR, perm, ""); }
  RawTar& file(const char* name, std::string_view content, mode_t perm = 0644) {
    return add(name, AE_IFREG, perm, content);
  }
  RawTar& symlink(const char* name, const char* target) {
    archive_entry* e = entry(name, AE_IFLNK, 0777);
    archive_entry_set_symlink(e, target);
    return write(e, "");
  }
  RawTar& hardlink(const char* name, const char* target) {
    archive_entry* e = entry(name, AE_IFREG, 0644);
    archive_entry_set_hardlink(e, target);
    archive_entry_set_size(e, 0);
    return write(e, "");
  }
  RawTar& device(const char* name) {
    archive_entry* e = entry(name, AE_IFCHR, 0666);
    archive_entry_set_rdev(e, makedev(1, 3));
    return write(e, "");
  }
  std::string bytes() {
    archive_write_close(a_);
    return std::string(buffer_.data(), used_);
  }

 private:
  archive_entry* entry(const char* name, mode_t type, mode_t perm) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    return e;
  }
  RawTar& add(const char* name, mode_t type, mode_t perm, std::string_view content) {
    archive_entry* e = entry(name, type, perm);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    return write(e, content);
  }
  RawTar& write(archive_entry* e, std::string_view content) {
    if (archive_write_header(a_, e) != ARCHIVE_OK) fail("seed tar header", archive_error_string(a_));
    if (!content.empty()) archive_write_data(a_, content.data(), content.size());
    archive_entry_free(e);
    return *this;
  }

  std::array<char, 1 << 16> buffer_{};
  std::size_t used_ = 0;
  archive* a_;
};

// `kiln submit`'s own tar of a small tree.
std::string submitted_tar(const std::function<void(const fs::path&)>& make_tree) {
  const fs::path dir = scratch() / "seed-tree";
  force_remove(dir);
  fs::create_directories(dir);
  make_tree(dir);
  const fs::path tar = scratch() / "seed.tar";
  auto written = kiln::context::write_context_tar(dir.string(), tar.string());
  if (!written) fail("write_context_tar failed", written.error().to_string());
  auto bytes = kiln::read_file(tar.string());
  if (!bytes) fail("cannot read the seed tar");
  force_remove(dir);
  fs::remove(tar);
  return *bytes;
}

void write_seeds(kiln::fuzz::Seeds& seeds) {
  auto text = [](const fs::path& p, std::string_view content) {
    if (!kiln::write_file(p.string(), content)) fail("cannot write a seed file", p.string());
  };
  seeds.add("01-submit-app", submitted_tar([&](const fs::path& d) {
              fs::create_directories(d / "src");
              text(d / "src/main.c", "int main() { return 0; }\n");
              text(d / "Makefile", "app: src/main.c\n\tcc -o app src/main.c\n");
              text(d / "build.sh", "#!/bin/sh\nmake\n");
              fs::permissions(d / "build.sh", fs::perms::owner_all);
              fs::create_symlink("src/main.c", d / "main.c");
              fs::create_directories(d / "empty");
            }));
  seeds.add("02-submit-nested-links", submitted_tar([&](const fs::path& d) {
              fs::create_directories(d / "a/b/c");
              text(d / "a/b/c/deep.txt", "deep\n");
              fs::create_symlink("b/c", d / "a/link-to-c");
              fs::create_symlink("../a/link-to-c/deep.txt", d / "a/b/up");
              fs::create_symlink("missing/file", d / "dangling");
            }));
  seeds.add("03-submit-empty", submitted_tar([](const fs::path&) {}));
  seeds.add("04-submit-long-name", submitted_tar([&](const fs::path& d) {
              fs::create_directories(d / std::string(120, 'd'));
              text(d / std::string(120, 'd') / (std::string(110, 'f') + ".txt"), "long\n");
              text(d / "caf\xc3\xa9.txt", "utf-8\n");
            }));
  seeds.add(
      "05-hardlinks",
      RawTar().dir("bin").file("bin/tool", "#!/bin/sh\n", 0755).hardlink("bin/alias", "bin/tool").bytes());
  seeds.add("06-dot-root", RawTar().dir(".").dir("./src").file("./src//a.txt", "a\n").dir("src/").bytes());
  seeds.add("07-gnu", RawTar(ARCHIVE_FORMAT_TAR_GNUTAR)
                          .dir("d")
                          .file(("d/" + std::string(150, 'g')).c_str(), "gnu\n")
                          .bytes());
  seeds.add("08-ustar",
            RawTar(ARCHIVE_FORMAT_TAR_USTAR).file("x", "ustar\n", 04755).symlink("y", "x").bytes());
  seeds.add("09-dotdot", RawTar().file("../escape", "no\n").bytes());
  seeds.add("10-absolute", RawTar().file("/etc/escape", "no\n").bytes());
  seeds.add("11-link-out", RawTar().dir("d").symlink("d/out", "../../outside/secret").bytes());
  seeds.add("12-through-link", RawTar().symlink("l", ".").file("l/x", "no\n").bytes());
  seeds.add("13-device", RawTar().device("null").bytes());
  seeds.add("14-twice", RawTar().file("a", "1\n").file("a", "2\n").bytes());
  seeds.add("15-implied-then-file", RawTar().file("d/x", "x\n").file("d", "no\n").bytes());
  seeds.add("16-hardlink-later", RawTar().hardlink("a", "b").file("b", "b\n").bytes());
  seeds.add("17-link-chain", RawTar().symlink("a", "b").symlink("b", "c").symlink("c", "a").bytes());
  seeds.add("18-modes", RawTar().dir("locked", 0).file("locked/f", "f\n", 0).dir("open", 0777).bytes());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  kiln::fuzz::write_seeds_if_asked(*argc, *argv, write_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz_tar(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
