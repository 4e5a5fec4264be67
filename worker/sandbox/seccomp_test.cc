// The default seccomp profile against the real kernel, through the real
// runtimes: a step runs kiln_seccomp_probe (testing/seccomp_probe.cc), which
// makes every call of one denied class and prints how each ended.
//
// A step's root lacks most capabilities, so many denied calls would fail
// with EPERM anyway. To see the filter itself, ProfileTest runs the probe
// in a container made from kiln's own config.json with *every* capability
// added: there only the profile can answer EPERM, and the same step without
// the profile (the control) gets other answers for each call. SandboxTest
// runs it as an ordinary step through RuncSandbox.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include "common/subprocess.h"
#include "tests/support/temp_dir.h"
#include "worker/sandbox/oci_config.h"
#include "worker/sandbox/runc_sandbox.h"
#include "worker/sandbox/testing/sandbox_test_util.h"

namespace kiln::sandbox {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// "call" -> "EPERM" / "ok" / errno name, from the probe's output.
using ProbeResults = std::map<std::string, std::string>;

ProbeResults parse_probe(const std::string& klass, const std::string& output) {
  ProbeResults results;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with(klass + " ")) continue;
    auto colon = line.rfind(": ");
    if (colon == std::string::npos) continue;
    results[line.substr(klass.size() + 1, colon - klass.size() - 1)] = line.substr(colon + 2);
  }
  return results;
}

// What every class's calls must answer under the profile; the calls listed
// in kStillAllowed must keep working.
const std::map<std::string, std::string> kNotEperm = {{"clone3", "ENOSYS"}};
const std::vector<std::string> kStillAllowed = {"clone(fork)", "unshare(CLONE_FS|CLONE_FILES)"};

// Every capability this process may hand on (root here lacks some, such
// as CAP_SYS_RESOURCE), by bit number.
std::vector<std::string> every_capability() {
  static const char* const kNames[] = {"CAP_CHOWN",
                                       "CAP_DAC_OVERRIDE",
                                       "CAP_DAC_READ_SEARCH",
                                       "CAP_FOWNER",
                                       "CAP_FSETID",
                                       "CAP_KILL",
                                       "CAP_SETGID",
                                       "CAP_SETUID",
                                       "CAP_SETPCAP",
                                       "CAP_LINUX_IMMUTABLE",
                                       "CAP_NET_BIND_SERVICE",
                                       "CAP_NET_BROADCAST",
                                       "CAP_NET_ADMIN",
                                       "CAP_NET_RAW",
                                       "CAP_IPC_LOCK",
                                       "CAP_IPC_OWNER",
                                       "CAP_SYS_MODULE",
                                       "CAP_SYS_RAWIO",
                                       "CAP_SYS_CHROOT",
                                       "CAP_SYS_PTRACE",
                                       "CAP_SYS_PACCT",
                                       "CAP_SYS_ADMIN",
                                       "CAP_SYS_BOOT",
                                       "CAP_SYS_NICE",
                                       "CAP_SYS_RESOURCE",
                                       "CAP_SYS_TIME",
                                       "CAP_SYS_TTY_CONFIG",
                                       "CAP_MKNOD",
                                       "CAP_LEASE",
                                       "CAP_AUDIT_WRITE",
                                       "CAP_AUDIT_CONTROL",
                                       "CAP_SETFCAP",
                                       "CAP_MAC_OVERRIDE",
                                       "CAP_MAC_ADMIN",
                                       "CAP_SYSLOG",
                                       "CAP_WAKE_ALARM",
                                       "CAP_BLOCK_SUSPEND",
                                       "CAP_AUDIT_READ",
                                       "CAP_PERFMON",
                                       "CAP_BPF",
                                       "CAP_CHECKPOINT_RESTORE"};
  std::string status = testing::read_text_file("/proc/self/status");
  auto at = status.find("CapBnd:");
  std::uint64_t bounding = at == std::string::npos ? 0 : std::stoull(status.substr(at + 7), nullptr, 16);
  std::vector<std::string> caps;
  for (std::size_t bit = 0; bit < std::size(kNames); ++bit)
    if (bounding & (std::uint64_t{1} << bit)) caps.emplace_back(kNames[bit]);
  return caps;
}

class SeccompProfileTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    temp_.emplace("kiln-seccomp-test");
    dir_ = temp_->path();
    testing::make_busybox_rootfs(dir_ / "rootfs", KILN_SECCOMP_PROBE);
    fs::create_directories(dir_ / "runtime");
  }

  // Runs the probe for `klass` in a container from kiln's config with every
  // capability; with or without the profile.
  ProbeResults probe(const std::string& klass, bool seccomp) {
    const std::string id = "kiln-seccomp-" + testing::unique_number();
    fs::path bundle = dir_ / id;
    fs::create_directories(bundle);
    testing::write_text_file(bundle / "hosts", hosts_file_content("builder"));
    RunSpec spec;
    spec.argv = {"/bin/seccomp_probe", klass};
    spec.env = {"PATH=/bin"};
    OciPaths paths{.rootfs = fs::canonical(dir_ / "rootfs").string(),
                   .hosts_file = (bundle / "hosts").string(),
                   .secret_files = {},
                   .cgroups_path = "/kiln-seccomp-test/" + id};
    auto config = make_oci_config(spec, paths, {.seccomp = seccomp});
    EXPECT_TRUE(config) << config.error().to_string();
    if (!config) return {};
    for (const char* set : {"bounding", "effective", "inheritable", "permitted"})
      (*config)["process"]["capabilities"][set] = every_capability();
    testing::write_text_file(bundle / "config.json", config->dump());
    auto out =
        run_command({"runc", "--root", (dir_ / "runtime").string(), "run", "--bundle", bundle.string(), id},
                    {.timeout = 60s});
    EXPECT_TRUE(out && out->ok()) << (out ? out->output : out.error().to_string());
    (void)run_command({"runc", "--root", (dir_ / "runtime").string(), "delete", "--force", id},
                      {.timeout = 30s});
    return out ? parse_probe(klass, out->output) : ProbeResults{};
  }

  std::optional<kiln::testing::TempDir> temp_;
  fs::path dir_;
};

TEST_P(SeccompProfileTest, EveryCallOfTheClassFailsWithEpermOnlyUnderTheProfile) {
  const std::string klass = GetParam();
  ProbeResults with = probe(klass, /*seccomp=*/true);
  ProbeResults without = probe(klass, /*seccomp=*/false);
  ASSERT_FALSE(with.empty()) << "the probe knows no calls of class " << klass;
  EXPECT_EQ(with.size(), without.size());
  for (const auto& [call, result] : with) {
    SCOPED_TRACE(klass + " " + call);
    if (std::find(kStillAllowed.begin(), kStillAllowed.end(), call) != kStillAllowed.end()) {
      EXPECT_EQ(result, "ok");
      EXPECT_EQ(without[call], "ok");
      continue;
    }
    auto other = kNotEperm.find(call);
    EXPECT_EQ(result, other == kNotEperm.end() ? "EPERM" : other->second);
    // Without the profile, even with every capability, the kernel answers
    // otherwise: the answer above is the profile's.
    EXPECT_NE(without[call], result);
  }
}

INSTANTIATE_TEST_SUITE_P(DeniedClasses, SeccompProfileTest,
                         ::testing::Values("keyring", "mount", "ptrace", "modules", "clock", "reboot",
                                           "kexec", "swap", "bpf", "perf", "userfaultfd", "namespaces",
                                           "file-handles", "kernel-log", "raw-io", "io_uring", "host-admin"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(SeccompProfile, EveryDeniedSyscallIsInTheProfileAndNothingIsDeniedByDefault) {
  nlohmann::json profile = default_seccomp_profile();
  EXPECT_EQ(profile["defaultAction"], "SCMP_ACT_ALLOW");
  std::set<std::string> unconditional;
  for (const auto& rule : profile["syscalls"]) {
    EXPECT_EQ(rule["action"], "SCMP_ACT_ERRNO");
    if (rule.contains("args")) continue;
    for (const auto& name : rule["names"]) unconditional.insert(name.get<std::string>());
  }
  for (const DeniedSyscalls& c : seccomp_denied_syscalls()) {
    EXPECT_FALSE(c.why.empty()) << c.what;
    for (auto name : c.syscalls) EXPECT_TRUE(unconditional.contains(std::string(name))) << name;
  }
  EXPECT_FALSE(unconditional.contains("clone")) << "fork must stay allowed";
  EXPECT_FALSE(unconditional.contains("unshare")) << "unshare(CLONE_FS) must stay allowed";
#if defined(__x86_64__)
  EXPECT_EQ(profile["architectures"], nlohmann::json({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}));
#endif

  // Every step's config carries it unless turned off.
  RunSpec spec;
  spec.argv = {"/bin/true"};
  OciPaths paths{.rootfs = "/r", .hosts_file = "/h", .secret_files = {}, .cgroups_path = "/kiln/g/k/ctr"};
  auto config = make_oci_config(spec, paths, {});
  ASSERT_TRUE(config);
  EXPECT_EQ((*config)["linux"]["seccomp"], profile);
  auto without = make_oci_config(spec, paths, {.seccomp = false});
  ASSERT_TRUE(without);
  EXPECT_FALSE((*without)["linux"].contains("seccomp"));
}

// Through RuncSandbox, as steps run: the filter is on, and calls that a
// step's reduced capabilities alone would allow are refused.
class SeccompSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    temp_.emplace("kiln-seccomp-sandbox-test");
    dir_ = temp_->path();
    testing::make_busybox_rootfs(dir_ / "rootfs", KILN_SECCOMP_PROBE);
  }

  std::string run(OciRuntime runtime, OciOptions oci, const std::string& command, Status* status = nullptr) {
    auto sandbox =
        RuncSandbox::create({.state_dir = (dir_ / "state").string(), .runtime = runtime, .oci = oci});
    EXPECT_TRUE(sandbox) << sandbox.error().to_string();
    if (!sandbox) return {};
    RunSpec spec;
    spec.argv = {"/bin/sh", "-c", command};
    spec.env = {"PATH=/bin"};
    CancelToken cancel;
    std::string out;
    Status s = (*sandbox)->run(
        spec, (dir_ / "rootfs").string(), [&](std::string_view c) { out += c; }, cancel);
    if (status) *status = s;
    return out;
  }

  std::optional<kiln::testing::TempDir> temp_;
  fs::path dir_;
};

TEST_F(SeccompSandboxTest, StepsRunUnderTheProfileWithRuncAndCrun) {
  const std::string command =
      "grep '^Seccomp:' /proc/self/status; seccomp_probe keyring namespaces; unshare -U true || echo unshare "
      "failed";
  for (OciRuntime runtime : {OciRuntime::kRunc, OciRuntime::kCrun}) {
    SCOPED_TRACE(std::string(oci_runtime_name(runtime)));
    std::string out = run(runtime, {}, command);
    EXPECT_THAT(out, ::testing::HasSubstr("Seccomp:\t2\n"));  // a filter
    EXPECT_THAT(out, ::testing::HasSubstr("keyring keyctl: EPERM"));
    EXPECT_THAT(out, ::testing::HasSubstr("namespaces unshare(CLONE_NEWUSER): EPERM"));
    EXPECT_THAT(out, ::testing::HasSubstr("namespaces clone(fork): ok"));
    EXPECT_THAT(out, ::testing::HasSubstr("unshare failed"));
    // The same step without the profile: these calls need no capability.
    std::string control = run(runtime, {.seccomp = false}, command);
    EXPECT_THAT(control, ::testing::HasSubstr("Seccomp:\t0\n"));
    EXPECT_THAT(control, ::testing::HasSubstr("keyring keyctl: ok"));
    EXPECT_THAT(control, ::testing::HasSubstr("namespaces unshare(CLONE_NEWUSER): ok"));
    EXPECT_THAT(control, ::testing::Not(::testing::HasSubstr("unshare failed")));
  }
}

}  // namespace
}  // namespace kiln::sandbox
