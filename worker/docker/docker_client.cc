#include "worker/docker/docker_client.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "worker/docker/internal/unix_http.h"

namespace kiln::docker {

using internal::UnixHttp;
using nlohmann::json;

namespace {

constexpr std::string_view kApi = "/v1.41";

// Names go into URL paths unescaped (docker routes image names with '/'),
// so only the characters docker itself allows in names, ids and references.
Status check_name(std::string_view what, std::string_view name) {
  bool ok = !name.empty() && name.size() <= 512;
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '_' || c == '-' || c == '/' || c == ':' || c == '@');
  }
  if (ok) return {};
  return make_error(ErrorKind::kInvalidArgument,
                    fmt::format("invalid docker {} \"{}\": use letters, digits and . _ - / : @", what, name));
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::int64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::int64_t>() : 0;
}

std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const json& item : *it)
    if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

Labels labels_of(const json& j, const char* key = "Labels") {
  Labels out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return out;
  for (const auto& [k, v] : it->items())
    if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

std::string filters_query(const ListFilter& filter) {
  json f = json::object();
  if (!filter.labels.empty()) f["label"] = filter.labels;
  if (!filter.references.empty()) f["reference"] = filter.references;
  if (f.empty()) return "";
  return "filters=" + UnixHttp::escape(f.dump());
}

Result<json> parse_json(const std::string& body, std::string_view what) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return make_error(ErrorKind::kIo, fmt::format("dockerd's answer to {} is not JSON: {:.200}", what, body));
  return j;
}

VolumeInfo volume_of(const json& j) {
  return VolumeInfo{str(j, "Name"), str(j, "Driver"), str(j, "Mountpoint"), str(j, "CreatedAt"),
                    labels_of(j)};
}

json mount_json(const Mount& m) {
  static constexpr const char* kTypes[] = {"bind", "volume", "tmpfs"};
  json j = {{"Type", kTypes[static_cast<int>(m.type)]}, {"Target", m.target}, {"ReadOnly", m.read_only}};
  if (m.type != Mount::Type::kTmpfs) j["Source"] = m.source;
  if (m.type == Mount::Type::kTmpfs) {
    json options = json::object();
    if (m.tmpfs_size_bytes != 0) options["SizeBytes"] = m.tmpfs_size_bytes;
    if (m.tmpfs_mode != 0) options["Mode"] = m.tmpfs_mode;
    if (!options.empty()) j["TmpfsOptions"] = options;
  }
  if (m.type == Mount::Type::kBind) j["BindOptions"] = {{"Propagation", "rprivate"}};
  return j;
}

}  // namespace

// One API call: what to send and how to take the answer.
struct DockerClient::Call {
  std::string method;
  std::string target;  // after the API version prefix
  std::optional<json> body;
  std::optional<std::string> raw_body;
  std::string content_type;
  std::vector<std::string> headers;  // more header lines, "Name: value"
  BodyReader read_body;
  std::function<Status(std::string_view)> on_body;  // streamed answer
  std::function<void()> on_headers;
  bool streamed = false;  // no overall timeout
  const CancelToken* cancel = nullptr;
};

Result<std::unique_ptr<DockerClient>> DockerClient::create(ClientOptions options) {
  constexpr std::string_view kScheme = "unix://";
  if (!options.host.starts_with(kScheme) || options.host.size() <= kScheme.size() ||
      options.host[kScheme.size()] != '/')
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("invalid docker host \"{}\": use unix:///PATH/TO/docker.sock (tcp:// is not "
                    "supported)",
                    options.host));
  auto http = std::make_unique<UnixHttp>(options.host.substr(kScheme.size()),
                                         UnixHttp::Options{.connect_timeout = options.connect_timeout,
                                                           .max_response_bytes = options.max_response_bytes});
  return std::unique_ptr<DockerClient>(new DockerClient(std::move(options), std::move(http)));
}

DockerClient::DockerClient(ClientOptions options, std::unique_ptr<UnixHttp> http)
    : options_(std::move(options)), http_(std::move(http)) {}

DockerClient::~DockerClient() = default;

Result<std::string> DockerClient::call(Call& c) {
  UnixHttp::Request request;
  request.method = c.method;
  request.target = std::string(kApi) + c.target;
  if (c.body) {
    request.body = c.body->dump();
    request.content_type = "application/json";
  } else if (c.raw_body) {
    request.body = std::move(*c.raw_body);
  }
  if (!c.content_type.empty()) request.content_type = c.content_type;
  request.headers = std::move(c.headers);
  request.read_body = c.read_body;
  request.on_body = c.on_body;
  request.on_headers = c.on_headers;
  if (!c.streamed) request.timeout = options_.request_timeout;
  request.cancel = c.cancel;
  auto context = [&] {
    std::string target = c.target.substr(0, c.target.find("filters="));
    return fmt::format("dockerd {}: {} {}", options_.host, c.method, target);
  };
  auto response = http_->perform(request);
  if (!response) return std::unexpected(std::move(response.error()).with_context(context()));
  long status = response->status;
  if (status >= 200 && status < 300) return std::move(response->body);
  // Errors come as {"message": "..."}; anything else is shown as it is.
  std::string message = response->body;
  json j = json::parse(message, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    message = j["message"].get<std::string>();
  while (!message.empty() && message.back() == '\n') message.pop_back();
  ErrorKind kind = status == 404   ? ErrorKind::kNotFound
                   : status == 400 ? ErrorKind::kInvalidArgument
                   : status == 409 ? ErrorKind::kFailedPrecondition
                                   : ErrorKind::kIo;
  return make_error(kind, fmt::format("{}: {}: {}", context(), status, message));
}

Result<VersionInfo> DockerClient::version() {
  Call c{.method = "GET", .target = "/version"};
  KILN_ASSIGN_OR_RETURN(std::string body, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(body, "GET /version"));
  return VersionInfo{str(j, "Version"), str(j, "ApiVersion"), str(j, "Os"), str(j, "Arch"),
                     str(j, "KernelVersion")};
}

Result<DaemonInfo> DockerClient::info() {
  Call c{.method = "GET", .target = "/info"};
  KILN_ASSIGN_OR_RETURN(std::string body, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(body, "GET /info"));
  return DaemonInfo{str(j, "DockerRootDir"), str(j, "Driver"), str(j, "CgroupDriver"),
                    str(j, "ServerVersion")};
}

Result<ImageInfo> DockerClient::inspect_image(const std::string& name) {
  KILN_RETURN_IF_ERROR(check_name("image", name));
  Call c{.method = "GET", .target = "/images/" + name + "/json"};
  KILN_ASSIGN_OR_RETURN(std::string body, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(body, "GET /images/" + name + "/json"));
  ImageInfo info;
  info.id = str(j, "Id");
  info.repo_tags = strings(j, "RepoTags");
  info.size = num(j, "Size");
  info.created = str(j, "Created");
  if (auto config = j.find("Config"); config != j.end() && config->is_object()) {
    info.labels = labels_of(*config);
    info.env = strings(*config, "Env");
    info.working_dir = str(*config, "WorkingDir");
    info.user = str(*config, "User");
    info.entrypoint = strings(*config, "Entrypoint");
    info.cmd = strings(*config, "Cmd");
  }
  return info;
}

Status DockerClient::tag_image(const std::string& source, const std::string& repo, const std::string& tag) {
  KILN_RETURN_IF_ERROR(check_name("image", source));
  KILN_RETURN_IF_ERROR(check_name("repository", repo));
  KILN_RETURN_IF_ERROR(check_name("tag", tag));
  Call c{.method = "POST",
         .target =
             "/images/" + source + "/tag?repo=" + UnixHttp::escape(repo) + "&tag=" + UnixHttp::escape(tag)};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Status DockerClient::remove_image(const std::string& name, bool force) {
  KILN_RETURN_IF_ERROR(check_name("image", name));
  Call c{.method = "DELETE", .target = "/images/" + name + (force ? "?force=1" : "")};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Result<std::vector<ImageSummary>> DockerClient::list_images(const ListFilter& filter) {
  std::string query = filters_query(filter);
  Call c{.method = "GET", .target = "/images/json" + (query.empty() ? "" : "?" + query)};
  KILN_ASSIGN_OR_RETURN(std::string body, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(body, "GET /images/json"));
  std::vector<ImageSummary> out;
  if (!j.is_array()) return out;
  for (const json& item : j)
    out.push_back({str(item, "Id"), strings(item, "RepoTags"), labels_of(item), num(item, "Size"),
                   num(item, "Created")});
  return out;
}

Status DockerClient::pull_image(const std::string& reference,
                                const std::function<void(const PullProgress&)>& on_progress,
                                const CancelToken* cancel) {
  KILN_RETURN_IF_ERROR(check_name("image reference", reference));
  // Without a tag the daemon would pull every tag of the repository.
  std::size_t last_slash = reference.rfind('/');
  std::string_view last =
      std::string_view(reference).substr(last_slash == std::string::npos ? 0 : last_slash + 1);
  std::string target = "/images/create?fromImage=" + UnixHttp::escape(reference);
  if (last.find(':') == std::string_view::npos && reference.find('@') == std::string::npos)
    target += "&tag=latest";
  JsonMessageStream messages([&](const json& m) -> Status {
    if (!on_progress) return {};
    PullProgress p{str(m, "id"), str(m, "status"), 0, 0};
    if (auto detail = m.find("progressDetail"); detail != m.end() && detail->is_object()) {
      p.current = num(*detail, "current");
      p.total = num(*detail, "total");
    }
    on_progress(p);
    return {};
  });
  Call c{.method = "POST",
         .target = target,
         .on_body = [&](std::string_view bytes) { return messages.feed(bytes); },
         .streamed = true,
         .cancel = cancel};
  auto answered = call(c);
  Status pulled = answered ? messages.finish() : Status(std::unexpected(std::move(answered.error())));
  return with_context(std::move(pulled), fmt::format("pulling {}", reference));
}

Result<std::string> DockerClient::push_image(const std::string& repo, const std::string& tag,
                                             const std::string& registry_auth,
                                             const std::function<void(const PullProgress&)>& on_progress,
                                             const CancelToken* cancel) {
  KILN_RETURN_IF_ERROR(check_name("repository", repo));
  KILN_RETURN_IF_ERROR(check_name("tag", tag));
  for (char ch : registry_auth) {
    bool base64url = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                     ch == '-' || ch == '_' || ch == '=' || ch == '+' || ch == '/';
    if (!base64url)
      return make_error(ErrorKind::kInvalidArgument, "the registry login for dockerd is not base64");
  }
  std::string digest;
  JsonMessageStream messages([&](const json& m) -> Status {
    if (auto aux = m.find("aux"); aux != m.end() && aux->is_object()) digest = str(*aux, "Digest");
    if (!on_progress) return {};
    PullProgress p{str(m, "id"), str(m, "status"), 0, 0};
    if (auto detail = m.find("progressDetail"); detail != m.end() && detail->is_object()) {
      p.current = num(*detail, "current");
      p.total = num(*detail, "total");
    }
    if (!p.status.empty()) on_progress(p);
    return {};
  });
  Call c{.method = "POST",
         .target = "/images/" + repo + "/push?tag=" + UnixHttp::escape(tag),
         .on_body = [&](std::string_view bytes) { return messages.feed(bytes); },
         .streamed = true,
         .cancel = cancel};
  if (!registry_auth.empty()) c.headers.push_back("X-Registry-Auth: " + registry_auth);
  auto answered = call(c);
  Status pushed = answered ? messages.finish() : Status(std::unexpected(std::move(answered.error())));
  KILN_RETURN_IF_ERROR_CONTEXT(pushed, fmt::format("pushing {}:{}", repo, tag));
  if (!digest.starts_with("sha256:"))
    return make_error(ErrorKind::kIo, fmt::format("dockerd pushed {}:{} but sent no digest", repo, tag));
  return digest;
}

Result<std::string> DockerClient::import_image(const std::string& repo, const std::string& tag,
                                               const BodyReader& rootfs) {
  KILN_RETURN_IF_ERROR(check_name("repository", repo));
  KILN_RETURN_IF_ERROR(check_name("tag", tag));
  // The answer is a message stream ({"status":"sha256:..."}) with in-band errors.
  std::string id;
  JsonMessageStream messages([&](const json& m) -> Status {
    if (std::string status = str(m, "status"); status.starts_with("sha256:")) id = status;
    return {};
  });
  Call c{
      .method = "POST",
      .target = "/images/create?fromSrc=-&repo=" + UnixHttp::escape(repo) + "&tag=" + UnixHttp::escape(tag),
      .content_type = "application/x-tar",
      .read_body = rootfs,
      .on_body = [&](std::string_view bytes) { return messages.feed(bytes); },
      .streamed = true};
  auto answered = call(c);
  Status imported = answered ? messages.finish() : Status(std::unexpected(std::move(answered.error())));
  KILN_RETURN_IF_ERROR_CONTEXT(imported, fmt::format("importing {}:{}", repo, tag));
  if (id.empty())
    return make_error(ErrorKind::kIo, fmt::format("dockerd imported {}:{} but sent no image id", repo, tag));
  return id;
}

Result<std::string> DockerClient::create_container(const ContainerSpec& spec, const std::string& name) {
  KILN_RETURN_IF_ERROR(check_name("image", spec.image));
  if (!name.empty()) KILN_RETURN_IF_ERROR(check_name("container name", name));
  if (spec.network_mode != "none" && spec.network_mode != "host")
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("network mode \"{}\": kiln uses only none or host", spec.network_mode));
  json host = {{"NetworkMode", spec.network_mode}, {"Init", false}};
  json mounts = json::array();
  for (const Mount& m : spec.mounts) mounts.push_back(mount_json(m));
  host["Mounts"] = mounts;
  if (spec.memory_bytes) {
    host["Memory"] = *spec.memory_bytes;
    host["MemorySwap"] = *spec.memory_bytes;
  }
  if (spec.pids_limit) host["PidsLimit"] = *spec.pids_limit;
  if (spec.nano_cpus) host["NanoCpus"] = *spec.nano_cpus;
  if (!spec.ulimits.empty()) {
    json ulimits = json::array();
    for (const Ulimit& u : spec.ulimits)
      ulimits.push_back({{"Name", u.name}, {"Soft", u.soft}, {"Hard", u.hard}});
    host["Ulimits"] = ulimits;
  }
  if (!spec.cgroup_parent.empty()) host["CgroupParent"] = spec.cgroup_parent;
  if (!spec.log_driver.empty()) host["LogConfig"] = {{"Type", spec.log_driver}, {"Config", json::object()}};
  json body = {{"Image", spec.image},
               {"Env", spec.env},
               {"Labels", spec.labels},
               {"WorkingDir", spec.working_dir},
               {"User", spec.user},
               {"Hostname", spec.hostname},
               {"Tty", false},
               {"OpenStdin", spec.open_stdin},
               {"StdinOnce", spec.open_stdin},
               {"AttachStdout", true},
               {"AttachStderr", true},
               {"NetworkDisabled", spec.network_mode == "none"},
               {"HostConfig", host}};
  if (spec.entrypoint) body["Entrypoint"] = *spec.entrypoint;
  if (!spec.cmd.empty()) body["Cmd"] = spec.cmd;
  Call c{.method = "POST",
         .target = "/containers/create" + (name.empty() ? "" : "?name=" + UnixHttp::escape(name)),
         .body = std::move(body)};
  KILN_ASSIGN_OR_RETURN(std::string answer, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(answer, "POST /containers/create"));
  std::string id = str(j, "Id");
  if (id.empty()) return make_error(ErrorKind::kIo, "dockerd created a container but sent no id: " + answer);
  return id;
}

Status DockerClient::start_container(const std::string& id) {
  KILN_RETURN_IF_ERROR(check_name("container", id));
  Call c{.method = "POST", .target = "/containers/" + id + "/start"};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Result<WaitResult> DockerClient::wait_container(const std::string& id, const CancelToken* cancel) {
  KILN_RETURN_IF_ERROR(check_name("container", id));
  Call c{.method = "POST",
         .target = "/containers/" + id + "/wait?condition=not-running",
         .streamed = true,
         .cancel = cancel};
  KILN_ASSIGN_OR_RETURN(std::string body, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(body, "POST /containers/" + id + "/wait"));
  WaitResult result{num(j, "StatusCode"), ""};
  if (auto e = j.find("Error"); e != j.end() && e->is_object()) result.error = str(*e, "Message");
  return result;
}

Status DockerClient::kill_container(const std::string& id, std::string_view signal) {
  KILN_RETURN_IF_ERROR(check_name("container", id));
  Call c{.method = "POST", .target = "/containers/" + id + "/kill?signal=" + UnixHttp::escape(signal)};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Status DockerClient::remove_container(const std::string& id, bool force) {
  KILN_RETURN_IF_ERROR(check_name("container", id));
  Call c{.method = "DELETE", .target = "/containers/" + id + "?v=1" + (force ? "&force=1" : "")};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Result<ContainerInfo> DockerClient::inspect_container(const std::string& id) {
  KILN_RETURN_IF_ERROR(check_name("container", id));
  Call c{.method = "GET", .target = "/containers/" + id + "/json"};
  KILN_ASSIGN_OR_RETURN(std::string body, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(body, "GET /containers/" + id + "/json"));
  ContainerInfo info{.id = str(j, "Id"), .name = str(j, "Name"), .image = str(j, "Image")};
  if (auto state = j.find("State"); state != j.end() && state->is_object()) {
    info.status = str(*state, "Status");
    info.running = state->value("Running", false);
    info.oom_killed = state->value("OOMKilled", false);
    info.exit_code = static_cast<int>(num(*state, "ExitCode"));
  }
  if (auto config = j.find("Config"); config != j.end() && config->is_object())
    info.labels = labels_of(*config);
  if (auto driver = j.find("GraphDriver"); driver != j.end() && driver->is_object()) {
    info.graph_driver = str(*driver, "Name");
    if (auto data = driver->find("Data"); data != driver->end() && data->is_object()) {
      info.upper_dir = str(*data, "UpperDir");
      std::string lower = str(*data, "LowerDir");
      for (std::size_t start = 0; !lower.empty() && start <= lower.size();) {
        std::size_t colon = std::min(lower.find(':', start), lower.size());
        if (colon > start) info.lower_dirs.push_back(lower.substr(start, colon - start));
        start = colon + 1;
      }
    }
  }
  return info;
}

Result<std::vector<ContainerSummary>> DockerClient::list_containers(const ListFilter& filter) {
  std::string query = filters_query(filter);
  Call c{.method = "GET", .target = "/containers/json?all=1" + (query.empty() ? "" : "&" + query)};
  KILN_ASSIGN_OR_RETURN(std::string body, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(body, "GET /containers/json"));
  std::vector<ContainerSummary> out;
  if (!j.is_array()) return out;
  for (const json& item : j)
    out.push_back(
        {str(item, "Id"), strings(item, "Names"), str(item, "Image"), str(item, "State"), labels_of(item)});
  return out;
}

Status DockerClient::logs(const std::string& id, const LogOptions& options, const OutputSink& sink,
                          const CancelToken* cancel) {
  KILN_RETURN_IF_ERROR(check_name("container", id));
  StreamDemuxer demux(sink);
  Call c{.method = "GET",
         .target = fmt::format("/containers/{}/logs?stdout={:d}&stderr={:d}&follow={:d}", id,
                               options.include_stdout, options.include_stderr, options.follow),
         .on_body = [&](std::string_view bytes) { return demux.feed(bytes); },
         .streamed = true,
         .cancel = cancel};
  KILN_RETURN_IF_ERROR(call(c));
  return with_context(demux.finish(), fmt::format("dockerd {}: the logs of {}", options_.host, id));
}

Status DockerClient::attach_output(const std::string& id, const std::function<void()>& on_attached,
                                   const OutputSink& sink, const CancelToken* cancel) {
  KILN_RETURN_IF_ERROR(check_name("container", id));
  StreamDemuxer demux(sink);
  Call c{.method = "POST",
         .target = "/containers/" + id + "/attach?stream=1&stdout=1&stderr=1",
         .on_body = [&](std::string_view bytes) { return demux.feed(bytes); },
         .on_headers = on_attached,
         .streamed = true,
         .cancel = cancel};
  KILN_RETURN_IF_ERROR(call(c));
  return with_context(demux.finish(), fmt::format("dockerd {}: the output of {}", options_.host, id));
}

Result<std::string> DockerClient::commit(const std::string& container, const CommitOptions& options) {
  KILN_RETURN_IF_ERROR(check_name("container", container));
  std::string target =
      fmt::format("/commit?container={}&pause={:d}", UnixHttp::escape(container), options.pause);
  if (!options.repo.empty()) {
    KILN_RETURN_IF_ERROR(check_name("repository", options.repo));
    target += "&repo=" + UnixHttp::escape(options.repo);
  }
  if (!options.tag.empty()) {
    KILN_RETURN_IF_ERROR(check_name("tag", options.tag));
    target += "&tag=" + UnixHttp::escape(options.tag);
  }
  if (!options.comment.empty()) target += "&comment=" + UnixHttp::escape(options.comment);
  json config = json::object();
  if (!options.labels.empty()) config["Labels"] = options.labels;
  // dockerd keeps the container's Entrypoint unless the body sets one ([] clears it).
  if (options.entrypoint) config["Entrypoint"] = *options.entrypoint;
  if (options.cmd) config["Cmd"] = *options.cmd;
  if (options.env) config["Env"] = *options.env;
  if (options.working_dir) config["WorkingDir"] = *options.working_dir;
  if (options.user) config["User"] = *options.user;
  Call c{.method = "POST", .target = target, .body = std::move(config)};
  KILN_ASSIGN_OR_RETURN(std::string answer, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(answer, "POST /commit"));
  std::string id = str(j, "Id");
  if (id.empty()) return make_error(ErrorKind::kIo, "dockerd committed but sent no image id: " + answer);
  return id;
}

Status DockerClient::put_archive(const std::string& container, const std::string& path,
                                 const BodyReader& tar) {
  KILN_RETURN_IF_ERROR(check_name("container", container));
  Call c{.method = "PUT",
         .target = "/containers/" + container + "/archive?path=" + UnixHttp::escape(path),
         .content_type = "application/x-tar",
         .read_body = tar,
         .streamed = true};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Status DockerClient::put_archive(const std::string& container, const std::string& path, std::string tar) {
  KILN_RETURN_IF_ERROR(check_name("container", container));
  Call c{.method = "PUT",
         .target = "/containers/" + container + "/archive?path=" + UnixHttp::escape(path),
         .raw_body = std::move(tar),
         .content_type = "application/x-tar"};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Result<PathStat> DockerClient::stat_path(const std::string& container, const std::string& path) {
  KILN_RETURN_IF_ERROR(check_name("container", container));
  UnixHttp::Request request{
      .method = "HEAD",
      .target = std::string(kApi) + "/containers/" + container + "/archive?path=" + UnixHttp::escape(path),
      .timeout = options_.request_timeout};
  std::string context =
      fmt::format("dockerd {}: HEAD /containers/{}/archive?path={}", options_.host, container, path);
  auto response = http_->perform(request);
  if (!response) return std::unexpected(std::move(response.error()).with_context(context));
  // A HEAD answer has no body: the status alone says what went wrong.
  if (response->status == 404)
    return make_error(ErrorKind::kNotFound, fmt::format("{}: 404: no such container or path", context));
  if (response->status != 200)
    return make_error(ErrorKind::kIo, fmt::format("{}: {}", context, response->status));
  auto header = response->headers.find("x-docker-container-path-stat");
  if (header == response->headers.end())
    return make_error(ErrorKind::kIo, context + ": the answer has no X-Docker-Container-Path-Stat header");
  KILN_ASSIGN_OR_RETURN_CONTEXT(std::string decoded, base64_decode(header->second), context);
  KILN_ASSIGN_OR_RETURN(json j, parse_json(decoded, context));
  return PathStat{str(j, "name"), num(j, "size"), static_cast<std::uint32_t>(num(j, "mode")),
                  str(j, "linkTarget")};
}

Status DockerClient::get_archive(const std::string& container, const std::string& path,
                                 const std::function<Status(std::string_view)>& sink,
                                 const CancelToken* cancel) {
  KILN_RETURN_IF_ERROR(check_name("container", container));
  Call c{.method = "GET",
         .target = "/containers/" + container + "/archive?path=" + UnixHttp::escape(path),
         .on_body = sink,
         .streamed = true,
         .cancel = cancel};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Result<VolumeInfo> DockerClient::create_volume(const std::string& name, const Labels& labels) {
  KILN_RETURN_IF_ERROR(check_name("volume", name));
  Call c{.method = "POST",
         .target = "/volumes/create",
         .body = json{{"Name", name}, {"Driver", "local"}, {"Labels", labels}}};
  KILN_ASSIGN_OR_RETURN(std::string answer, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(answer, "POST /volumes/create"));
  return volume_of(j);
}

Result<VolumeInfo> DockerClient::inspect_volume(const std::string& name) {
  KILN_RETURN_IF_ERROR(check_name("volume", name));
  Call c{.method = "GET", .target = "/volumes/" + name};
  KILN_ASSIGN_OR_RETURN(std::string answer, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(answer, "GET /volumes/" + name));
  return volume_of(j);
}

Status DockerClient::remove_volume(const std::string& name, bool force) {
  KILN_RETURN_IF_ERROR(check_name("volume", name));
  Call c{.method = "DELETE", .target = "/volumes/" + name + (force ? "?force=1" : "")};
  KILN_RETURN_IF_ERROR(call(c));
  return {};
}

Result<std::vector<VolumeInfo>> DockerClient::list_volumes(const ListFilter& filter) {
  std::string query = filters_query(filter);
  Call c{.method = "GET", .target = "/volumes" + (query.empty() ? "" : "?" + query)};
  KILN_ASSIGN_OR_RETURN(std::string answer, call(c));
  KILN_ASSIGN_OR_RETURN(json j, parse_json(answer, "GET /volumes"));
  std::vector<VolumeInfo> out;
  auto volumes = j.find("Volumes");
  if (volumes == j.end() || !volumes->is_array()) return out;
  for (const json& v : *volumes) out.push_back(volume_of(v));
  return out;
}

}  // namespace kiln::docker
