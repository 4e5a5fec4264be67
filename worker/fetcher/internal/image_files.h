// Internal to worker/fetcher: read access to the files of an image, wherever
// they are kept — a directory (an OCI image layout) or a tarball (`docker
// save` output, an OCI layout packed in a tar). The manifest and layer code
// above it does not care which.
//
//   KILN_ASSIGN_OR_RETURN(auto files, open_image_tarball("/tmp/busybox.tar"));
//   KILN_ASSIGN_OR_RETURN(std::string index, files->read_file("index.json", 4 << 20));
//   KILN_ASSIGN_OR_RETURN(auto blob, files->open("blobs/sha256/ab12..."));
//   while (true) { KILN_ASSIGN_OR_RETURN(size_t n, blob->read(buffer)); if (n == 0) break; ... }
//
// Contract: paths are relative, '/'-separated, without "." or ".." (callers
// normalise them; these classes refuse ".."). A tarball allows one open blob
// at a time: opening another (or reading a file) invalidates the previous
// reader. Not thread-safe: one thread per object. Errors are kNotFound for a
// missing file, kIo otherwise, and name the image file and the path within it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/error.h"

namespace kiln::fetcher::internal {

// A sequential reader of one file's bytes.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Reads up to buffer.size() bytes; 0 means end of file.
  virtual Result<std::size_t> read(std::span<char> buffer) = 0;
  // Size in bytes, when known (-1 otherwise).
  virtual std::int64_t size() const = 0;
};

class ImageFiles {
 public:
  virtual ~ImageFiles() = default;
  // Whole content of a small file; kInvalidArgument if larger than max_bytes.
  virtual Result<std::string> read_file(const std::string& path, std::size_t max_bytes) = 0;
  // A reader over a (possibly large) file.
  virtual Result<std::unique_ptr<BlobReader>> open(const std::string& path) = 0;
  // "DIR/PATH" or "FILE (entry PATH)", for messages.
  virtual std::string describe(const std::string& path) const = 0;
};

// Files of the directory `dir` (absolute).
std::unique_ptr<ImageFiles> open_image_directory(const std::string& dir);

// Files inside the tarball `file` (plain, gzip or zstd compressed). Symlink
// and hardlink entries are followed within the tarball.
Result<std::unique_ptr<ImageFiles>> open_image_tarball(const std::string& file);

}  // namespace kiln::fetcher::internal
