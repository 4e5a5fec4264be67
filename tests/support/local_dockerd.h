// Test support: a private docker daemon (dockerd 20.10) started and stopped
// by the test, with its own data root, exec root, socket and cgroup parent,
// and no effect on the host's network (--iptables=false --ip-forward=false
// --bridge=none: containers get `none` or `host` networking only).
//
//   LocalDockerd dockerd;
//   ASSERT_EQ(dockerd.start_error(), "");
//   ASSERT_EQ(dockerd.load_image("oci:" + layout + ":latest", "kiln-test/busybox:latest"), "");
//   DockerClient client({.host = dockerd.host()});     // "unix:///tmp/kiln-dockerd-XXXXXX/docker.sock"
//   auto r = dockerd.docker({"ps", "-a"});             // the docker CLI against it
//
// Everything lives in one directory (/tmp/kiln-dockerd-XXXXXX): data/,
// exec/, docker.sock, pid, dockerd.log. A guardian process (a small shell
// script in its own session) starts dockerd and waits for the test to go
// away: when the LocalDockerd is destroyed, or the test process dies by any
// means (kill -9, a ctest timeout), the guardian stops dockerd (SIGTERM, then
// SIGKILL after 15 s), SIGKILLs whatever is left — containers (through the
// daemon's private cgroup parent), containerd and its shims (whose command
// lines name the directory) — unmounts everything beneath the directory,
// removes the cgroups and the directory. Readiness: the constructor waits
// (up to `ready_timeout`) until GET /version answers 200 on the socket; on
// failure start_error() says why, with the end of dockerd's log, and the
// test has failed (ADD_FAILURE). Test-only; not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace kiln::testing {

struct LocalDockerdOptions {
  std::chrono::milliseconds ready_timeout{60'000};  // the machine may be loaded
  std::vector<std::string> extra_args;              // appended to dockerd's command line
};

class LocalDockerd {
 public:
  explicit LocalDockerd(LocalDockerdOptions options = {});
  ~LocalDockerd();  // stops the daemon and removes everything (waits for the guardian)
  LocalDockerd(const LocalDockerd&) = delete;
  LocalDockerd& operator=(const LocalDockerd&) = delete;

  // "" once the daemon answers; else what went wrong.
  const std::string& start_error() const { return start_error_; }
  const std::string& dir() const { return dir_; }
  std::string socket_path() const { return dir_ + "/docker.sock"; }
  // "unix://DIR/docker.sock", for DOCKER_HOST, --docker-host and DockerClient.
  std::string host() const { return "unix://" + socket_path(); }
  // The cgroup parent of every container ("/kiln-test-XXXXXX").
  const std::string& cgroup_parent() const { return cgroup_parent_; }
  // dockerd's pid (from its pid file), or -1.
  pid_t dockerd_pid() const;
  std::string log() const;

  // `skopeo copy SOURCE docker-daemon:NAME` into this daemon. "" on success,
  // else skopeo's output.
  std::string load_image(const std::string& source, const std::string& name);
  // Runs /usr/bin/docker -H host() ARGS... (the distribution's client, not a
  // newer one earlier in PATH).
  ProcessResult docker(const std::vector<std::string>& args) const;

 private:
  bool answers_version() const;

  LocalDockerdOptions options_;
  std::string dir_;
  std::string cgroup_parent_;
  std::string start_error_;
  pid_t guardian_ = -1;
  int guardian_pipe_ = -1;  // the write end: closing it (or dying) tells the guardian to clean up
};

}  // namespace kiln::testing
