#include "worker/docker/docker_fetcher.h"

#include <fmt/format.h>

#include "common/fs.h"
#include "worker/docker/container_files.h"

namespace kiln::docker {
namespace {

fetcher::ImageConfig config_of(const ImageInfo& info) {
  fetcher::ImageConfig config;
  for (const std::string& kv : info.env) {
    std::size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      config.env.emplace_back(kv, "");
    } else {
      config.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  config.working_dir = info.working_dir;
  config.user = info.user;
  config.entrypoint = info.entrypoint;
  config.cmd = info.cmd;
  config.manifest_digest = info.id;  // dockerd's image id (its config's digest)
  return config;
}

class DockerFetcher final : public fetcher::Fetcher {
 public:
  DockerFetcher(std::unique_ptr<fetcher::Fetcher> local, std::unique_ptr<DockerClient> client,
                std::string prefix)
      : local_(std::move(local)), client_(std::move(client)), prefix_(std::move(prefix)) {}

  Result<fetcher::ImageConfig> fetch(const fetcher::Progress&, const std::string& rootfs,
                                     std::string_view image, const fetcher::FetchOptions&) override {
    return make_error(
        ErrorKind::kUnsupported,
        fmt::format("the docker fetcher makes containers, not directories ({} into {})", image, rootfs));
  }

  Result<fetcher::ImageConfig> fetch_into(const fetcher::Progress& progress, const store::Workspace& ws,
                                          std::string_view image,
                                          const fetcher::FetchOptions& options) override {
    if (ws.container.empty())
      return make_error(ErrorKind::kInvalidArgument, "the docker fetcher needs a docker store's workspace");
    KILN_ASSIGN_OR_RETURN(fetcher::ImageReference ref, fetcher::parse_image_reference(image));
    std::string step_id = ws.dir.substr(ws.dir.rfind('/') + 1);
    std::string source = std::string(image);
    fetcher::ImageConfig config;
    if (ref.source == fetcher::ImageSource::kRegistry) {
      // dockerd pulls with its own registry configuration and credentials.
      auto on_progress = [&progress](const PullProgress& p) {
        if (!progress) return;
        std::string line = p.id.empty() ? p.status : p.id + ": " + p.status;
        progress(p.total > 0 ? fetcher::ProgressKind::kBytesRead : fetcher::ProgressKind::kLayer, line);
      };
      KILN_RETURN_IF_ERROR_CONTEXT(client_->pull_image(source, on_progress, options.cancel),
                                   "pulling " + source + " with dockerd");
      KILN_ASSIGN_OR_RETURN(ImageInfo info, client_->inspect_image(source));
      config = config_of(info);
    } else {
      // kiln's own fetcher unpacks it beside the workspace; dockerd imports the tree.
      std::string rootfs = ws.dir + "/import";
      KILN_RETURN_IF_ERROR(ensure_dir(rootfs));
      auto fetched = local_->fetch(progress, rootfs, image, options);
      if (!fetched) {
        (void)remove_tree(rootfs);
        return std::unexpected(fetched.error());
      }
      config = std::move(*fetched);
      auto id = import_directory(*client_, rootfs, import_repo(), step_id);
      Status removed = remove_tree(rootfs);
      KILN_RETURN_IF_ERROR(id);
      KILN_RETURN_IF_ERROR(removed);
      source = import_repo() + ":" + step_id;
    }
    // The container carries the image's configuration, so that the committed
    // result has it too (an imported image has none of its own).
    ContainerSpec container{
        .image = source,
        .cmd = config.cmd,
        .working_dir = config.working_dir,
        .user = config.user,
        .labels = {{"kiln.store", prefix_}, {"kiln.kind", "step"}, {"kiln.step", step_id}}};
    for (const auto& [name, value] : config.env) container.env.push_back(name + "=" + value);
    if (!config.entrypoint.empty()) container.entrypoint = config.entrypoint;
    // dockerd refuses a container without a command; this one never starts.
    if (config.entrypoint.empty() && config.cmd.empty()) container.cmd = {"/bin/sh"};
    // An import name (PREFIX-import:<id>) is removed by the store with the
    // container: at the commit, or when the step is discarded.
    KILN_RETURN_IF_ERROR_CONTEXT(client_->create_container(container, ws.container),
                                 "creating the container of " + source);
    return config;
  }

 private:
  std::string import_repo() const { return prefix_ + "-import"; }

  std::unique_ptr<fetcher::Fetcher> local_;
  std::unique_ptr<DockerClient> client_;
  const std::string prefix_;
};

}  // namespace

Result<std::unique_ptr<fetcher::Fetcher>> make_docker_fetcher(std::unique_ptr<fetcher::Fetcher> local,
                                                              const std::string& host,
                                                              const std::string& prefix) {
  KILN_ASSIGN_OR_RETURN(auto client, DockerClient::create({.host = host}));
  return std::unique_ptr<fetcher::Fetcher>(new DockerFetcher(std::move(local), std::move(client), prefix));
}

}  // namespace kiln::docker
