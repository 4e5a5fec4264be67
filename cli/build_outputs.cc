#include "cli/build_outputs.h"

#include <fcntl.h>
#include <unistd.h>

#include <iostream>
#include <limits>

#include <fmt/format.h>

#include "common/context/result_tar.h"
#include "common/format.h"
#include "common/fs.h"
#include "common/unique_fd.h"
#include "worker/pusher/image_pusher.h"

namespace kiln::cli {

Status check_output_flags(const std::vector<std::string>& outputs) {
  for (const std::string& value : outputs) KILN_RETURN_IF_ERROR(context::parse_output_flag(value));
  return {};
}

Status write_outputs(builder::LocalBuilder& local, const std::string& id,
                     const std::vector<std::string>& outputs, const std::string& tmp_dir,
                     std::ostream& notes) {
  if (outputs.empty()) return {};
  KILN_RETURN_IF_ERROR(ensure_dirs(tmp_dir));
  for (const std::string& value : outputs) {
    KILN_ASSIGN_OR_RETURN(auto flag, context::parse_output_flag(value));
    const auto& [src, dest] = flag;
    // An unnamed file: nothing to clean up whatever happens.
    UniqueFd tar(::open(tmp_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!tar) return errno_error("cannot make a temporary file in " + tmp_dir);
    KILN_ASSIGN_OR_RETURN(
        context::ResultTar written,
        local.write_result_tar(
            id, src, [&](std::string_view chunk) { return write_all(tar.get(), chunk, "the output tar"); },
            std::numeric_limits<std::uint64_t>::max()));
    for (const std::string& skipped : written.skipped)
      notes << fmt::format("kiln: --output {}: left out {}: not a file, directory or symlink\n", src,
                           skipped);
    if (::lseek(tar.get(), 0, SEEK_SET) != 0) return errno_error("cannot rewind the output tar");
    KILN_ASSIGN_OR_RETURN(std::uint64_t entries,
                          with_context(context::unpack_result_tar(tar.get(), dest), "--output " + value));
    notes << fmt::format("kiln: output {} -> {}: {} entries, {}\n", src, dest, entries,
                         human_bytes(written.bytes));
  }
  return {};
}

Status push_output(store::Store& store, const std::string& id, const spec::Spec& spec,
                   const std::string& reference, const builder::LocalBuilderOptions& flags,
                   const std::string& home, std::ostream& notes) {
  if (reference.empty()) return {};
  pusher::PushOptions options;
  options.reference = reference;
  options.registry.cache_dir = home + "/image-cache";
  options.registry.insecure_registries = flags.insecure_registries;
  options.registry.ca_file = flags.registry_ca;
  options.tmp_dir = home + "/tmp";
  options.docker_host = flags.docker_host;
  KILN_ASSIGN_OR_RETURN(pusher::PushResult pushed,
                        pusher::push_result(store, id, spec, options, [&](std::string_view line) {
                          notes << "kiln: push: " << line << "\n";
                        }));
  std::cout << "Pushed: " << pushed.reference << "@" << pushed.digest << "\n";
  return {};
}

}  // namespace kiln::cli
