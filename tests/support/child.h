// Test support: long-running child processes (daemons) for multi-process
// tests, and free loopback ports for them.
//
//   Child scheduler({kSchedulerBinary, "--state-dir", dir, "--listen", endpoint}, dir + "/scheduler.log");
//   ...
//   scheduler.kill(SIGKILL);          // or stop(): SIGTERM, wait, SIGKILL after a grace period
//   EXPECT_THAT(scheduler.log(), HasSubstr("ready"));
//
// The child's stdout and stderr go to `log_path`. The destructor kills a
// child still running (SIGKILL) and reaps it, so a failing test leaves no
// daemon behind; a test that crashes or is killed takes its children along
// (PR_SET_PDEATHSIG, SIGKILL: construct a Child on a thread that outlives it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace kiln::testing {

class Child {
 public:
  Child(std::vector<std::string> argv, std::string log_path);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // SIGKILL and reap.
  void kill_now();
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit code (128+signal when killed).
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Waits for the child to exit on its own; -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  std::string log() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();
// A TCP port that every address of this host could listen on a moment ago,
// below the kernel's ephemeral range (net.ipv4.ip_local_port_range): no
// outgoing connection takes it as its local port, nor a ZeroMQ socket
// reconnecting to it connects to itself, while a daemon listening on it is
// down for a restart. Falls back to free_port() when the range starts too low.
int free_listen_port();
// Whether `port` on 127.0.0.1 can be bound right now.
bool port_is_free(int port);
// A free port P such that P + offset is free as well (`kiln up --port P`
// also uses P + 1 and P + 80); fails the test when none is found.
int free_port_and(int offset);

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace kiln::testing
