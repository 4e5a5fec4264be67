// Why the docker backend talks to dockerd's API and not the docker CLI: the
// same operations both ways against the same dockerd, interleaved round by
// round (so both sides meet the same load), mean milliseconds and the ratio.
// Run by bench/docker-api-vs-cli, which starts a private dockerd:
//
//   docker_api_vs_cli unix:///tmp/d/docker.sock IMAGE [ROUNDS]
//
// Operations: `docker inspect IMAGE` vs GET /images/IMAGE/json; `docker
// create --network none IMAGE /bin/true` + `docker rm ID` vs POST /containers/create +
// DELETE /containers/ID. The CLI is /usr/bin/docker (the distribution's).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "worker/docker/docker_client.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "docker_api_vs_cli: %s\n", what.c_str());
  std::exit(1);
}

std::string cli(const std::string& host, std::vector<std::string> args) {
  args.insert(args.begin(), {"/usr/bin/docker", "-H", host});
  auto out = kiln::run_command(args);
  if (!out) die(out.error().to_string());
  if (!out->ok()) die(args[3] + " failed: " + out->output);
  return out->output;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) die("usage: docker_api_vs_cli unix:///PATH/docker.sock IMAGE [ROUNDS]");
  const std::string host = argv[1];
  const std::string image = argv[2];
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 50;
  auto client = kiln::docker::DockerClient::create({.host = host});
  if (!client) die(client.error().to_string());
  auto& api = **client;
  kiln::docker::ContainerSpec spec{.image = image, .entrypoint = std::vector<std::string>{"/bin/true"}};

  double cli_inspect = 0, api_inspect = 0, cli_create = 0, api_create = 0;
  for (int i = 0; i < rounds; ++i) {
    // The side that goes first alternates.
    for (int side = 0; side < 2; ++side) {
      bool use_cli = (side == 0) == (i % 2 == 0);
      auto start = Clock::now();
      if (use_cli) {
        cli(host, {"inspect", image});
        cli_inspect += ms_since(start);
      } else {
        if (auto r = api.inspect_image(image); !r) die(r.error().to_string());
        api_inspect += ms_since(start);
      }
      start = Clock::now();
      if (use_cli) {
        // The same container as the API's: no network, /bin/true.
        std::string out = cli(host, {"create", "--network", "none", image, "/bin/true"});
        while (!out.empty() && out.back() == '\n') out.pop_back();
        std::string id = out.substr(out.rfind('\n') + 1);  // the id is the last line
        cli(host, {"rm", id});
        cli_create += ms_since(start);
      } else {
        auto id = api.create_container(spec, "");
        if (!id) die(id.error().to_string());
        if (auto r = api.remove_container(*id); !r) die(r.error().to_string());
        api_create += ms_since(start);
      }
    }
  }
  std::printf("%d rounds, mean ms per operation (CLI / API = ratio)\n", rounds);
  std::printf("inspect an image:             CLI %7.2f  API %7.2f  ratio %5.1f\n", cli_inspect / rounds,
              api_inspect / rounds, cli_inspect / api_inspect);
  std::printf("create + remove a container: CLI %7.2f  API %7.2f  ratio %5.1f\n", cli_create / rounds,
              api_create / rounds, cli_create / api_create);
  return 0;
}
