// kiln-farm-bench: how fast the scheduler moves jobs, measured end to end
// with real processes over ZeroMQ TCP on 127.0.0.1 (bench/farm/README.md).
//
//   kiln-farm-bench                      # all four measurements, defaults below
//   kiln-farm-bench --only throughput --jobs 100000
//
// throughput  N jobs submitted (pipelined) by one client and completed by
//             kiln-worker --fake-build processes: jobs/s from the first submit
//             to the last "done" the client hears.
// latency     jobs submitted at a fixed rate; the bench itself is the worker
//             (a DEALER registered like kiln-worker), so submit-sent and
//             assign-received are read on one clock: p50/p99/max.
// memory      the scheduler's RSS growth per queued job with Q queued jobs
//             (no workers), next to the spec's size.
// restart     kill -9 that scheduler and time a restart until it answers a
//             client, with Q jobs in its database.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/auth/curve_keys.h"
#include "common/proto/client.h"
#include "common/proto/curve.h"
#include "common/proto/transport.h"

namespace {

using namespace kiln;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Process {
  pid_t pid = -1;
  Process(std::vector<std::string> argv, const std::string& log) {
    std::fflush(stdout);  // or the child repeats what is buffered
    pid = ::fork();
    if (pid == 0) {
      FILE* f = std::freopen(log.c_str(), "a", stdout);
      (void)f;
      ::dup2(1, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Process() { stop(SIGTERM); }
  void stop(int sig) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int status;
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    pid = -1;
  }
  long rss_kib() const {
    std::ifstream in(fmt::format("/proc/{}/status", pid));
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
    }
    return -1;
  }
};

int free_port() {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.bind("tcp://127.0.0.1:*");
  std::string ep = s.get(zmq::sockopt::last_endpoint);
  return std::stoi(ep.substr(ep.rfind(':') + 1));
}

struct Config {
  std::string scheduler_bin = KILN_SCHEDULER_BINARY;
  std::string worker_bin = KILN_WORKER_BINARY;
  std::string dir = "/tmp/kiln-farm-bench";
  std::string only;
  int jobs = 50000;
  int workers = 2;
  int capacity = 256;
  int window = 4000;
  int rate = 1000;
  double latency_seconds = 5;
  int queued = 100000;
  std::vector<std::string> scheduler_args;
  // CurveZMQ on every socket: keys under DIR/keys, the scheduler's auth dir DIR/auth.
  bool curve = false;
  int compare_curve = 0;  // rounds of plaintext vs CurveZMQ, side by side
};

// The bench's own admin client keys when config.curve (set by make_keys).
proto::ClientOptions g_client_options;

void make_key(const std::string& dir, const std::string& name, const char* role_dir) {
  auto pair = auth::generate_curve_key_pair();
  if (!pair || !auth::write_key_files(*pair, dir + "/keys", name)) {
    std::cerr << "kiln-farm-bench: cannot make key " << name << "\n";
    std::exit(1);
  }
  if (role_dir != nullptr) {
    std::filesystem::create_directories(dir + "/auth/" + role_dir);
    std::filesystem::copy_file(dir + "/keys/" + name + ".pub",
                               dir + "/auth/" + role_dir + "/" + name + ".pub",
                               std::filesystem::copy_options::overwrite_existing);
  }
}

// Keys for the scheduler, the bench's client (an admin), every fake worker and the latency run's worker.
void make_keys(const Config& config) {
  std::error_code ec;
  if (std::filesystem::exists(config.dir + "/keys/scheduler.key", ec)) return;
  make_key(config.dir, "scheduler", nullptr);
  make_key(config.dir, "bench", "admins");
  make_key(config.dir, "bench-worker", "workers");
  for (int i = 0; i < config.workers; ++i) make_key(config.dir, fmt::format("fake-{}", i), "workers");
  auto mine = auth::read_secret_key_file(config.dir + "/keys/bench.key");
  auto theirs = auth::read_public_key_file(config.dir + "/keys/scheduler.pub");
  g_client_options = {.curve = {.server_public_z85 = *theirs,
                                .public_z85 = mine->public_z85,
                                .secret_z85 = mine->secret_z85}};
}

proto::ClientOptions client_options(const Config& config) {
  return config.curve ? g_client_options : proto::ClientOptions{};
}

std::vector<std::string> worker_key_args(const Config& config, const std::string& name) {
  if (!config.curve) return {};
  return {"--key", config.dir + "/keys/" + name + ".key", "--scheduler-key",
          config.dir + "/keys/scheduler.pub"};
}

class Scheduler {
 public:
  Scheduler(const Config& config, const std::string& name, std::vector<std::string> extra = {})
      : state_(config.dir + "/" + name), log_(config.dir + "/" + name + ".log") {
    client_ = fmt::format("tcp://127.0.0.1:{}", free_port());
    workers_ = fmt::format("tcp://127.0.0.1:{}", free_port());
    argv_ = {config.scheduler_bin,
             "--state-dir",
             state_,
             "--listen",
             client_,
             "--listen-workers",
             workers_,
             "--http",
             fmt::format("127.0.0.1:{}", free_port()),
             "--log-level",
             "warn"};
    argv_.insert(argv_.end(), extra.begin(), extra.end());
    argv_.insert(argv_.end(), config.scheduler_args.begin(), config.scheduler_args.end());
    if (config.curve) {
      argv_.insert(argv_.end(),
                   {"--key", config.dir + "/keys/scheduler.key", "--auth-dir", config.dir + "/auth"});
    }
    options_ = client_options(config);
    start();
  }
  // Returns how long it took until a client's hello was answered.
  std::chrono::duration<double> start() {
    auto begun = Clock::now();
    process_ = std::make_unique<Process>(argv_, log_);
    while (!proto::Client::connect(client_, "probe", 100ms, options_)) {
      if (Clock::now() - begun > 120s) {
        std::cerr << "kiln-farm-bench: scheduler did not start; see " << log_ << "\n";
        std::exit(1);
      }
    }
    return Clock::now() - begun;
  }
  Process& process() { return *process_; }
  const std::string& client_endpoint() const { return client_; }
  const std::string& worker_endpoint() const { return workers_; }
  const proto::ClientOptions& options() const { return options_; }

 private:
  std::string state_, log_, client_, workers_;
  std::vector<std::string> argv_;
  proto::ClientOptions options_;
  std::unique_ptr<Process> process_;
};

proto::Submit job(int i) {
  return proto::Submit{.job = {.spec = fmt::format("((from busybox) (run (shell \"make test-{}\")))", i),
                               .spec_name = "bench.spec",
                               .client = "bench"}};
}

std::unique_ptr<proto::Client> connect(const std::string& endpoint, const proto::ClientOptions& options) {
  auto c = proto::Client::connect(endpoint, "bench", std::chrono::seconds(5), options);
  if (!c) {
    std::cerr << "kiln-farm-bench: " << c.error().to_string() << "\n";
    std::exit(1);
  }
  return std::move(*c);
}

// Sends a pipelined request, or ends the benchmark saying why.
template <class Request>
void send_or_exit(proto::Client& client, const Request& request) {
  if (auto sent = client.send_request(request); !sent) {
    std::cerr << "kiln-farm-bench: " << sent.error().to_string() << "\n";
    std::exit(1);
  }
}

// Submits `count` jobs with at most `window` unanswered, and asks for each
// job's end as soon as it is acknowledged; returns when all have ended.
double run_throughput(const Config& config) {
  Scheduler scheduler(config, "throughput");
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < config.workers; ++i) {
    std::vector<std::string> argv{config.worker_bin,
                                  "--scheduler",
                                  scheduler.worker_endpoint(),
                                  "--name",
                                  fmt::format("fake-{}", i),
                                  "--capacity",
                                  std::to_string(config.capacity),
                                  "--state-dir",
                                  config.dir + fmt::format("/fake-{}", i),
                                  "--fake-build",
                                  "0",
                                  "--log-level",
                                  "warn"};
    for (auto& a : worker_key_args(config, fmt::format("fake-{}", i))) argv.push_back(a);
    workers.push_back(std::make_unique<Process>(argv, config.dir + fmt::format("/fake-{}.log", i)));
  }
  auto client = connect(scheduler.client_endpoint(), scheduler.options());
  // Wait for the workers.
  while (true) {
    auto w = client->call<proto::Workers>(proto::ListWorkers{});
    if (w && static_cast<int>(w->workers.size()) == config.workers) break;
    std::this_thread::sleep_for(20ms);
  }
  int sent = 0, acked = 0, done = 0, failed = 0, in_flight = 0;
  const auto begun = Clock::now();
  while (done < config.jobs) {
    while (sent < config.jobs && in_flight < config.window) {
      if (!client->send_request(job(sent))) std::exit(1);
      ++sent;
      ++in_flight;
    }
    auto reply = client->next_reply(30s);
    if (!reply) {
      std::cerr << "kiln-farm-bench: " << reply.error().to_string() << "\n";
      std::exit(1);
    }
    if (reply->type == proto::Type::kSubmitted) {
      auto s = proto::decode<proto::Submitted>(reply->body);
      ++acked;
      send_or_exit(*client, proto::GetStatus{.job_id = s->job_id, .wait_ms = 60000});
    } else if (reply->type == proto::Type::kJob) {
      auto j = proto::decode<proto::Job>(reply->body);
      if (j->job.state == "succeeded") {
        ++done;
        --in_flight;
      } else if (j->job.state == "failed" || j->job.state == "cancelled") {
        ++done;
        ++failed;
        --in_flight;
      } else {
        send_or_exit(*client, proto::GetStatus{.job_id = j->job.id, .wait_ms = 60000});
      }
    } else if (reply->type == proto::Type::kError) {
      std::cerr << "kiln-farm-bench: " << proto::decode<proto::ErrorReply>(reply->body)->message << "\n";
      std::exit(1);
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - begun).count();
  const double rate = config.jobs / seconds;
  fmt::print(
      "throughput: {} jobs in {:.2f} s = {:.0f} jobs/s end to end ({} workers x capacity {}, window {}, "
      "{} failed)\n",
      config.jobs, seconds, rate, config.workers, config.capacity, config.window, failed);
  return rate;
}

// The bench is the worker: it timestamps each assign as it arrives.
// Returns {p50, p99} in ms.
std::pair<double, double> run_latency(const Config& config) {
  Scheduler scheduler(config, "latency");
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::unordered_map<std::string, Clock::time_point> assigned_at;
  std::atomic<bool> registered{false};
  std::thread worker([&] {
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    proto::configure_dealer(s);
    s.set(zmq::sockopt::immediate, 0);
    if (config.curve) {
      auto mine = auth::read_secret_key_file(config.dir + "/keys/bench-worker.key");
      proto::configure_curve_client(s, {.server_public_z85 = g_client_options.curve.server_public_z85,
                                        .public_z85 = mine->public_z85,
                                        .secret_z85 = mine->secret_z85});
    } else {
      s.set(zmq::sockopt::routing_id, "bench-worker");
    }
    s.connect(scheduler.worker_endpoint());
    proto::Register reg{.name = "bench-worker", .pool = "linux-x86_64", .capacity = 100000};
    reg.stats.healthy = true;
    proto::send(s, reg);
    auto last_beat = Clock::now();
    while (!stop) {
      zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 20ms);
      if (Clock::now() - last_beat > 500ms) {
        proto::Heartbeat beat;
        beat.stats.healthy = true;
        proto::send(s, beat);
        last_beat = Clock::now();
      }
      while (s.get(zmq::sockopt::events) & ZMQ_POLLIN) {
        auto frame = proto::receive(s, false);
        if (!frame || !frame->type) continue;
        if (*frame->type == proto::Type::kRegistered) registered = true;
        if (*frame->type != proto::Type::kAssign) continue;
        auto now = Clock::now();
        auto a = proto::decode<proto::Assign>(frame->body);
        {
          std::lock_guard lock(mu);
          assigned_at[a->job_id] = now;
        }
        proto::send_event(s, proto::JobEvent{.type = proto::Type::kJobDone,
                                             .job_id = a->job_id,
                                             .attempt = a->attempt,
                                             .outcome = "succeeded"});
      }
    }
  });
  while (!registered) std::this_thread::sleep_for(10ms);
  auto client = connect(scheduler.client_endpoint(), scheduler.options());
  const int count = static_cast<int>(config.rate * config.latency_seconds);
  std::unordered_map<std::uint64_t, Clock::time_point> sent_at;
  std::unordered_map<std::string, Clock::time_point> submitted;
  const auto interval = std::chrono::duration<double>(1.0 / config.rate);
  const auto begun = Clock::now();
  int sent = 0, acked = 0;
  while (acked < count) {
    auto next_send = begun + std::chrono::duration_cast<Clock::duration>(interval * sent);
    if (sent < count && Clock::now() >= next_send) {
      auto t = Clock::now();
      auto id = client->send_request(job(sent));
      sent_at[*id] = t;
      ++sent;
      continue;
    }
    auto wait = sent < count ? std::chrono::duration_cast<std::chrono::milliseconds>(next_send - Clock::now())
                             : std::chrono::milliseconds(1000);
    auto reply = client->next_reply(std::max(wait, std::chrono::milliseconds(0)));
    if (!reply) continue;
    if (reply->type == proto::Type::kSubmitted) {
      auto s = proto::decode<proto::Submitted>(reply->body);
      submitted[s->job_id] = sent_at[s->request_id];
      ++acked;
    }
  }
  std::this_thread::sleep_for(500ms);
  stop = true;
  worker.join();
  std::vector<double> ms;
  for (const auto& [id, t] : submitted) {
    auto it = assigned_at.find(id);
    if (it != assigned_at.end())
      ms.push_back(std::chrono::duration<double, std::milli>(it->second - t).count());
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * ms.size()))];
  };
  fmt::print(
      "dispatch latency at {} jobs/s offered ({} jobs, submit sent -> assign received): p50 {:.3f} ms, "
      "p99 {:.3f} ms, max {:.3f} ms\n",
      config.rate, ms.size(), pct(0.50), pct(0.99), ms.empty() ? 0.0 : ms.back());
  return {pct(0.50), pct(0.99)};
}

void run_memory_and_restart(const Config& config, bool memory, bool restart) {
  Scheduler scheduler(config, "queued");
  auto client = connect(scheduler.client_endpoint(), scheduler.options());
  std::this_thread::sleep_for(500ms);
  const long before = scheduler.process().rss_kib();
  int sent = 0, acked = 0;
  std::size_t spec_bytes = 0;
  while (acked < config.queued) {
    while (sent < config.queued && sent - acked < config.window) {
      auto j = job(sent);
      spec_bytes += j.job.spec.size();
      send_or_exit(*client, j);
      ++sent;
    }
    auto reply = client->next_reply(30s);
    if (!reply) std::exit(1);
    if (reply->type == proto::Type::kSubmitted) ++acked;
  }
  // Let the HTTP view catch up (it copies part of the queue).
  std::this_thread::sleep_for(3s);
  const long after = scheduler.process().rss_kib();
  if (memory) {
    const double per_job = (after - before) * 1024.0 / config.queued;
    const double spec = static_cast<double>(spec_bytes) / config.queued;
    fmt::print(
        "memory: RSS {} MiB -> {} MiB with {} queued jobs = {:.0f} bytes per queued job ({:.0f} of them the "
        "spec text, {:.0f} beyond it)\n",
        before / 1024, after / 1024, config.queued, per_job, spec, per_job - spec);
  }
  if (restart) {
    scheduler.process().stop(SIGKILL);
    auto took = scheduler.start();
    fmt::print("restart: kill -9 with {} jobs in the database, then answering clients after {:.2f} s\n",
               config.queued, took.count());
    auto c = connect(scheduler.client_endpoint(), scheduler.options());
    auto jobs = c->call<proto::Jobs>(proto::ListJobs{.states = {"queued"}, .limit = 1});
    if (jobs) fmt::print("restart: {} jobs queued after the restart\n", jobs->total);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  CLI::App app{
      "kiln-farm-bench: scheduler throughput, dispatch latency, memory per queued job and restart time, "
      "with real processes over ZeroMQ TCP on 127.0.0.1"};
  app.add_option("--scheduler-bin", config.scheduler_bin)->default_val(config.scheduler_bin);
  app.add_option("--worker-bin", config.worker_bin)->default_val(config.worker_bin);
  app.add_option("--dir", config.dir, "Scratch directory (removed first)")->default_val(config.dir);
  app.add_option("--only", config.only, "throughput, latency, memory or restart");
  app.add_option("--jobs", config.jobs, "Jobs for the throughput run")->default_val(config.jobs);
  app.add_option("--workers", config.workers, "Fake workers for the throughput run")
      ->default_val(config.workers);
  app.add_option("--capacity", config.capacity, "Each fake worker's capacity")->default_val(config.capacity);
  app.add_option("--window", config.window, "Submits in flight")->default_val(config.window);
  app.add_option("--rate", config.rate, "Offered jobs/s for the latency run")->default_val(config.rate);
  app.add_option("--seconds", config.latency_seconds, "Length of the latency run")
      ->default_val(config.latency_seconds);
  app.add_option("--queued", config.queued, "Queued jobs for memory and restart")->default_val(config.queued);
  app.add_option("--scheduler-arg", config.scheduler_args, "Extra kiln-scheduler argument (repeatable)");
  app.add_flag("--curve", config.curve, "CurveZMQ on every socket (keys made under --dir)");
  app.add_option(
      "--compare-curve", config.compare_curve,
      "ROUNDS of throughput and latency, plaintext and CurveZMQ interleaved; prints the medians and "
      "the ratio");
  CLI11_PARSE(app, argc, argv);
  std::filesystem::remove_all(config.dir);
  std::filesystem::create_directories(config.dir);
  if (config.curve || config.compare_curve > 0) make_keys(config);
  if (config.compare_curve > 0) {
    std::vector<double> rate[2], p99[2];
    for (int round = 1; round <= config.compare_curve; ++round) {
      for (int curve = 0; curve < 2; ++curve) {
        Config c = config;
        c.curve = curve == 1;
        fmt::print("round {} {}: ", round, c.curve ? "CurveZMQ " : "plaintext");
        rate[curve].push_back(run_throughput(c));
        fmt::print("round {} {}: ", round, c.curve ? "CurveZMQ " : "plaintext");
        p99[curve].push_back(run_latency(c).second);
        for (const char* part : {"/throughput", "/latency"}) std::filesystem::remove_all(config.dir + part);
      }
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    fmt::print(
        "median of {} rounds: plaintext {:.0f} jobs/s, p99 {:.3f} ms; CurveZMQ {:.0f} jobs/s, p99 {:.3f} ms; "
        "CurveZMQ/plaintext throughput {:.2f}\n",
        config.compare_curve, median(rate[0]), median(p99[0]), median(rate[1]), median(p99[1]),
        median(rate[1]) / median(rate[0]));
    std::filesystem::remove_all(config.dir);
    return 0;
  }
  if (config.only.empty() || config.only == "throughput") run_throughput(config);
  if (config.only.empty() || config.only == "latency") run_latency(config);
  if (config.only.empty() || config.only == "memory" || config.only == "restart") {
    run_memory_and_restart(config, config.only != "restart", config.only != "memory");
  }
  std::filesystem::remove_all(config.dir);
  return 0;
}
