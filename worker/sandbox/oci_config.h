// The OCI runtime configuration (config.json) kiln gives runc or crun for one
// step: what the container gets, decided in one place (docs/sandbox.md).
//
//   OciPaths paths{.rootfs = "/store/tmp/abc/rootfs", .hosts_file = bundle + "/hosts",
//                  .secret_files = {bundle_secrets + "/0"}, .cgroups_path = "/kiln/g/kiln-1f2e"};
//   KILN_ASSIGN_OR_RETURN(nlohmann::json config, make_oci_config(spec, paths, {}));
//   write(bundle + "/config.json", config.dump(2));
//
// Contract: pure functions (no filesystem access). make_oci_config validates
// the RunSpec and fails with kInvalidArgument naming the bad field; secret
// values never appear in the configuration (only the host files holding
// them). Thread safety: none needed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "worker/sandbox/sandbox.h"

namespace kiln::sandbox {

// Host-side paths the configuration refers to, prepared by the runtime driver.
struct OciPaths {
  std::string rootfs;                     // absolute, symlink-free
  std::string hosts_file;                 // mounted read-only at /etc/hosts
  std::vector<std::string> secret_files;  // one per RunSpec::secrets entry, same order
  std::string cgroups_path;               // absolute cgroup path of the container
  // What to bind for each RunSpec::mounts entry, same order (idmapped views
  // of them in a user namespace); empty: each mount's own source.
  std::vector<std::string> mount_sources;
};

// Container ids 0..count-1 as host ids host_first..host_first+count-1, for
// uids and gids alike (a user namespace's mapping).
struct IdRange {
  std::uint32_t host_first = 0;
  std::uint32_t count = 0;
  friend bool operator==(const IdRange&, const IdRange&) = default;
};

// `--userns` without a value: host ids 1,000,000,000 to 1,000,065,535 (why:
// docs/sandbox.md, "User namespace").
inline constexpr IdRange kDefaultUserNamespace{1'000'000'000, 65536};

// "HOST_FIRST:COUNT" (the --userns flag's value); "" means
// kDefaultUserNamespace. kInvalidArgument for anything else, host root
// inside the range, fewer than 1 id or a range past 2^32 - 2.
Result<IdRange> parse_id_range(std::string_view text);

struct OciOptions {
  // Set the no_new_privs bit: setuid binaries (sudo) stop working for
  // non-root steps. Off by default, as in OBuilder, whose specs often run
  // `sudo` after `(user ...)`.
  bool no_new_privileges = false;
  // The default seccomp profile (default_seccomp_profile()). Off only for
  // comparisons (tests, measurements).
  bool seccomp = true;
  // Run steps in a user namespace of their own with this mapping: the
  // step's root is host uid host_first, with capabilities only inside the
  // namespace. OciPaths must then point at files that uid can reach, the
  // root filesystem and cache mounts idmapped (RuncSandbox does both).
  std::optional<IdRange> user_namespace;
};

// A class of system calls the default seccomp profile refuses with EPERM,
// and why (the list and the reasons are docs/sandbox.md's, "Seccomp").
struct DeniedSyscalls {
  std::string_view what;                   // "kernel keyring"
  std::string_view why;                    // one sentence
  std::vector<std::string_view> syscalls;  // refused whatever their arguments
  // Also refused: clone and unshare with any CLONE_NEW* flag (other flags,
  // fork and unshare(CLONE_FS) stay allowed), and clone3, whose flags the
  // filter cannot read, with ENOSYS so that the C library falls back to clone.
  bool namespace_flags = false;
};
const std::vector<DeniedSyscalls>& seccomp_denied_syscalls();

// The OCI `linux.seccomp` object: everything allowed except
// seccomp_denied_syscalls(), for the native architecture and its 32-bit
// companions (x86_64: x86 and x32), so that the old system call entry points
// do not bypass it.
nlohmann::json default_seccomp_profile();

// The capabilities a step's root keeps: Docker's default set minus the
// network ones (about a dozen).
const std::vector<std::string>& default_capabilities();

// The capability bits of default_capabilities(), as /proc/PID/status shows
// them in CapEff (for tests and diagnostics).
std::uint64_t default_capability_mask();

// /proc and /sys paths hidden or made read-only, as runc's default spec.
const std::vector<std::string>& masked_paths();
const std::vector<std::string>& readonly_paths();

// The generated /etc/hosts: localhost and the step's hostname on loopback.
std::string hosts_file_content(std::string_view hostname);

// Builds the configuration. Fails (kInvalidArgument) on an empty argv, a
// relative cwd or mount/secret target, an env entry without '=', an
// unsupported network, a zero limit, secret_files not matching secrets, or
// a uid or gid outside options.user_namespace.
Result<nlohmann::json> make_oci_config(const RunSpec& spec, const OciPaths& paths, const OciOptions& options);

}  // namespace kiln::sandbox
