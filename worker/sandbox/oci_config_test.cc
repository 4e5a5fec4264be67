#include "worker/sandbox/oci_config.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace kiln::sandbox {
namespace {

using nlohmann::json;

RunSpec basic_spec() {
  RunSpec spec;
  spec.argv = {"/bin/sh", "-c", "true"};
  spec.cwd = "/src";
  spec.env = {"PATH=/bin", "A=1"};
  spec.uid = 1000;
  spec.gid = 100;
  return spec;
}

OciPaths basic_paths(std::size_t secrets = 0) {
  OciPaths p;
  p.rootfs = "/store/tmp/rootfs";
  p.hosts_file = "/state/bundles/kiln-1/hosts";
  p.cgroups_path = "/kiln/g/kiln-1/ctr";
  for (std::size_t i = 0; i < secrets; ++i)
    p.secret_files.push_back("/state/secrets/kiln-1/" + std::to_string(i));
  return p;
}

const json* find_mount(const json& config, std::string_view destination) {
  for (const auto& m : config["mounts"])
    if (m["destination"] == destination) return &m;
  return nullptr;
}

bool has_namespace(const json& config, std::string_view type) {
  for (const auto& ns : config["linux"]["namespaces"])
    if (ns["type"] == type) return true;
  return false;
}

TEST(OciConfig, ProcessGetsTheSpecsCommandUserAndExplicitRlimits) {
  auto config = make_oci_config(basic_spec(), basic_paths(), {});
  ASSERT_TRUE(config) << config.error().to_string();
  const json& p = (*config)["process"];
  EXPECT_EQ(p["args"], json({"/bin/sh", "-c", "true"}));
  EXPECT_EQ(p["cwd"], "/src");
  EXPECT_EQ(p["env"], json({"PATH=/bin", "A=1"}));
  EXPECT_EQ(p["user"]["uid"], 1000);
  EXPECT_EQ(p["user"]["gid"], 100);
  EXPECT_EQ(p["terminal"], false);
  EXPECT_EQ(p["noNewPrivileges"], false);
  ASSERT_EQ(p["rlimits"].size(), 2u);
  for (const auto& r : p["rlimits"]) {
    EXPECT_EQ(r["hard"], 1024);
    EXPECT_EQ(r["soft"], 1024);
  }
  EXPECT_EQ((*config)["root"]["path"], "/store/tmp/rootfs");
  EXPECT_EQ((*config)["hostname"], "builder");
  EXPECT_EQ((*config)["linux"]["cgroupsPath"], "/kiln/g/kiln-1/ctr");
}

TEST(OciConfig, NoNewPrivilegesIsAnOption) {
  auto config = make_oci_config(basic_spec(), basic_paths(), {.no_new_privileges = true});
  ASSERT_TRUE(config);
  EXPECT_EQ((*config)["process"]["noNewPrivileges"], true);
}

TEST(OciConfig, CapabilitiesAreTheReducedSetInEverySet) {
  auto config = make_oci_config(basic_spec(), basic_paths(), {});
  ASSERT_TRUE(config);
  const auto& caps = default_capabilities();
  EXPECT_EQ(caps.size(), 12u);
  EXPECT_EQ(std::count(caps.begin(), caps.end(), "CAP_SYS_ADMIN"), 0);
  EXPECT_EQ(std::count(caps.begin(), caps.end(), "CAP_NET_RAW"), 0);
  for (const char* set : {"bounding", "effective", "inheritable", "permitted"})
    EXPECT_EQ((*config)["process"]["capabilities"][set], json(caps)) << set;
  // CAP_CHOWN(0) .. CAP_SETFCAP(31), as the kernel numbers them.
  EXPECT_EQ(default_capability_mask(), 0xa80401fbull);
}

TEST(OciConfig, DefaultNetworkIsPrivateAndHostNetworkSharesTheHosts) {
  auto isolated = make_oci_config(basic_spec(), basic_paths(), {});
  ASSERT_TRUE(isolated);
  for (const char* ns : {"pid", "ipc", "uts", "mount", "network"})
    EXPECT_TRUE(has_namespace(*isolated, ns)) << ns;
  EXPECT_EQ(find_mount(*isolated, "/etc/resolv.conf"), nullptr);

  RunSpec spec = basic_spec();
  spec.network = {"host"};
  auto host = make_oci_config(spec, basic_paths(), {});
  ASSERT_TRUE(host);
  EXPECT_FALSE(has_namespace(*host, "network"));
  EXPECT_TRUE(has_namespace(*host, "pid"));
  const json* resolv = find_mount(*host, "/etc/resolv.conf");
  ASSERT_NE(resolv, nullptr);
  EXPECT_EQ((*resolv)["source"], "/etc/resolv.conf");
}

TEST(OciConfig, StandardMountsHostsFileAndMaskedPaths) {
  auto config = make_oci_config(basic_spec(), basic_paths(), {});
  ASSERT_TRUE(config);
  for (const char* d : {"/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"})
    EXPECT_NE(find_mount(*config, d), nullptr) << d;
  EXPECT_EQ((*find_mount(*config, "/dev"))["type"], "tmpfs");
  const json& sys_options = (*find_mount(*config, "/sys"))["options"];
  EXPECT_NE(std::find(sys_options.begin(), sys_options.end(), "ro"), sys_options.end());
  const json* hosts = find_mount(*config, "/etc/hosts");
  ASSERT_NE(hosts, nullptr);
  EXPECT_EQ((*hosts)["source"], "/state/bundles/kiln-1/hosts");
  EXPECT_NE(std::find((*hosts)["options"].begin(), (*hosts)["options"].end(), "ro"),
            (*hosts)["options"].end());
  EXPECT_EQ((*config)["linux"]["maskedPaths"], json(masked_paths()));
  EXPECT_EQ((*config)["linux"]["readonlyPaths"], json(readonly_paths()));
  EXPECT_NE(std::find(masked_paths().begin(), masked_paths().end(), "/proc/kcore"), masked_paths().end());
}

TEST(OciConfig, CachesAreWritableBindsAndSecretsReadOnlyWithoutTheirValues) {
  RunSpec spec = basic_spec();
  spec.mounts = {{"/store/cache/c1", "/root/.cache", false}};
  spec.secrets = {{"/run/secrets/token", "s3cr3t-value"}};
  auto config = make_oci_config(spec, basic_paths(1), {});
  ASSERT_TRUE(config) << config.error().to_string();
  const json* cache = find_mount(*config, "/root/.cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ((*cache)["source"], "/store/cache/c1");
  EXPECT_EQ(std::find((*cache)["options"].begin(), (*cache)["options"].end(), "ro"),
            (*cache)["options"].end());
  const json* secret = find_mount(*config, "/run/secrets/token");
  ASSERT_NE(secret, nullptr);
  EXPECT_EQ((*secret)["source"], "/state/secrets/kiln-1/0");
  EXPECT_NE(std::find((*secret)["options"].begin(), (*secret)["options"].end(), "ro"),
            (*secret)["options"].end());
  EXPECT_EQ(config->dump().find("s3cr3t-value"), std::string::npos);
}

TEST(OciConfig, RejectsBadSpecsNamingTheField) {
  struct Case {
    std::function<void(RunSpec&)> change;
    std::string expected;
  };
  std::vector<Case> cases = {
      {[](RunSpec& s) { s.argv.clear(); }, "argv"},
      {[](RunSpec& s) { s.cwd = "src"; }, "working directory \"src\""},
      {[](RunSpec& s) { s.env = {"NOVALUE"}; }, "\"NOVALUE\" is not of the form KEY=VALUE"},
      {[](RunSpec& s) { s.network = {"bridge"}; }, "unsupported network \"bridge\""},
      {[](RunSpec& s) {
         s.mounts = {{"relative", "/c", false}};
       },
       "mount source \"relative\""},
      {[](RunSpec& s) {
         s.mounts = {{"/c", "../c", false}};
       },
       "mount target \"../c\""},
      {[](RunSpec& s) { s.limits.memory_bytes = 0; }, "memory limit of 0"},
      {[](RunSpec& s) { s.limits.pids = 0; }, "pids limit of 0"},
  };
  for (const auto& c : cases) {
    RunSpec spec = basic_spec();
    c.change(spec);
    auto config = make_oci_config(spec, basic_paths(), {});
    ASSERT_FALSE(config) << c.expected;
    EXPECT_EQ(config.error().kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(config.error().message().find(c.expected), std::string::npos) << config.error().message();
  }
}

TEST(OciConfig, HostsFileMapsTheHostnameToLoopback) {
  EXPECT_EQ(hosts_file_content("builder"),
            "127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost ip6-loopback\n");
}

}  // namespace
}  // namespace kiln::sandbox
