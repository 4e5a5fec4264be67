#include "cli/job_outputs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "common/context/result_tar.h"
#include "common/format.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "common/unique_fd.h"

namespace kiln::cli {
namespace {

constexpr std::uint32_t kChunkBytes = 1u << 20;

// An unnamed temporary file in $TMPDIR (or /tmp): gone however the command ends.
Result<UniqueFd> temporary_file() {
  std::error_code ec;
  std::string dir = std::filesystem::temp_directory_path(ec).string();
  if (ec) dir = "/tmp";
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (fd) return fd;
  // A file system without O_TMPFILE: a named file, unlinked at once.
  std::string path = dir + "/kiln-output-XXXXXX";
  fd.reset(::mkostemp(path.data(), O_CLOEXEC));
  if (!fd) return errno_error("cannot make a temporary file in " + dir);
  ::unlink(path.c_str());
  return fd;
}

// Reads output `output` of job `job_id` into `fd`, checking its size and digest.
Status download(proto::Client& client, const std::string& job_id, const proto::Output& output, int fd) {
  Sha256 hash;
  std::uint64_t offset = 0;
  while (offset < output.size) {
    KILN_ASSIGN_OR_RETURN(auto chunk, client.call<proto::ContextChunk>(proto::GetOutput{
                                          .job_id = job_id,
                                          .digest = output.digest,
                                          .offset = offset,
                                          .max_bytes = kChunkBytes}));
    if (chunk.offset != offset || chunk.total_size != output.size || chunk.data.empty() ||
        chunk.data.size() > output.size - offset)
      return make_error(ErrorKind::kFailedPrecondition,
                        fmt::format("the scheduler sent {} bytes at offset {} of a {}-byte output when asked "
                                    "for offset {} of {} bytes",
                                    chunk.data.size(), chunk.offset, chunk.total_size, offset, output.size));
    KILN_RETURN_IF_ERROR(write_all(fd, chunk.data, "the output tar"));
    hash.update(chunk.data);
    offset += chunk.data.size();
  }
  const std::string got = "sha256:" + hash.hex_digest();
  if (got != output.digest)
    return make_error(ErrorKind::kFailedPrecondition,
                      fmt::format("output {} arrived with digest {}, not {}; nothing was unpacked", output.src,
                                  got, output.digest));
  return {};
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> parse_output_flags(
    const std::vector<std::string>& values) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& value : values) {
    KILN_ASSIGN_OR_RETURN(auto flag, context::parse_output_flag(value));
    out.push_back(std::move(flag));
  }
  return out;
}

Status fetch_outputs(proto::Client& client, const proto::JobInfo& job,
                     const std::vector<std::pair<std::string, std::string>>& wanted, std::ostream& notes) {
  for (const auto& [src, dest] : wanted) {
    auto it = std::find_if(job.output_files.begin(), job.output_files.end(),
                           [&](const proto::Output& o) { return o.src == src; });
    if (it == job.output_files.end()) {
      std::string asked;
      for (const std::string& s : job.outputs) asked += (asked.empty() ? "" : ", ") + s;
      return make_error(ErrorKind::kNotFound,
                        job.state != "succeeded"
                            ? fmt::format("job {} is {}: outputs exist once a job succeeded", job.id, job.state)
                            : fmt::format("job {} has no output {:?} (it asked for: {})", job.id, src,
                                          asked.empty() ? "none; submit with --output SRC:DESTDIR" : asked));
    }
    KILN_ASSIGN_OR_RETURN(UniqueFd tar, temporary_file());
    KILN_RETURN_IF_ERROR(
        with_context(download(client, job.id, *it, tar.get()), fmt::format("fetching output {} of job {}", src,
                                                                             job.id)));
    if (::lseek(tar.get(), 0, SEEK_SET) != 0) return errno_error("cannot rewind the output tar");
    KILN_ASSIGN_OR_RETURN(std::uint64_t entries,
                          with_context(context::unpack_result_tar(tar.get(), dest), "--output " + src + ":" + dest));
    notes << fmt::format("kiln: output {} -> {}: {} entries, {}\n", src, dest, entries, human_bytes(it->size));
  }
  return {};
}

}  // namespace kiln::cli
