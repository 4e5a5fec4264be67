#include "tests/farm/chaos_support.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "tests/support/process.h"

namespace kiln::testing {

namespace {

// A run killed outright (a ctest timeout sends SIGKILL) runs no destructor:
// remove the namespaces and links of chaos runs whose process is gone.
void remove_stale_namespaces() {
  auto list = run_process({"/usr/sbin/ip", "netns", "list"});
  std::istringstream in(list.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("kiln-chaos-")) continue;
    const std::string tag =
        line.substr(11, line.find(' ') == std::string::npos ? std::string::npos : line.find(' ') - 11);
    if (tag.empty() || tag.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::filesystem::exists("/proc/" + tag)) continue;
    run_process({"/usr/sbin/ip", "netns", "del", "kiln-chaos-" + tag});
    run_process({"/usr/sbin/ip", "link", "del", "kxh" + tag});
  }
}

}  // namespace

void remove_stale_chaos_dirs(const std::string& parent, const std::string& own_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string dir = entry.path().string();
    if (!entry.path().filename().string().starts_with("kiln-chaos-") || dir == own_dir) continue;
    int owner = 0;
    std::ifstream(dir + "/owner.pid") >> owner;
    if (owner <= 0 || fs::exists("/proc/" + std::to_string(owner))) continue;
    std::vector<std::string> mounts;
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);) {
      std::istringstream fields(line);
      std::string id, parent_id, devices, root, point;
      fields >> id >> parent_id >> devices >> root >> point;
      if (point.starts_with(dir + "/")) mounts.push_back(point);
    }
    std::sort(mounts.rbegin(), mounts.rend());  // the deepest first
    for (const std::string& m : mounts) ::umount2(m.c_str(), MNT_DETACH);
    fs::remove_all(dir, ec);
  }
  std::ofstream(own_dir + "/owner.pid") << ::getpid();
}

NetnsHost::NetnsHost(int tag)
    : ns_(fmt::format("kiln-chaos-{}", tag)),
      host_if_(fmt::format("kxh{}", tag)),
      ns_if_(fmt::format("kxn{}", tag)) {
  remove_stale_namespaces();
  const std::string subnet = fmt::format("10.232.{}", tag % 250);
  host_address_ = subnet + ".1";
  // Each step stops at the first failure; the destructor removes what was made.
  (void)(ip({"netns", "add", ns_}) && ip({"link", "add", host_if_, "type", "veth", "peer", "name", ns_if_}) &&
         ip({"link", "set", ns_if_, "netns", ns_}) &&
         ip({"addr", "add", host_address_ + "/24", "dev", host_if_}) &&
         ip({"-n", ns_, "addr", "add", subnet + ".2/24", "dev", ns_if_}) &&
         ip({"link", "set", host_if_, "up"}) && ip({"-n", ns_, "link", "set", ns_if_, "up"}) &&
         ip({"-n", ns_, "link", "set", "lo", "up"}));
}

NetnsHost::~NetnsHost() {
  run_process({"/usr/sbin/ip", "netns", "del", ns_});
  run_process({"/usr/sbin/ip", "link", "del", host_if_});  // gone with the namespace, unless never moved
}

std::vector<std::string> NetnsHost::enter_prefix() const {
  return {"/usr/bin/nsenter", "--net=/var/run/netns/" + ns_};
}

bool NetnsHost::set_link(bool up) {
  return ip({"link", "set", host_if_, up ? "up" : "down"});
}

bool NetnsHost::ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/sbin/ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv);
  if (r.exit_code == 0) return true;
  error_ = fmt::format("ip {}: {}", fmt::join(args, " "), r.err);
  return false;
}

ChaosWorker::ChaosWorker(std::string name, std::vector<std::string> argv, std::string log_dir)
    : name_(std::move(name)), argv_(std::move(argv)), log_dir_(std::move(log_dir)) {}

void ChaosWorker::start() {
  child_ = std::make_unique<Child>(argv_, fmt::format("{}/{}.log.{}", log_dir_, name_, starts_++));
  state_ = State::kRunning;
}

void ChaosWorker::kill9() {
  if (child_) child_->kill_now();
  state_ = State::kDead;
}

void ChaosWorker::pause() {
  if (state_ != State::kRunning) return;
  child_->signal(SIGSTOP);
  state_ = State::kStopped;
}

void ChaosWorker::resume() {
  if (state_ != State::kStopped) return;
  child_->signal(SIGCONT);
  state_ = State::kRunning;
}

int ChaosWorker::stop() {
  resume();
  state_ = State::kDead;
  return child_ ? child_->stop() : 0;
}

}  // namespace kiln::testing
