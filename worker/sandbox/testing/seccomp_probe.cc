// kiln_seccomp_probe: a static program the sandbox's tests run inside real
// steps. For each class of system calls named on its command line (see
// kAttempts) it makes every call of that class, each in a forked child so
// that one call's effect (a new namespace) cannot change the next, with
// arguments chosen so that nothing happens when a call is allowed, and so
// that a kernel without a seccomp filter answers something other than EPERM
// to a process holding every capability (an unknown command, a bad pointer,
// a missing path). It prints one line per call:
//
//   namespaces unshare(CLONE_NEWUSER): EPERM
//   namespaces clone3: ENOSYS
//   keyring keyctl: ok
//
// and exits 0, or 2 for an unknown class. `all` runs every class.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <string_view>

namespace {

constexpr long kNoSuchPid = 0x3fffffff;  // above any pid_max
const char* const kMissing = "/kiln-probe-missing";

struct Attempt {
  const char* klass;
  const char* call;
  long (*run)();
};

#define KILN_SYSCALL_OR_ENOSYS(nr, ...) (nr >= 0 ? ::syscall(nr, ##__VA_ARGS__) : (errno = ENOSYS, -1L))
#ifndef SYS_fsopen
#define SYS_fsopen -1
#define SYS_fsconfig -1
#define SYS_fsmount -1
#define SYS_fspick -1
#define SYS_move_mount -1
#define SYS_open_tree -1
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr -1
#endif
#ifndef SYS_clone3
#define SYS_clone3 -1
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup -1
#define SYS_io_uring_enter -1
#define SYS_io_uring_register -1
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd -1
#endif
#ifndef SYS_iopl
#define SYS_iopl -1
#define SYS_ioperm -1
#endif

long unshare_flag(unsigned long flag) {
  return ::syscall(SYS_unshare, flag);
}

long clone_flags(unsigned long flags) {
  long pid = ::syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) ::_exit(0);  // the new child
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return pid < 0 ? -1 : 0;
}

const Attempt kAttempts[] = {
    {"keyring", "add_key",
     [] { return ::syscall(SYS_add_key, "user", "kiln-probe", "x", 1, -2 /*KEY_SPEC_PROCESS_KEYRING*/); }},
    {"keyring", "keyctl",
     [] { return ::syscall(SYS_keyctl, 0 /*KEYCTL_GET_KEYRING_ID*/, -3 /*KEY_SPEC_SESSION_KEYRING*/, 0); }},
    {"keyring", "request_key",
     [] { return ::syscall(SYS_request_key, "user", "kiln-probe-missing", nullptr, 0); }},

    {"mount", "mount", [] { return ::syscall(SYS_mount, "none", kMissing, "tmpfs", 0, nullptr); }},
    {"mount", "umount2", [] { return ::syscall(SYS_umount2, kMissing, 0); }},
    {"mount", "pivot_root", [] { return ::syscall(SYS_pivot_root, kMissing, kMissing); }},
    {"mount", "fsopen", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_fsopen, "kiln-probe-no-such-fs", 0); }},
    {"mount", "fsconfig", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_fsconfig, -1, 6, nullptr, nullptr, 0); }},
    {"mount", "fsmount", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_fsmount, -1, 0, 0); }},
    {"mount", "fspick", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_fspick, -1, kMissing, 0); }},
    {"mount", "move_mount",
     [] { return KILN_SYSCALL_OR_ENOSYS(SYS_move_mount, -1, kMissing, -1, kMissing, 0); }},
    {"mount", "open_tree", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_open_tree, -1, kMissing, 0); }},
    {"mount", "mount_setattr",
     [] { return KILN_SYSCALL_OR_ENOSYS(SYS_mount_setattr, -1, kMissing, 0, nullptr, 0); }},

    {"ptrace", "ptrace", [] { return ::syscall(SYS_ptrace, 2 /*PTRACE_PEEKDATA*/, kNoSuchPid, 0, 0); }},
    {"ptrace", "process_vm_readv",
     [] { return ::syscall(SYS_process_vm_readv, kNoSuchPid, nullptr, 0, nullptr, 0, 0); }},
    {"ptrace", "process_vm_writev",
     [] { return ::syscall(SYS_process_vm_writev, kNoSuchPid, nullptr, 0, nullptr, 0, 0); }},
    {"ptrace", "kcmp", [] { return ::syscall(SYS_kcmp, ::getpid(), ::getpid(), 0 /*KCMP_FILE*/, 1, 1); }},

    {"modules", "init_module", [] { return ::syscall(SYS_init_module, nullptr, 0, ""); }},
    {"modules", "finit_module", [] { return ::syscall(SYS_finit_module, -1, "", 0); }},
    {"modules", "delete_module",
     [] { return ::syscall(SYS_delete_module, "kiln_probe_missing", O_NONBLOCK); }},

    {"clock", "clock_settime", [] { return ::syscall(SYS_clock_settime, 0 /*CLOCK_REALTIME*/, nullptr); }},
    {"clock", "settimeofday",
     [] { return ::syscall(SYS_settimeofday, reinterpret_cast<void*>(1), nullptr); }},
    {"clock", "clock_adjtime", [] { return ::syscall(SYS_clock_adjtime, 0, nullptr); }},

    // A wrong magic number: refused before anything else even when allowed.
    {"reboot", "reboot", [] { return ::syscall(SYS_reboot, 0, 0, 0, nullptr); }},
    {"kexec", "kexec_load", [] { return ::syscall(SYS_kexec_load, 0, 0, nullptr, 0xdead0000UL); }},
    {"kexec", "kexec_file_load",
     [] { return ::syscall(SYS_kexec_file_load, -1, -1, 0, nullptr, 0xdead0000UL); }},

    {"swap", "swapon", [] { return ::syscall(SYS_swapon, nullptr, 0); }},
    {"swap", "swapoff", [] { return ::syscall(SYS_swapoff, nullptr); }},

    {"bpf", "bpf", [] { return ::syscall(SYS_bpf, 9999, nullptr, 0); }},
    {"perf", "perf_event_open", [] { return ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }},
    // UFFD_USER_MODE_ONLY (allowed to anyone) plus an unknown flag.
    {"userfaultfd", "userfaultfd", [] { return ::syscall(SYS_userfaultfd, 1 | 0x40000000); }},

    {"namespaces", "unshare(CLONE_NEWUSER)", [] { return unshare_flag(CLONE_NEWUSER); }},
    {"namespaces", "unshare(CLONE_NEWNS)", [] { return unshare_flag(CLONE_NEWNS); }},
    {"namespaces", "unshare(CLONE_NEWNET)", [] { return unshare_flag(CLONE_NEWNET); }},
    {"namespaces", "unshare(CLONE_NEWPID)", [] { return unshare_flag(CLONE_NEWPID); }},
    {"namespaces", "unshare(CLONE_NEWIPC)", [] { return unshare_flag(CLONE_NEWIPC); }},
    {"namespaces", "unshare(CLONE_NEWUTS)", [] { return unshare_flag(CLONE_NEWUTS); }},
    {"namespaces", "unshare(CLONE_NEWCGROUP)", [] { return unshare_flag(CLONE_NEWCGROUP); }},
    {"namespaces", "unshare(CLONE_NEWTIME)", [] { return unshare_flag(0x80 /*CLONE_NEWTIME*/); }},
    {"namespaces", "clone(CLONE_NEWUSER)", [] { return clone_flags(CLONE_NEWUSER); }},
    {"namespaces", "setns", [] { return ::syscall(SYS_setns, -1, 0); }},
    {"namespaces", "clone3", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_clone3, nullptr, 0); }},
    // What must stay allowed: fork, and unshare of what is not a namespace.
    {"namespaces", "clone(fork)", [] { return clone_flags(0); }},
    {"namespaces", "unshare(CLONE_FS|CLONE_FILES)", [] { return unshare_flag(CLONE_FS | CLONE_FILES); }},

    {"file-handles", "open_by_handle_at", [] { return ::syscall(SYS_open_by_handle_at, -1, nullptr, 0); }},
    {"file-handles", "name_to_handle_at",
     [] { return ::syscall(SYS_name_to_handle_at, AT_FDCWD, "/", nullptr, nullptr, 0); }},

    {"kernel-log", "syslog",
     [] { return ::syscall(SYS_syslog, 10 /*SYSLOG_ACTION_SIZE_BUFFER*/, nullptr, 0); }},

    {"raw-io", "iopl", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_iopl, 4); }},
    {"raw-io", "ioperm", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_ioperm, 0, 0, 0); }},

    {"io_uring", "io_uring_setup", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_io_uring_setup, 0, nullptr); }},
    {"io_uring", "io_uring_enter",
     [] { return KILN_SYSCALL_OR_ENOSYS(SYS_io_uring_enter, -1, 0, 0, 0, nullptr, 0); }},
    {"io_uring", "io_uring_register",
     [] { return KILN_SYSCALL_OR_ENOSYS(SYS_io_uring_register, -1, 0, nullptr, 0); }},

    {"host-admin", "acct", [] { return ::syscall(SYS_acct, kMissing); }},
    {"host-admin", "quotactl", [] { return ::syscall(SYS_quotactl, 0, nullptr, 0, nullptr); }},
    {"host-admin", "quotactl_fd", [] { return KILN_SYSCALL_OR_ENOSYS(SYS_quotactl_fd, -1, 0, 0, nullptr); }},
    {"host-admin", "vhangup", [] { return ::syscall(SYS_vhangup); }},
};

// Runs one attempt in a child; returns 0 for success or the errno.
int attempt(const Attempt& a) {
  pid_t child = ::fork();
  if (child < 0) return errno;
  if (child == 0) {
    errno = 0;
    long r = a.run();
    ::_exit(r < 0 ? (errno != 0 ? errno : 255) : 0);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) return 254;
  return WEXITSTATUS(status);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view klass = argv[i];
    bool known = false;
    for (const Attempt& a : kAttempts) {
      if (klass != "all" && klass != a.klass) continue;
      known = true;
      int err = attempt(a);
      const char* name = err == 0 ? "ok" : err == 254 ? "killed" : ::strerrorname_np(err);
      ::printf("%s %s: %s\n", a.klass, a.call, name != nullptr ? name : "unknown errno");
    }
    if (!known) {
      ::fprintf(stderr, "kiln_seccomp_probe: unknown class %s\n", argv[i]);
      return 2;
    }
  }
  return 0;
}
