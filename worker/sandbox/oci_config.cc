#include "worker/sandbox/oci_config.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <utility>

#include "common/path.h"

namespace kiln::sandbox {
namespace {

using nlohmann::json;

struct Capability {
  const char* name;
  int bit;
};

// What root inside a step may do. Docker's default set without
// CAP_NET_RAW and CAP_NET_BIND_SERVICE: steps may share the host network.
constexpr Capability kCapabilities[] = {
    {"CAP_CHOWN", 0},       {"CAP_DAC_OVERRIDE", 1}, {"CAP_FOWNER", 3},       {"CAP_FSETID", 4},
    {"CAP_KILL", 5},        {"CAP_SETGID", 6},       {"CAP_SETUID", 7},       {"CAP_SETPCAP", 8},
    {"CAP_SYS_CHROOT", 18}, {"CAP_MKNOD", 27},       {"CAP_AUDIT_WRITE", 29}, {"CAP_SETFCAP", 31},
};

// Denied calls fail with EPERM, the answer a process without the privilege
// gets, which programs already handle; clone3 with ENOSYS, the answer of an
// older kernel, on which the C library falls back to clone.
constexpr int kEperm = EPERM;
constexpr int kEnosys = ENOSYS;

// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
constexpr std::uint64_t kNamespaceFlags[] = {0x00020000, 0x02000000, 0x04000000, 0x08000000,
                                             0x10000000, 0x20000000, 0x40000000, 0x00000080};

json mount(std::string destination, std::string type, std::string source, std::vector<std::string> options) {
  return json{{"destination", std::move(destination)},
              {"type", std::move(type)},
              {"source", std::move(source)},
              {"options", std::move(options)}};
}

json rlimit(const char* type, std::uint64_t value) {
  return json{{"type", type}, {"hard", value}, {"soft", value}};
}

std::unexpected<Error> invalid(std::string message) {
  return make_error(ErrorKind::kInvalidArgument, std::move(message));
}

// An absolute container path in canonical form, or an error naming `what`.
Result<std::string> container_path(std::string_view path, std::string_view what) {
  if (path.empty() || path[0] != '/')
    return invalid(fmt::format("{} {:?} must be an absolute path inside the container", what, path));
  auto normal = path::normalize_absolute(path);
  if (!normal) return invalid(fmt::format("{} {:?}: {}", what, path, normal.error().message()));
  return *normal;
}

}  // namespace

const std::vector<std::string>& default_capabilities() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& c : kCapabilities) v.emplace_back(c.name);
    return v;
  }();
  return names;
}

std::uint64_t default_capability_mask() {
  std::uint64_t mask = 0;
  for (const auto& c : kCapabilities) mask |= std::uint64_t{1} << c.bit;
  return mask;
}

const std::vector<DeniedSyscalls>& seccomp_denied_syscalls() {
  static const std::vector<DeniedSyscalls> classes = {
      {"kernel keyring",
       "keys are not namespaced: a step could read or plant keys of the host's users and services",
       {"add_key", "keyctl", "request_key"}},
      {"mounting",
       "a step gets its mounts from kiln; new ones (possible in a user namespace of its own) expose "
       "filesystem code written for trusted input",
       {"mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
        "open_tree", "mount_setattr"}},
      {"tracing other processes",
       "reading and writing other processes' memory; strace and gdb do not work in a step",
       {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp"}},
      {"kernel modules",
       "code loaded into the host's kernel",
       {"init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms"}},
      {"setting the clock",
       "the clock is the host's, shared by every process and certificate check",
       {"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64"}},
      {"reboot and kexec",
       "restarting or replacing the host's kernel",
       {"reboot", "kexec_load", "kexec_file_load"}},
      {"swap", "the host's swap devices", {"swapon", "swapoff"}},
      {"BPF", "programs run inside the kernel; a frequent way to kernel exploits", {"bpf"}},
      {"performance counters",
       "observes the kernel and other processes; a frequent source of kernel bugs",
       {"perf_event_open"}},
      {"userfaultfd",
       "lets a process stall the kernel on a page fault, widening races in kernel exploits",
       {"userfaultfd"}},
      {"namespaces",
       "a new user namespace gives every capability inside it and with them kernel code meant for root; "
       "a step runs in the namespaces kiln made for it",
       {"setns"},
       /*namespace_flags=*/true},
      {"file handles",
       "open_by_handle_at opens any file of a filesystem by its handle, past the mounts the step sees",
       {"open_by_handle_at", "name_to_handle_at"}},
      {"kernel log", "kernel messages show host addresses and other tenants' activity", {"syslog"}},
      {"raw I/O ports", "direct access to the host's hardware", {"iopl", "ioperm"}},
      {"io_uring",
       "a large, young interface behind many kernel privilege escalations; programs fall back",
       {"io_uring_setup", "io_uring_enter", "io_uring_register"}},
      {"host administration",
       "process accounting, disk quotas and terminal hangup are the host's",
       {"acct", "quotactl", "quotactl_fd", "vhangup", "nfsservctl", "lookup_dcookie", "uselib", "_sysctl"}},
  };
  return classes;
}

json default_seccomp_profile() {
  auto deny = [](std::vector<std::string_view> names, int err, json args = json::array()) {
    json rule = {{"names", json::array()}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", err}};
    for (auto n : names) rule["names"].push_back(std::string(n));
    if (!args.empty()) rule["args"] = std::move(args);
    return rule;
  };
  json rules = json::array();
  for (const DeniedSyscalls& c : seccomp_denied_syscalls()) {
    rules.push_back(deny(c.syscalls, kEperm));
    if (!c.namespace_flags) continue;
    // Conditions of one rule all have to hold; one rule per flag makes "any of them".
    for (std::uint64_t flag : kNamespaceFlags) {
      json flag_set =
          json::array({{{"index", 0}, {"value", flag}, {"valueTwo", flag}, {"op", "SCMP_CMP_MASKED_EQ"}}});
      rules.push_back(deny({"clone", "unshare"}, kEperm, std::move(flag_set)));
    }
    rules.push_back(deny({"clone3"}, kEnosys));
  }
#if defined(__x86_64__)
  json architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  json architectures = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
  json architectures = json::array();  // the native one only
#endif
  return json{{"defaultAction", "SCMP_ACT_ALLOW"},
              {"architectures", std::move(architectures)},
              {"syscalls", std::move(rules)}};
}

const std::vector<std::string>& masked_paths() {
  static const std::vector<std::string> paths = {
      "/proc/acpi",       "/proc/asound",      "/proc/kcore",       "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
  };
  return paths;
}

const std::vector<std::string>& readonly_paths() {
  static const std::vector<std::string> paths = {
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
  };
  return paths;
}

std::string hosts_file_content(std::string_view hostname) {
  std::string out = "127.0.0.1\tlocalhost";
  if (!hostname.empty() && hostname != "localhost") out += fmt::format(" {}", hostname);
  out += "\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  return out;
}

Result<IdRange> parse_id_range(std::string_view text) {
  if (text.empty()) return kDefaultUserNamespace;
  auto bad = [&](std::string_view why) {
    return invalid(fmt::format("--userns {:?}: {}; give HOST_FIRST:COUNT, e.g. {}:{}", text, why,
                               kDefaultUserNamespace.host_first, kDefaultUserNamespace.count));
  };
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return bad("no ':'");
  std::uint64_t first = 0, count = 0;
  auto number = [](std::string_view digits, std::uint64_t& out) {
    if (digits.empty() || digits.size() > 10) return false;
    out = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
  };
  if (!number(text.substr(0, colon), first) || !number(text.substr(colon + 1), count))
    return bad("not two numbers");
  if (first == 0) return bad("host id 0 is root: a user namespace must map the step's root elsewhere");
  if (count == 0) return bad("an empty range");
  if (first + count > 0xFFFFFFFFull) return bad("the range ends past the last host id (4294967294)");
  return IdRange{static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(count)};
}

Result<json> make_oci_config(const RunSpec& spec, const OciPaths& paths, const OciOptions& options) {
  if (spec.argv.empty()) return invalid("the step's command (argv) is empty");
  KILN_ASSIGN_OR_RETURN(std::string cwd, container_path(spec.cwd, "working directory"));
  for (const auto& e : spec.env) {
    if (e.find('=') == std::string::npos || e.front() == '=')
      return invalid(fmt::format("environment entry {:?} is not of the form KEY=VALUE", e));
  }
  bool host_network = spec.host_network();
  if (!spec.network.empty() && !host_network)
    return invalid(fmt::format("unsupported network {:?}: use none (loopback only) or \"host\"",
                               fmt::join(spec.network, " ")));
  if (paths.secret_files.size() != spec.secrets.size())
    return make_error(ErrorKind::kInternal, fmt::format("{} secret files prepared for {} secrets",
                                                        paths.secret_files.size(), spec.secrets.size()));
  if (spec.limits.memory_bytes && *spec.limits.memory_bytes == 0)
    return invalid("memory limit of 0 bytes: give a positive size or no limit");
  if (spec.limits.pids && *spec.limits.pids == 0)
    return invalid("pids limit of 0: give a positive count or no limit");
  if (spec.limits.cpu_millicores && *spec.limits.cpu_millicores == 0)
    return invalid("cpu limit of 0 millicores: give a positive value or no limit");
  if (spec.hostname.empty()) return invalid("the container's hostname is empty");
  const auto& userns = options.user_namespace;
  if (userns && (spec.uid >= userns->count || spec.gid >= userns->count))
    return invalid(
        fmt::format("user {}:{} is outside the user namespace's {} ids: give --userns a larger COUNT",
                    spec.uid, spec.gid, userns->count));

  const auto& caps = default_capabilities();
  json process = {
      {"terminal", false},
      {"user", {{"uid", spec.uid}, {"gid", spec.gid}}},
      {"args", spec.argv},
      {"env", spec.env},
      {"cwd", cwd},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"inheritable", caps}, {"permitted", caps}}},
      // Explicit because the inherited limits can be higher than what this
      // host lets even root set (no CAP_SYS_RESOURCE): runc would fail.
      {"rlimits", json::array({rlimit("RLIMIT_NOFILE", 1024), rlimit("RLIMIT_NPROC", 1024)})},
      {"noNewPrivileges", options.no_new_privileges},
  };

  json mounts = json::array({
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      // A user namespace may mount sysfs only for a network namespace it
      // owns; with the host's network it gets the host's /sys, read-only.
      userns && host_network ? mount("/sys", "bind", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro"})
                             : mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
      // nosuid, nodev, noexec as the file's own mount has them: in a user
      // namespace, the runtime's read-only remount may not clear them.
      mount("/etc/hosts", "bind", paths.hosts_file, {"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"}),
  });
  if (host_network)
    mounts.push_back(mount("/etc/resolv.conf", "bind", "/etc/resolv.conf", {"rbind", "rprivate", "ro"}));
  for (std::size_t i = 0; i < spec.secrets.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(std::string target, container_path(spec.secrets[i].target, "secret target"));
    if (target == "/") return invalid("secret target \"/\" is not a file path");
    mounts.push_back(mount(target, "bind", paths.secret_files[i],
                           {"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"}));
  }
  if (!paths.mount_sources.empty() && paths.mount_sources.size() != spec.mounts.size())
    return make_error(ErrorKind::kInternal, fmt::format("{} mount sources prepared for {} mounts",
                                                        paths.mount_sources.size(), spec.mounts.size()));
  for (std::size_t i = 0; i < spec.mounts.size(); ++i) {
    const BindMount& m = spec.mounts[i];
    if (m.source.empty() || m.source[0] != '/')
      return invalid(fmt::format("mount source {:?} must be an absolute host path", m.source));
    KILN_ASSIGN_OR_RETURN(std::string destination, container_path(m.destination, "mount target"));
    std::vector<std::string> opts = {"rbind", "rprivate", "nosuid", "nodev"};
    if (m.read_only) opts.push_back("ro");
    mounts.push_back(mount(destination, "bind",
                           paths.mount_sources.empty() ? m.source : paths.mount_sources[i], std::move(opts)));
  }

  json namespaces =
      json::array({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}});
  if (!host_network) namespaces.push_back({{"type", "network"}});
  if (userns) namespaces.push_back({{"type", "user"}});

  json config = {
      {"ociVersion", "1.0.2"},
      {"process", std::move(process)},
      {"root", {{"path", paths.rootfs}, {"readonly", false}}},
      {"hostname", spec.hostname},
      {"mounts", std::move(mounts)},
      {"linux",
       {{"namespaces", std::move(namespaces)},
        {"cgroupsPath", paths.cgroups_path},
        {"maskedPaths", masked_paths()},
        {"readonlyPaths", readonly_paths()}}},
  };
  if (options.seccomp) config["linux"]["seccomp"] = default_seccomp_profile();
  if (userns) {
    json mapping =
        json::array({{{"containerID", 0}, {"hostID", userns->host_first}, {"size", userns->count}}});
    config["linux"]["uidMappings"] = mapping;
    config["linux"]["gidMappings"] = mapping;
  }
  return config;
}

}  // namespace kiln::sandbox
