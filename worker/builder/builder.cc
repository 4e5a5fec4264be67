#include "worker/builder/builder.h"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <thread>
#include <variant>

#include <sys/stat.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/format.h"
#include "common/fs.h"
#include "common/ids/step_id.h"
#include "common/path.h"
#include "common/spec/sexp.h"
#include "worker/builder/base_images.h"
#include "worker/builder/copy_files.h"
#include "worker/builder/step_environment.h"

namespace kiln::builder {

namespace {

using Env = EnvList;

std::string location(std::string_view filename, const spec::Position& pos) {
  std::string file = filename.empty() ? "spec" : std::string(filename);
  if (pos.line == 0) return file;
  return fmt::format("{}:{}:{}", file, pos.line, pos.column);
}

// Re-issues `error` as coming from the op at `pos` (as compute_step_ids does).
Error at_op(const Error& error, std::string_view filename, const spec::Position& pos, std::string_view op) {
  Error out(error.kind(), fmt::format("{}: {}: {}", location(filename, pos), op, error.message()));
  for (const std::string& line : error.context()) out.with_context(line);
  return out;
}

Error cancelled_error() {
  return Error(ErrorKind::kCancelled, "build cancelled");
}

// The user a run step runs as, looked up in the tree it starts from: beneath
// the rootfs (snapshot stores), or in the copy of /etc/passwd the docker
// store keeps beside the base result.
Result<StepUser> step_user(store::Store& store, const store::Workspace& ws, const std::string& base_id,
                           const spec::User& user) {
  if (ws.has_rootfs()) return resolve_step_user(ws.rootfs, user);
  KILN_ASSIGN_OR_RETURN(auto base_dir, store.result(base_id));
  std::optional<std::string> passwd;
  if (base_dir && path_exists(*base_dir + "/passwd")) {
    KILN_ASSIGN_OR_RETURN(std::string text, read_file(*base_dir + "/passwd", 1u << 20));
    passwd = std::move(text);
  }
  return resolve_step_user_in(passwd, user);
}

// Who owns a copy's files: the stage's user, a name resolved in the tree
// being copied into (as docker's COPY --chown=NAME).
Result<spec::UnixUser> copy_owner(store::Store& store, const store::Workspace& ws, const std::string& base_id,
                                  const spec::User& user) {
  KILN_ASSIGN_OR_RETURN(StepUser resolved, step_user(store, ws, base_id, user));
  return spec::UnixUser{static_cast<int>(resolved.uid), static_cast<int>(resolved.gid)};
}

}  // namespace

// One step to make: its id, base and how to fill its directory.
struct Builder::Step {
  using Fill = StepFill;
  std::string id;
  std::optional<std::string> base;
  bool from_image = false;  // a (from …) step
  std::string heading;
  std::vector<std::string> uses;    // other results the step reads (stages it copies from)
  std::optional<Error> cannot_run;  // set when running it is impossible (a missing secret)
  Fill fill;
  // (from …) steps: asked on the step's thread before anything is built
  // (reuse_unpacked); a base it names is pinned until the step ends.
  std::function<Result<std::optional<ImageReuse>>(BuildLog& log, CancelToken& cancel)> reuse;
};

// A step being built, shared by everyone who asked for it.
struct Builder::InFlight {
  std::shared_ptr<Step> step;
  std::shared_ptr<BuildLog> log = std::make_shared<BuildLog>();
  CancelToken cancel;  // fired when the last requester leaves
  int requesters = 0;  // guarded by Builder::mu_
  bool done = false;   // guarded by Builder::mu_
  Status status;       // valid once done
};

// One build() call: its request, the results it protects from prune, and the
// context it opened itself.
class Builder::RequestScope {
 public:
  RequestScope(Builder& builder, const BuildRequest& request) : builder_(builder), request_(request) {}
  ~RequestScope() {
    for (const std::string& id : pins_) builder_.unpin(id);
  }

  const BuildRequest& request() const { return request_; }
  bool cancelled() const { return request_.cancel != nullptr && request_.cancel->cancelled(); }
  void note(std::string_view line) const {
    if (request_.log) request_.log(LogTag::kNote, std::string(line) + "\n");
  }
  void pin(const std::string& id) {
    builder_.pin(id);
    pins_.push_back(id);
  }

  Result<ids::ContextSource*> context() {
    if (request_.context != nullptr) return request_.context;
    if (own_context_) return own_context_.get();
    if (request_.context_dir.empty())
      return make_error(ErrorKind::kFailedPrecondition,
                        "this spec copies from the build context; pass a context directory");
    KILN_ASSIGN_OR_RETURN(ids::DirectoryContext ctx, ids::DirectoryContext::open(request_.context_dir));
    own_context_ = std::make_unique<ids::DirectoryContext>(std::move(ctx));
    return own_context_.get();
  }

  const std::string& context_dir() {
    if (request_.context_dir.empty() && own_context_) return own_context_->root();
    return request_.context_dir;
  }

 private:
  Builder& builder_;
  const BuildRequest& request_;
  std::vector<std::string> pins_;
  std::unique_ptr<ids::DirectoryContext> own_context_;
};

StepFiles& Builder::step_files() {
  return options_.step_files ? *options_.step_files : rootfs_step_files();
}

Builder::Builder(store::Store& store, sandbox::Sandbox& sandbox, fetcher::Fetcher& fetcher,
                 BuilderOptions options)
    : store_(store),
      sandbox_(sandbox),
      fetcher_(fetcher),
      options_(std::move(options)),
      unpacked_(options_.unpacked_images_dir) {}

Builder::~Builder() {
  {
    // Nobody can follow these steps any more.
    std::lock_guard lock(mu_);
    for (auto& [id, op] : in_flight_) op->cancel.cancel();
  }
  if (auto s = finish(); !s) spdlog::warn("finishing the builder: {}", s.error().to_string());
}

void Builder::pin(const std::string& id) {
  std::lock_guard lock(pins_mu_);
  pinned_.insert(id);
}

void Builder::unpin(const std::string& id) {
  std::lock_guard lock(pins_mu_);
  if (auto it = pinned_.find(id); it != pinned_.end()) pinned_.erase(it);
}

std::vector<std::string> Builder::ids_in_use() const {
  std::lock_guard lock(pins_mu_);
  std::vector<std::string> out;
  for (const std::string& id : pinned_) {
    if (out.empty() || out.back() != id) out.push_back(id);
  }
  return out;
}

Result<std::string> Builder::build(const BuildRequest& request) {
  {
    std::lock_guard lock(mu_);
    if (finished_)
      return make_error(ErrorKind::kFailedPrecondition, "the builder has finished; start a new one");
  }
  RequestScope scope(*this, request);
  return build_stage(scope, request.spec, "", {});
}

Result<Env> Builder::image_env(const std::string& from_id) {
  KILN_ASSIGN_OR_RETURN(auto dir, store_.result(from_id));
  if (!dir) return make_error(ErrorKind::kNotFound, fmt::format("base image result {} disappeared", from_id));
  std::string path = *dir + "/image.json";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return Env{};  // an image without config
  return read_image_env(path);
}

std::string Builder::resolved_image(const std::string& from_id) {
  auto dir = store_.result(from_id);
  if (!dir || !*dir) return "";
  auto text = read_file(**dir + "/image.json");
  if (!text) return "";
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  auto text_of = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string resolved = text_of("resolved");
  return resolved.empty() ? text_of("manifest_digest") : resolved;
}

Result<std::string> Builder::build_stage(RequestScope& scope, const spec::Spec& stage,
                                         const std::string& stage_path,
                                         std::map<std::string, std::string> build_scope) {
  const BuildRequest& request = scope.request();
  // Child builds first; each sees the enclosing scope and its earlier siblings.
  for (const spec::ChildBuild& child : stage.child_builds) {
    std::string child_path = stage_path.empty() ? child.name : stage_path + "/" + child.name;
    KILN_ASSIGN_OR_RETURN(std::string child_id, build_stage(scope, child.spec, child_path, build_scope));
    build_scope[child.name] = std::move(child_id);
  }

  // (from IMAGE): the image is fetched under the id of the spec's text.
  auto from = std::make_shared<Step>();
  from->id = ids::step_id_of(ids::encode_from_step(stage.from));
  from->heading = fmt::format("(from {})", spec::print_atom(stage.from));
  from->from_image = true;
  std::string reference = stage.from;
  if (auto alias = options_.image_aliases.find(stage.from); alias != options_.image_aliases.end())
    reference = alias->second;
  // What reuse's resolve() found, so that fill's fetch does not ask the registry again.
  auto from_resolved = std::make_shared<std::string>();
  from->reuse = [this, reference, pull = request.pull, id = from->id, resolved = from_resolved](
                    BuildLog& log, CancelToken& cancel) {
    return reuse_unpacked(id, reference, pull, log, cancel, *resolved);
  };
  from->fill = [this, reference, pull = request.pull, id = from->id, resolved = from_resolved](
                   const store::Workspace& ws, BuildLog& log, CancelToken& cancel) -> Status {
    if (ws.has_rootfs() && ::mkdir(ws.rootfs.c_str(), 0755) != 0 && errno != EEXIST)
      return errno_error("cannot create " + ws.rootfs);
    log.note(fmt::format("fetching {}", reference));
    // A layer's line is part of the step's log; byte counts are shown live only,
    // never replayed with a cached step.
    auto config = fetcher_.fetch_into(
        [&log](fetcher::ProgressKind kind, std::string_view line) {
          if (kind == fetcher::ProgressKind::kLayer) {
            log.note(line);
          } else {
            log.progress(line);
          }
        },
        ws, reference, {.cancel = &cancel, .pull = pull, .resolved = *resolved});
    if (!config) return std::unexpected(config.error());
    if (cancel.cancelled()) return std::unexpected(cancelled_error());
    unpacked_.record(config->manifest_digest, id);
    return write_file(ws.dir + "/image.json", image_config_json(reference, *config));
  };
  if (auto s = ensure(scope, from); !s) {
    if (s.error().kind() == ErrorKind::kCancelled) return std::unexpected(s.error());
    return std::unexpected(at_op(s.error(), request.spec_name, stage.from_pos, "from"));
  }
  std::string parent = from->id;

  ids::StageContext context;
  for (const spec::Op& op : stage.ops) {
    const auto* run = std::get_if<spec::Run>(&op.kind);
    const auto* copy = std::get_if<spec::Copy>(&op.kind);
    if (run == nullptr && copy == nullptr) {
      context.apply(op.kind);
      continue;
    }
    auto step = std::make_shared<Step>();
    step->base = parent;
    step->heading = fmt::format("{}: {}", context.workdir, spec::print_op(op));
    if (run != nullptr) {
      step->id = ids::step_id_of(ids::encode_run_step(parent, context, *run));
      std::vector<sandbox::SecretMount> secrets;
      for (const spec::Secret& secret : run->secrets) {
        auto value = request.secrets.find(secret.id);
        if (value == request.secrets.end()) {
          step->cannot_run =
              Error(ErrorKind::kInvalidArgument,
                    fmt::format("secret {} not provided; pass --secret {}:FILE", secret.id, secret.id));
          break;
        }
        secrets.push_back({secret.target, value->second});
      }
      sandbox::RunSpec spec;
      spec.argv = context.shell;
      spec.argv.push_back(run->shell);
      spec.cwd = context.workdir;
      spec.network = run->network;
      spec.secrets = std::move(secrets);
      spec.limits = options_.limits;
      spec.timeout = options_.step_timeout;
      std::vector<spec::Cache> caches = run->caches;
      // The image's env and the user's passwd entry are read only when the
      // step runs, so a fully cached build never opens the base image's result.
      step->fill = [this, spec = std::move(spec), caches, user = context.user, from_id = from->id,
                    base_id = parent, spec_env = context.env](const store::Workspace& ws, BuildLog& log,
                                                              CancelToken& cancel) mutable -> Status {
        KILN_ASSIGN_OR_RETURN(Env image, image_env(from_id));
        KILN_ASSIGN_OR_RETURN(StepUser resolved, step_user(store_, ws, base_id, user));
        spec.uid = resolved.uid;
        spec.gid = resolved.gid;
        spec.env = step_environment(image, spec_env, resolved, spec.hostname);
        const spec::UnixUser unix_user{static_cast<int>(resolved.uid), static_cast<int>(resolved.gid)};
        std::vector<store::CacheLease> leases;
        for (const spec::Cache& cache : caches) {
          auto lease = store_.cache(unix_user, cache.id);
          if (!lease)
            return std::unexpected(std::move(lease.error()).with_context("mounting cache " + cache.id));
          spec.mounts.push_back({lease->path(), cache.target, false});
          leases.push_back(std::move(*lease));
        }
        Status ran = sandbox_.run_in(
            spec, ws, [&log](std::string_view chunk) { log.output(chunk); }, cancel);
        // Caches go back whatever happened; a failed run's changes to them are kept, as OBuilder does.
        for (store::CacheLease& lease : leases) {
          if (auto s = lease.release(); !s) {
            spdlog::warn("releasing a cache: {}", s.error().to_string());
            if (ran) ran = s;
          }
        }
        return ran;
      };
    } else {
      std::string dst = ids::resolve_destination(context.workdir, copy->dst);
      spec::User owner = context.user;
      auto copy_error = [&](const Error& e) {
        return std::unexpected(at_op(e, request.spec_name, op.pos, "copy"));
      };
      if (copy->src.empty())
        return copy_error(
            Error(ErrorKind::kInvalidArgument, "no source paths; name at least one in (src ...)"));
      if (copy->src.size() > 1 && !copy->dst.ends_with('/'))
        return copy_error(
            Error(ErrorKind::kInvalidArgument,
                  fmt::format("copying {} sources needs a destination directory: end (dst {:?}) with '/'",
                              copy->src.size(), copy->dst)));
      std::vector<ids::CopySource> sources;
      if (copy->from_build) {
        auto it = build_scope.find(*copy->from_build);
        if (it == build_scope.end())
          return copy_error(Error(ErrorKind::kInvalidArgument,
                                  fmt::format("no build named {:?} is in scope; define (build {} ...) before "
                                              "this stage or earlier in it",
                                              *copy->from_build, *copy->from_build)));
        std::string child_id = it->second;
        for (const std::string& src : copy->src) {
          auto normalised = ids::normalize_source_path(src);
          if (!normalised) return copy_error(normalised.error());
          sources.push_back({*normalised, ""});
        }
        step->id = ids::step_id_of(ids::encode_copy_step(parent, context, *copy, child_id, sources));
        step->uses.push_back(child_id);
        std::vector<std::string> srcs = copy->src;
        std::vector<std::string> exclude = copy->exclude;
        // The stage's tree is read when the step runs, so a cached copy costs no walk.
        step->fill = [this, parent, child_id, srcs, exclude, dst, owner](
                         const store::Workspace& ws, BuildLog&, CancelToken& cancel) -> Status {
          KILN_ASSIGN_OR_RETURN(auto child_dir, store_.result(child_id));
          if (!child_dir)
            return make_error(ErrorKind::kNotFound,
                              fmt::format("build stage result {} disappeared", child_id));
          // The stage's files: its rootfs, or (a store without one: docker) a host copy
          // of the sources that step_files() reads out of the stage's result.
          std::string child_rootfs = *child_dir + "/rootfs";
          std::string read_copy;
          if (!ws.has_rootfs()) {
            std::vector<std::string> normalised;
            for (const std::string& src : srcs) {
              KILN_ASSIGN_OR_RETURN(std::string path, ids::normalize_source_path(src));
              normalised.push_back(std::move(path));
            }
            KILN_ASSIGN_OR_RETURN(read_copy, step_files().open_tree(ws, child_id, normalised, cancel));
            child_rootfs = read_copy;
          }
          struct RemoveReadCopy {
            const std::string& path;
            ~RemoveReadCopy() {
              if (!path.empty()) (void)remove_tree(path);
            }
          } remove_read_copy{read_copy};
          KILN_ASSIGN_OR_RETURN(ids::DirectoryContext tree, ids::DirectoryContext::open(child_rootfs, 2));
          std::vector<CopySourceTree> trees;
          for (const std::string& src : srcs) {
            auto manifest = tree.manifest(src, exclude);
            if (!manifest)
              return std::unexpected(
                  std::move(manifest.error()).with_context("reading the build stage's files"));
            trees.push_back({child_rootfs, std::move(*manifest)});
          }
          KILN_ASSIGN_OR_RETURN(spec::UnixUser unix_owner, copy_owner(store_, ws, parent, owner));
          return step_files().copy_in(ws, trees, dst, unix_owner, cancel);
        };
      } else {
        auto ctx = scope.context();
        if (!ctx) return copy_error(ctx.error());
        std::vector<CopySourceTree> trees;
        for (const std::string& src : copy->src) {
          auto manifest = (*ctx)->manifest(src, copy->exclude);
          if (!manifest) return copy_error(manifest.error());
          sources.push_back({manifest->source, manifest->digest()});
          trees.push_back({scope.context_dir(), std::move(*manifest)});
        }
        if (trees.front().root.empty())
          return copy_error(Error(ErrorKind::kFailedPrecondition,
                                  "the build request names no context directory to read the files from"));
        step->id = ids::step_id_of(ids::encode_copy_step(parent, context, *copy, "", sources));
        step->fill = [this, parent, trees = std::move(trees), dst, owner](
                         const store::Workspace& ws, BuildLog&, CancelToken& cancel) -> Status {
          KILN_ASSIGN_OR_RETURN(spec::UnixUser unix_owner, copy_owner(store_, ws, parent, owner));
          return step_files().copy_in(ws, trees, dst, unix_owner, cancel);
        };
      }
    }
    if (auto s = ensure(scope, step); !s) {
      Error e = s.error();
      if (e.kind() == ErrorKind::kCancelled) return std::unexpected(std::move(e));
      return std::unexpected(at_op(e, request.spec_name, op.pos, spec::op_name(op.kind)));
    }
    parent = step->id;
  }
  return parent;
}

Status Builder::ensure(RequestScope& scope, std::shared_ptr<Step> step) {
  // Pinned before it is looked up, so that prune cannot remove it in between.
  scope.pin(step->id);
  for (const std::string& used : step->uses) scope.pin(used);
  const LogSink& sink = scope.request().log;
  const auto started = std::chrono::steady_clock::now();
  auto report_step = [&](bool cached) {
    if (!scope.request().on_step) return;
    std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started;
    StepEvent event{step->id, step->heading, cached, elapsed.count(), {}};
    if (step->from_image) event.image = resolved_image(step->id);
    scope.request().on_step(event);
  };
  for (;;) {
    if (scope.cancelled()) return std::unexpected(cancelled_error());
    std::unique_lock lock(mu_);
    if (finished_) return make_error(ErrorKind::kFailedPrecondition, "the builder has finished");
    if (auto it = in_flight_.find(step->id); it != in_flight_.end()) {
      std::shared_ptr<InFlight> op = it->second;
      if (op->cancel.cancelled()) {
        // Its last requester left: wait for it to end, then look again.
        changed_.wait_for(lock, std::chrono::milliseconds(50));
        continue;
      }
      ++op->requesters;
      lock.unlock();
      KILN_RETURN_IF_ERROR(follow(scope, op, op->log->subscribe(scope.request().log)));
      // Not built by this request: reported as cached, so that the seconds
      // (a wait) are not taken for the cost of building the step.
      report_step(true);
      return {};
    }
    // Looked up with mu_ held: a step in flight leaves the table only once
    // its result is recorded, so there is no gap in which it is in neither.
    auto info = store_.info(step->id);
    if (info) {
      lock.unlock();
      if (auto replayed = replay_log_file(store_.log_file(step->id), sink); !replayed) {
        if (sink) sink(LogTag::kHeading, step->heading + "\n");
      }
      if (auto s = store_.record_cache_hit(step->id); !s)
        spdlog::warn("recording a cache hit: {}", s.error().to_string());
      scope.note(fmt::format("---> using {} from cache", step->id));
      report_step(true);
      return {};
    }
    if (info.error().kind() != ErrorKind::kNotFound) return std::unexpected(info.error());
    if (step->cannot_run) return std::unexpected(*step->cannot_run);

    auto op = std::make_shared<InFlight>();
    op->step = step;
    op->requesters = 1;
    op->log->heading(step->heading);
    in_flight_[step->id] = op;
    ++running_threads_;
    // The step thread protects what it reads for as long as it runs, even
    // if every requester has gone.
    if (step->base) pin(*step->base);
    for (const std::string& used : step->uses) pin(used);
    lock.unlock();
    // Subscribed before the step starts, so that the requester that starts it
    // sees all of it, live-only progress lines included.
    std::uint64_t handle = op->log->subscribe(scope.request().log);
    std::thread([this, op] { run_in_flight(op); }).detach();
    KILN_RETURN_IF_ERROR(follow(scope, op, handle));
    report_step(false);
    return {};
  }
}

Status Builder::follow(RequestScope& scope, const std::shared_ptr<InFlight>& op, std::uint64_t handle) {
  std::unique_lock lock(mu_);
  while (!op->done) {
    if (scope.cancelled()) {
      if (--op->requesters == 0) op->cancel.cancel();
      lock.unlock();
      op->log->unsubscribe(handle);
      return std::unexpected(cancelled_error());
    }
    changed_.wait_for(lock, std::chrono::milliseconds(50));
  }
  Status status = op->status;
  lock.unlock();
  op->log->unsubscribe(handle);
  if (!status) return status;
  scope.note(fmt::format("---> saved as {}", op->step->id));
  return {};
}

void Builder::run_in_flight(std::shared_ptr<InFlight> op) {
  const Step& step = *op->step;
  std::optional<std::string> base = step.base;
  const Step::Fill* fill = &step.fill;
  Result<std::optional<ImageReuse>> reuse = std::optional<ImageReuse>();
  if (step.reuse) reuse = step.reuse(*op->log, op->cancel);
  if (reuse && *reuse) {
    base = (*reuse)->base;
    fill = &(*reuse)->fill;
  }
  Status status = !reuse ? Status(std::unexpected(reuse.error()))
                         : store_.build(base, step.id, [&](const store::Workspace& ws) -> Status {
                             KILN_RETURN_IF_ERROR(op->log->attach_file(ws.dir + "/log"));
                             Status filled = (*fill)(ws, *op->log, op->cancel);
                             // Closed before the store moves the directory into place.
                             Status closed = op->log->detach_file();
                             if (!filled) return filled;
                             return closed;
                           });
  if (status) {
    if (auto s = store_.record_cache_miss(); !s)
      spdlog::warn("recording a cache miss: {}", s.error().to_string());
  } else if (status.error().kind() != ErrorKind::kCancelled) {
    // What failed, and the end of the log: usually the compiler's last words.
    const Error& e = status.error();
    std::string message = e.message();
    std::string tail = op->log->tail(options_.error_log_lines);
    if (!tail.empty()) message += fmt::format("\nlast lines of the step's log:\n{}", tail);
    Error out(e.kind(), std::move(message));
    for (const std::string& line : e.context()) out.with_context(line);
    status = std::unexpected(std::move(out));
  }
  if (step.base) unpin(*step.base);
  if (reuse && *reuse) unpin((*reuse)->base);
  for (const std::string& used : step.uses) unpin(used);
  std::lock_guard lock(mu_);
  op->status = std::move(status);
  op->done = true;
  if (auto it = in_flight_.find(step.id); it != in_flight_.end() && it->second == op) in_flight_.erase(it);
  --running_threads_;
  changed_.notify_all();
}

Status Builder::healthcheck(std::chrono::milliseconds timeout) {
  spec::Spec base;
  base.from = options_.healthcheck_image;
  // The base first, without the deadline: fetching an image may take long.
  BuildRequest base_request;
  base_request.spec = base;
  base_request.spec_name = "healthcheck";
  if (auto r = build(base_request); !r)
    return std::unexpected(std::move(r.error()).with_context("healthcheck: preparing the base image"));
  spec::Spec check = base;
  spec::Run echo;
  echo.shell = "echo healthcheck";
  check.ops.push_back(spec::Op{echo, {}});
  CancelToken cancel;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool timed_out = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, timeout, [&] { return done; })) {
      timed_out = true;
      cancel.cancel();
    }
  });
  std::string output;
  BuildRequest request;
  request.spec = check;
  request.spec_name = "healthcheck";
  request.log = [&output](LogTag tag, std::string_view text) {
    if (tag == LogTag::kOutput) output += text;
  };
  request.cancel = &cancel;
  auto id = build(request);
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
  if (!id) {
    if (timed_out)
      return make_error(
          ErrorKind::kTimeout,
          fmt::format("healthcheck: the check step did not finish within {}; is the sandbox working?",
                      human_duration(timeout)));
    return std::unexpected(std::move(id.error()).with_context("healthcheck"));
  }
  if (output.find("healthcheck") == std::string::npos)
    return make_error(ErrorKind::kFailedPrecondition,
                      "healthcheck: the check step succeeded but printed nothing; is the sandbox's output "
                      "captured?");
  // Removed so that the next healthcheck runs the sandbox again.
  return delete_result(*id);
}

Status Builder::finish() {
  std::unique_lock lock(mu_);
  finished_ = true;
  changed_.wait(lock, [&] { return running_threads_ == 0; });
  lock.unlock();
  return store_.complete_deletes();
}

}  // namespace kiln::builder
