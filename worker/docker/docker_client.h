// A client of the docker engine's HTTP API (version 1.41, dockerd 20.10) on
// its unix socket: what kiln's docker backend needs of images, containers,
// volumes, commits, pulls and archives (docs/store.md, "The docker backend").
// One request per call over a reused keep-alive connection, never a `docker`
// CLI process (docs/store.md says why, with the measured difference).
//
//   KILN_ASSIGN_OR_RETURN(auto client, DockerClient::create({.host = "unix:///var/run/docker.sock"}));
//   ContainerSpec spec{.image = "busybox:latest", .entrypoint = {{"/bin/sh", "-c", "echo hi"}}};
//   spec.labels["kiln.store"] = "kiln";
//   KILN_ASSIGN_OR_RETURN(std::string id, client->create_container(spec, "kiln-run-1"));
//   std::thread out([&] { (void)client->logs(id, {.follow = true}, sink, nullptr); });
//   KILN_RETURN_IF_ERROR(client->start_container(id));
//   KILN_ASSIGN_OR_RETURN(WaitResult exit, client->wait_container(id, nullptr));
//   KILN_ASSIGN_OR_RETURN(std::string image, client->commit(id, {.repo = "kiln", .tag = step_id}));
//
// Errors name the call and dockerd's own message, e.g. "dockerd
// unix:///run/docker.sock: POST /containers/create?name=x: 409: Conflict. The
// container name "/x" is already in use ...". Kinds: kNotFound (404),
// kInvalidArgument (400, or a name with characters docker refuses),
// kFailedPrecondition (409: a conflict — name in use, not running, in use by
// a container), kIo (500 and other answers), kUnavailable (cannot reach the
// socket: the message says so), kTimeout, kCancelled. Buffered answers are
// bounded (ClientOptions::max_response_bytes); streamed ones (logs, attach,
// pull, archives) go to callbacks as they arrive.
// Thread safety: every method may be called from several threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cancel_token.h"
#include "common/error.h"
#include "worker/docker/streams.h"

namespace kiln::docker {

namespace internal {
class UnixHttp;
}

inline constexpr std::string_view kDefaultDockerHost = "unix:///var/run/docker.sock";

struct ClientOptions {
  std::string host = std::string(kDefaultDockerHost);  // "unix://PATH" (--docker-host)
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{600'000};  // calls that are not streamed
  std::size_t max_response_bytes = 16u << 20;
};

struct VersionInfo {
  std::string version;      // "20.10.24+dfsg1"
  std::string api_version;  // "1.41"
  std::string os, arch, kernel_version;
};

// What GET /info says about the daemon's storage (the store checks and df).
struct DaemonInfo {
  std::string root_dir;        // DockerRootDir, e.g. /var/lib/docker
  std::string storage_driver;  // "overlay2"
  std::string cgroup_driver;   // "cgroupfs" or "systemd"
  std::string server_version;
};

// A path in a container, as HEAD /archive reports it (X-Docker-Container-Path-Stat).
struct PathStat {
  std::string name;
  std::int64_t size = 0;
  std::uint32_t mode = 0;   // Go's os.FileMode bits: permissions, plus 1 << 31 for a directory,
                            // 1 << 27 for a symlink
  std::string link_target;  // symlinks: where it points
  bool is_dir() const { return (mode & (1u << 31)) != 0; }
  bool is_symlink() const { return (mode & (1u << 27)) != 0; }
};

using Labels = std::map<std::string, std::string>;

// Filters for the list calls: "KEY" (has the label) or "KEY=VALUE".
struct ListFilter {
  std::vector<std::string> labels;
  std::vector<std::string> references;  // images only: "kiln/*", "kiln:abc"
};

struct ImageInfo {
  std::string id;  // "sha256:..."
  std::vector<std::string> repo_tags;
  Labels labels;
  std::int64_t size = 0;
  std::string created;  // RFC 3339
  std::vector<std::string> env;
  std::string working_dir, user;
  std::vector<std::string> entrypoint, cmd;
};

struct ImageSummary {
  std::string id;
  std::vector<std::string> repo_tags;
  Labels labels;
  std::int64_t size = 0;
  std::int64_t created = 0;  // seconds since the epoch
};

struct PullProgress {
  std::string id;      // a layer's short digest, or the tag
  std::string status;  // "Downloading", "Pull complete", "Digest: sha256:..."
  std::int64_t current = 0, total = 0;
};

struct Mount {
  enum class Type { kBind, kVolume, kTmpfs };
  Type type = Type::kBind;
  std::string source;  // host path (bind) or volume name; empty for tmpfs
  std::string target;  // absolute, in the container
  bool read_only = false;
  std::uint64_t tmpfs_size_bytes = 0;  // tmpfs: 0 = the daemon's default
  std::uint32_t tmpfs_mode = 0;        // tmpfs: 0 = the default (1777)
};

struct Ulimit {
  std::string name;  // "nofile", "nproc"
  std::int64_t soft = 0, hard = 0;
};

struct ContainerSpec {
  std::string image;
  // The process, as given: Entrypoint replaces the image's (and, set, makes
  // the image's Cmd unused); Cmd is appended to it.
  std::optional<std::vector<std::string>> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "K=V"
  std::string working_dir, user, hostname;
  Labels labels;
  bool open_stdin = false;
  std::string network_mode = "none";  // "none" or "host"
  std::vector<Mount> mounts;
  std::optional<std::int64_t> memory_bytes;  // also the swap limit (no swap)
  std::optional<std::int64_t> pids_limit;
  std::optional<std::int64_t> nano_cpus;  // 1e9 = one core
  std::vector<Ulimit> ulimits;
  std::string log_driver;  // "" = the daemon's default ("json-file"); "none": attach only
  // HostConfig.CgroupParent: "" = the daemon's (--cgroup-parent, else
  // /docker); the cgroupfs driver takes a path ("/kiln/docker-3fa2"), the
  // systemd driver a slice ("kiln-3fa2.slice").
  std::string cgroup_parent;
};

struct ContainerInfo {
  std::string id, name, image;  // image: the image id it runs
  std::string status;           // "created", "running", "exited", ...
  bool running = false;
  bool oom_killed = false;
  int exit_code = 0;
  Labels labels;
  // Its filesystem as the storage driver keeps it on the daemon's host
  // (GraphDriver): the driver ("overlay2") and, for overlay2, the writable
  // layer (UpperDir) and the layers below it, topmost first (LowerDir).
  std::string graph_driver;
  std::string upper_dir;
  std::vector<std::string> lower_dirs;
};

struct ContainerSummary {
  std::string id;
  std::vector<std::string> names;  // "/kiln-run-1"
  std::string image, state;
  Labels labels;
};

struct WaitResult {
  std::int64_t exit_code = 0;
  std::string error;  // the daemon's, when waiting itself failed
};

struct LogOptions {
  bool follow = false;  // until the container stops
  bool include_stdout = true, include_stderr = true;
};

struct CommitOptions {
  std::string repo, tag;  // the new image's name; both empty: untagged
  Labels labels;          // added to the image's labels
  std::string comment;
  bool pause = false;  // pausing needs the freezer; kiln commits stopped containers
  // Set: the image's Entrypoint and Cmd instead of the container's (an empty
  // entrypoint clears it); unset: the container's.
  std::optional<std::vector<std::string>> entrypoint, cmd;
  // Set: the image's Env ("K=V", the container's others kept), WorkingDir and
  // User instead of the container's. (Set on the container instead, a
  // WorkingDir it lacks would be made in its layer, and so committed.)
  std::optional<std::vector<std::string>> env;
  std::optional<std::string> working_dir, user;
};

struct VolumeInfo {
  std::string name, driver, mountpoint, created_at;
  Labels labels;
};

using OutputSink = std::function<void(StreamKind kind, std::string_view bytes)>;
// Supplies a request body piece by piece: bytes written, 0 at the end.
using BodyReader = std::function<Result<std::size_t>(char* buffer, std::size_t size)>;

class DockerClient {
 public:
  // Parses the host (only "unix://ABSOLUTE-PATH"); does not connect.
  static Result<std::unique_ptr<DockerClient>> create(ClientOptions options = {});
  ~DockerClient();

  const std::string& host() const { return options_.host; }

  Result<VersionInfo> version();
  Result<DaemonInfo> info();

  // Images. `name` is a reference ("kiln:STEP", "busybox:latest") or an id.
  Result<ImageInfo> inspect_image(const std::string& name);
  Status tag_image(const std::string& source, const std::string& repo, const std::string& tag);
  // Removes the name (and the image when it was its last); kNotFound when absent.
  Status remove_image(const std::string& name, bool force = false);
  Result<std::vector<ImageSummary>> list_images(const ListFilter& filter = {});
  // POST /images/create: pulls with the daemon's registry configuration. A
  // reference without a tag or digest pulls `latest`.
  Status pull_image(const std::string& reference, const std::function<void(const PullProgress&)>& on_progress,
                    const CancelToken* cancel);
  // POST /images/NAME/push: pushes `repo:tag` with the daemon's registry
  // configuration (its insecure registries and certificates).
  // `registry_auth` is the X-Registry-Auth value (base64url of a JSON
  // {"username","password","serveraddress"}; "e30=", that is {}, for none:
  // dockerd 20.10 refuses a push without the header).
  // Progress messages as for pulls; returns the manifest's digest
  // ("sha256:..."). An in-band error (refused login, unreachable registry)
  // is the error.
  Result<std::string> push_image(const std::string& repo, const std::string& tag,
                                 const std::string& registry_auth,
                                 const std::function<void(const PullProgress&)>& on_progress,
                                 const CancelToken* cancel);
  // POST /images/create?fromSrc=-: a new single-layer image `repo:tag` whose
  // filesystem is the tar stream `rootfs`. Returns its id.
  Result<std::string> import_image(const std::string& repo, const std::string& tag, const BodyReader& rootfs);

  // Containers. `name` may be empty (docker picks one).
  Result<std::string> create_container(const ContainerSpec& spec, const std::string& name);
  Status start_container(const std::string& id);
  // Waits until the container is not running (returns at once if it is not).
  Result<WaitResult> wait_container(const std::string& id, const CancelToken* cancel);
  // kFailedPrecondition when it is not running.
  Status kill_container(const std::string& id, std::string_view signal = "KILL");
  // force: kills it first. kNotFound when absent.
  Status remove_container(const std::string& id, bool force = true);
  Result<ContainerInfo> inspect_container(const std::string& id);
  Result<std::vector<ContainerSummary>> list_containers(const ListFilter& filter = {});
  // GET /logs (needs a log driver that keeps logs): stdout and stderr,
  // demultiplexed, until the end (follow: until the container stops).
  Status logs(const std::string& id, const LogOptions& options, const OutputSink& sink,
              const CancelToken* cancel);
  // POST /attach: the output from now on until the container stops.
  // `on_attached` runs once the daemon accepted (start the container then).
  Status attach_output(const std::string& id, const std::function<void()>& on_attached,
                       const OutputSink& sink, const CancelToken* cancel);
  // POST /commit: a new image of the container's filesystem. Returns its id.
  Result<std::string> commit(const std::string& container, const CommitOptions& options);
  // PUT /archive: extracts a tar stream into directory `path` of the container
  // (which may be stopped or only created).
  Status put_archive(const std::string& container, const std::string& path, const BodyReader& tar);
  Status put_archive(const std::string& container, const std::string& path, std::string tar);
  // HEAD /archive: what `path` is in the container (symlinks not followed
  // for the last component); kNotFound when it does not exist.
  Result<PathStat> stat_path(const std::string& container, const std::string& path);
  // GET /archive: a tar stream of `path` (the entry itself, named by its basename).
  Status get_archive(const std::string& container, const std::string& path,
                     const std::function<Status(std::string_view)>& sink, const CancelToken* cancel);

  // Volumes (driver "local").
  Result<VolumeInfo> create_volume(const std::string& name, const Labels& labels);
  Result<VolumeInfo> inspect_volume(const std::string& name);
  // kFailedPrecondition while a container uses it; kNotFound when absent.
  Status remove_volume(const std::string& name, bool force = false);
  Result<std::vector<VolumeInfo>> list_volumes(const ListFilter& filter = {});

 private:
  DockerClient(ClientOptions options, std::unique_ptr<internal::UnixHttp> http);
  struct Call;
  Result<std::string> call(Call& call);

  ClientOptions options_;
  std::unique_ptr<internal::UnixHttp> http_;
};

}  // namespace kiln::docker
