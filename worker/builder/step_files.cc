#include "worker/builder/step_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "common/fs.h"
#include "common/subprocess.h"
#include "worker/docker/container_files.h"

namespace kiln::builder {

Result<std::string> StepFiles::open_tree(const store::Workspace&, const std::string& result_id,
                                         const std::vector<std::string>&, const CancelToken&) {
  return make_error(ErrorKind::kUnsupported,
                    fmt::format("copying from a build stage is not supported on this store (result {} has "
                                "no rootfs directory); use another --store",
                                result_id));
}

namespace {

class RootfsStepFiles final : public StepFiles {
 public:
  Status copy_in(const store::Workspace& ws, const std::vector<CopySourceTree>& sources,
                 const std::string& dst, const spec::UnixUser& owner, const CancelToken& cancel) override {
    if (!ws.has_rootfs())
      return make_error(ErrorKind::kUnsupported,
                        "this store's workspace has no rootfs directory to copy into; the docker store "
                        "needs the builder's docker step files (BuilderOptions::step_files)");
    return copy_into_rootfs(ws.rootfs, sources, dst, owner, cancel);
  }
};

class DockerStepFiles final : public StepFiles {
 public:
  DockerStepFiles(std::shared_ptr<docker::DockerClient> client, std::string prefix)
      : client_(std::move(client)), prefix_(std::move(prefix)) {}

  Status copy_in(const store::Workspace& ws, const std::vector<CopySourceTree>& sources,
                 const std::string& dst, const spec::UnixUser& owner, const CancelToken& cancel) override {
    if (ws.container.empty() || ws.base_image.empty())
      return make_error(
          ErrorKind::kInvalidArgument,
          "a copy on the docker store needs a workspace with a base image and a container name");
    std::string staging = ws.dir + "/copy";
    KILN_RETURN_IF_ERROR(remove_tree(staging));
    KILN_RETURN_IF_ERROR(ensure_dir(staging));
    Status status = copy_into_rootfs(staging, sources, dst, owner, cancel);
    if (status) status = put(ws, staging, dst);
    Status removed = remove_tree(staging);
    KILN_RETURN_IF_ERROR(status);
    return removed;
  }

  Result<std::string> open_tree(const store::Workspace& ws, const std::string& result_id,
                                const std::vector<std::string>& sources, const CancelToken& cancel) override {
    std::string tree = ws.dir + "/stage-" + result_id.substr(0, 16);
    KILN_RETURN_IF_ERROR(remove_tree(tree));
    KILN_RETURN_IF_ERROR(ensure_dir(tree));
    Status read = read_tree(prefix_ + ":" + result_id, tree, sources, cancel);
    if (!read) {
      (void)remove_tree(tree);
      return std::unexpected(std::move(read.error()).with_context("reading build stage " + result_id));
    }
    return tree;
  }

 private:
  // GET /archive of each source out of a container of `image` (created,
  // never started, removed afterwards) into the same path below `tree`.
  Status read_tree(const std::string& image, const std::string& tree, const std::vector<std::string>& sources,
                   const CancelToken& cancel) {
    docker::ContainerSpec spec{.image = image,
                               .entrypoint = std::vector<std::string>{"/bin/sh"},
                               .labels = {{"kiln.store", prefix_}, {"kiln.kind", "step"}}};
    KILN_ASSIGN_OR_RETURN(std::string container, client_->create_container(spec, ""));
    Status status;
    for (const std::string& source : sources) {
      std::string path = "/" + source;
      std::string parent = tree + path.substr(0, path.rfind('/'));
      if (source.empty()) {
        path = "/.";
        parent = tree;
      }
      status = ensure_dirs(parent);
      if (!status) break;
      std::string tar_path = tree + ".tar";
      int fd = ::open(tar_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) {
        status = errno_error("cannot create " + tar_path);
        break;
      }
      status = client_->get_archive(
          container, path, [&](std::string_view bytes) -> Status { return write_all(fd, bytes, tar_path); },
          &cancel);
      ::close(fd);
      if (!status && status.error().kind() == ErrorKind::kNotFound)
        status = {};  // the manifest says so
      else if (status) {
        auto out = run_command({"tar", "--numeric-owner", "--same-permissions", "--xattrs",
                                "--xattrs-include=*", "-C", parent, "-xf", tar_path});
        if (!out)
          status = std::unexpected(out.error());
        else if (!out->ok())
          status = make_error(ErrorKind::kIo,
                              fmt::format("unpacking {} of {}: tar failed: {}", path, image, out->output));
      }
      ::unlink(tar_path.c_str());
      if (!status) break;
    }
    Status removed = client_->remove_container(container);
    KILN_RETURN_IF_ERROR(status);
    return removed;
  }

  Status put(const store::Workspace& ws, const std::string& staging, const std::string& dst) {
    std::string step_id = ws.dir.substr(ws.dir.rfind('/') + 1);
    // Never started: the command only satisfies dockerd (an image may have
    // none); the store's commit sets the base's Entrypoint and Cmd back.
    docker::ContainerSpec container{
        .image = ws.base_image,
        .entrypoint = std::vector<std::string>{"/bin/sh"},
        .labels = {{"kiln.store", prefix_}, {"kiln.kind", "step"}, {"kiln.step", step_id}}};
    KILN_RETURN_IF_ERROR_CONTEXT(client_->create_container(container, ws.container),
                                 "creating the copy step's container from " + ws.base_image);
    return docker::put_staged_tree(*client_, ws.container, staging, dst);
  }

  std::shared_ptr<docker::DockerClient> client_;
  const std::string prefix_;
};

}  // namespace

StepFiles& rootfs_step_files() {
  static RootfsStepFiles files;
  return files;
}

std::shared_ptr<StepFiles> make_docker_step_files(std::shared_ptr<docker::DockerClient> client,
                                                  std::string prefix) {
  return std::make_shared<DockerStepFiles>(std::move(client), std::move(prefix));
}

}  // namespace kiln::builder
