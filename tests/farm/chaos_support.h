// Test support for the chaos test (tests/farm/chaos_test.cc): a "host" in a
// network namespace whose link can be cut, and a worker process that can be
// killed, stopped, resumed and started again on the same state.
//
//   NetnsHost host(getpid());              // namespace kiln-chaos-PID, veth to this host
//   Child w({host.enter_prefix()..., "kiln-worker", "--scheduler",
//            "tcp://" + host.host_address() + ":7801", ...}, log);
//   host.set_link(false); ... host.set_link(true);
//
// Needs root and iproute2. The destructor removes the namespace and the veth
// pair, whatever state they are in. Not thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/support/child.h"

namespace kiln::testing {

class NetnsHost {
 public:
  // `tag` (e.g. the test's pid) makes the names and the 10.232.x.0/24 subnet.
  explicit NetnsHost(int tag);
  ~NetnsHost();
  NetnsHost(const NetnsHost&) = delete;
  NetnsHost& operator=(const NetnsHost&) = delete;

  // Whether the namespace and link came up; error() says why not.
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // This host's end of the link, which processes in the namespace reach.
  const std::string& host_address() const { return host_address_; }
  // argv prefix that runs a program in the namespace (nsenter execs it, so
  // the child's pid is the program's; it keeps this host's /sys and cgroups).
  std::vector<std::string> enter_prefix() const;
  // Takes this host's end of the link down (false) or up (true).
  bool set_link(bool up);

 private:
  bool ip(const std::vector<std::string>& args);
  std::string ns_;
  std::string host_if_;
  std::string ns_if_;
  std::string host_address_;
  std::string error_;
};

// Removes what chaos runs killed outright (no destructor ran) left under
// `parent`: directories named kiln-chaos-* whose owner.pid names a process
// that is gone, after detaching every mount beneath them. Then writes this
// process's pid into `own_dir`/owner.pid. Runs still alive are left alone.
void remove_stale_chaos_dirs(const std::string& parent, const std::string& own_dir);

// A kiln-worker that the chaos test kills, stops and restarts. Each start
// logs to DIR/NAME.log.N.
class ChaosWorker {
 public:
  enum class State { kRunning, kStopped, kDead };
  ChaosWorker(std::string name, std::vector<std::string> argv, std::string log_dir);

  const std::string& name() const { return name_; }
  State state() const { return state_; }
  Child& child() { return *child_; }
  void start();
  void kill9();
  void pause();   // SIGSTOP
  void resume();  // SIGCONT, when stopped
  // SIGTERM and wait; the exit code.
  int stop();

 private:
  std::string name_;
  std::vector<std::string> argv_;
  std::string log_dir_;
  std::unique_ptr<Child> child_;
  State state_ = State::kDead;
  int starts_ = 0;
};

}  // namespace kiln::testing
