#include "common/ids/step_id.h"

#include <algorithm>
#include <type_traits>
#include <variant>

#include <fmt/format.h>

#include "common/path.h"
#include "common/sha256.h"
#include "common/spec/sexp.h"

namespace kiln::ids {

namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// Drops empty and "." components of an absolute container path; "/" for the root.
std::string normalise_container_path(std::string_view p) {
  std::string out;
  for (std::string_view part : path::components(p)) {
    out += '/';
    out += part;
  }
  return out.empty() ? "/" : out;
}

void encode_user(CsexpWriter& out, const spec::User& user) {
  out.open().atom("user");
  std::visit(Overloaded{
                 [&](const spec::UnixUser& u) {
                   out.open().atom("uid").atom(u.uid).close();
                   out.open().atom("gid").atom(u.gid).close();
                 },
                 [&](const spec::WindowsUser& u) { out.open().atom("name").atom(u.name).close(); },
             },
             user);
  out.close();
}

void begin_step(CsexpWriter& out, std::string_view kind) {
  out.open().atom(kStepTag).atom(kind);
}

std::string location(std::string_view filename, const spec::Position& pos) {
  std::string file = filename.empty() ? "spec" : std::string(filename);
  if (pos.line == 0) return file;
  return fmt::format("{}:{}:{}", file, pos.line, pos.column);
}

// Re-issues `error` as coming from the op at `pos`, keeping its kind and context.
Error at_op(Error error, std::string_view filename, const spec::Position& pos, std::string_view op) {
  Error out(error.kind(), fmt::format("{}: {}: {}", location(filename, pos), op, error.message()));
  for (const std::string& line : error.context()) out.with_context(line);
  return out;
}

std::string describe_from(std::string_view image) {
  return fmt::format("(from {})", spec::print_atom(image));
}

class StepComputation {
 public:
  StepComputation(ContextSource* context, std::string_view filename)
      : context_(context), filename_(filename) {}

  // Adds the steps of `stage` (its child builds first) and returns its final id.
  Result<std::string> add_stage(const spec::Spec& stage, const std::string& stage_path,
                                std::map<std::string, std::string> scope) {
    for (const spec::ChildBuild& child : stage.child_builds) {
      std::string child_path = stage_path.empty() ? child.name : stage_path + "/" + child.name;
      // A child sees the enclosing scope plus its earlier siblings, as in the spec's validation.
      KILN_ASSIGN_OR_RETURN(std::string child_id, add_stage(child.spec, child_path, scope));
      scope[child.name] = std::move(child_id);
    }
    std::string parent = push(StepKind::kFrom, "", stage_path, describe_from(stage.from), stage.from_pos,
                              encode_from_step(stage.from));
    StageContext context;
    for (const spec::Op& op : stage.ops) {
      if (const auto* run = std::get_if<spec::Run>(&op.kind)) {
        parent = push(StepKind::kRun, parent, stage_path, spec::print_op(op), op.pos,
                      encode_run_step(parent, context, *run));
      } else if (const auto* copy = std::get_if<spec::Copy>(&op.kind)) {
        Result<std::string> encoding = encode_copy(parent, context, *copy, scope);
        if (!encoding) return std::unexpected(at_op(std::move(encoding).error(), filename_, op.pos, "copy"));
        parent = push(StepKind::kCopy, parent, stage_path, spec::print_op(op), op.pos, *encoding);
      } else {
        context.apply(op.kind);
      }
    }
    return parent;
  }

  std::vector<Step> take() && { return std::move(steps_); }

 private:
  std::string push(StepKind kind, std::string parent, const std::string& stage, std::string description,
                   const spec::Position& pos, std::string encoding) {
    Step step{step_id_of(encoding), std::move(parent), kind, stage, std::move(description), pos,
              std::move(encoding)};
    steps_.push_back(std::move(step));
    return steps_.back().id;
  }

  Result<std::string> encode_copy(const std::string& parent, const StageContext& context,
                                  const spec::Copy& copy, const std::map<std::string, std::string>& scope) {
    if (copy.src.empty())
      return make_error(ErrorKind::kInvalidArgument, "no source paths; name at least one in (src ...)");
    if (copy.src.size() > 1 && !copy.dst.ends_with('/'))
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("copying {} sources needs a destination directory: end (dst {:?}) with '/'",
                      copy.src.size(), copy.dst));
    std::vector<CopySource> sources;
    std::string from_build_id;
    if (copy.from_build) {
      auto it = scope.find(*copy.from_build);
      if (it == scope.end())
        return make_error(ErrorKind::kInvalidArgument,
                          fmt::format("no build named {:?} is in scope; define (build {} ...) before this "
                                      "stage or earlier in it",
                                      *copy.from_build, *copy.from_build));
      from_build_id = it->second;
      // The stage's final id already names its whole tree: the paths suffice.
      for (const std::string& src : copy.src) {
        KILN_ASSIGN_OR_RETURN(std::string normalised, normalize_source_path(src));
        sources.push_back({std::move(normalised), ""});
      }
    } else {
      if (context_ == nullptr)
        return make_error(ErrorKind::kFailedPrecondition,
                          "this spec copies from the build context; pass a context directory");
      for (const std::string& src : copy.src) {
        KILN_ASSIGN_OR_RETURN(Manifest manifest, context_->manifest(src, copy.exclude));
        sources.push_back({manifest.source, manifest.digest()});
      }
    }
    return encode_copy_step(parent, context, copy, from_build_id, sources);
  }

  ContextSource* context_;
  std::string_view filename_;
  std::vector<Step> steps_;
};

}  // namespace

std::string_view step_kind_name(StepKind kind) {
  switch (kind) {
    case StepKind::kFrom: return "from";
    case StepKind::kRun: return "run";
    case StepKind::kCopy: return "copy";
  }
  return "unknown";
}

void StageContext::apply(const spec::OpKind& op) {
  std::visit(
      Overloaded{
          [&](const spec::Workdir& w) { workdir = resolve_workdir(workdir, w.path); },
          [&](const spec::SetUser& u) { user = u.user; }, [&](const spec::Env& e) { env[e.name] = e.value; },
          [&](const spec::Shell& s) { shell = s.args; },
          [](const auto&) {},  // comment, run, copy: no effect on the context
      },
      op);
}

std::string resolve_workdir(std::string_view current, std::string_view p) {
  if (p.starts_with('/')) return normalise_container_path(p);
  return normalise_container_path(path::join(current, p));
}

std::string resolve_destination(std::string_view workdir, std::string_view dst) {
  std::string out = resolve_workdir(workdir, dst);
  if (dst.ends_with('/') && out != "/") out += '/';
  return out;
}

std::string encode_from_step(std::string_view image) {
  CsexpWriter out;
  begin_step(out, "from");
  out.atom(image).close();
  return out.take();
}

std::string encode_run_step(std::string_view parent, const StageContext& context, const spec::Run& run) {
  CsexpWriter out;
  begin_step(out, "run");
  out.open().atom("parent").atom(parent).close();
  out.open().atom("workdir").atom(context.workdir).close();
  encode_user(out, context.user);
  out.open().atom("env");
  for (const auto& [name, value] : context.env) out.open().atom(name).atom(value).close();  // map: sorted
  out.close();
  out.open().atom("shell");
  for (const std::string& arg : context.shell) out.atom(arg);
  out.close();
  out.open().atom("network");
  for (const std::string& network : run.network) out.atom(network);
  out.close();
  // Where a secret is mounted changes what the command sees; its value must
  // not reach an id (ids are shared with every worker and shown in logs).
  out.open().atom("secrets");
  for (const spec::Secret& secret : run.secrets) out.open().atom(secret.id).atom(secret.target).close();
  out.close();
  out.open().atom("cmd").atom(run.shell).close();
  out.close();
  return out.take();
}

std::string encode_copy_step(std::string_view parent, const StageContext& context, const spec::Copy& copy,
                             std::string_view from_build_id, const std::vector<CopySource>& sources) {
  CsexpWriter out;
  begin_step(out, "copy");
  out.open().atom("parent").atom(parent).close();
  encode_user(out, context.user);  // copied files are owned by the current user
  out.open().atom("dst").atom(resolve_destination(context.workdir, copy.dst)).close();
  out.open().atom("from");
  if (from_build_id.empty()) {
    out.atom("context");
  } else {
    out.open().atom("build").atom(from_build_id).close();
  }
  out.close();
  // Exclude names form a set: order and repeats do not change the result.
  std::vector<std::string> exclude = copy.exclude;
  std::ranges::sort(exclude);
  exclude.erase(std::unique(exclude.begin(), exclude.end()), exclude.end());
  out.open().atom("exclude");
  for (const std::string& name : exclude) out.atom(name);
  out.close();
  out.open().atom("sources");
  for (const CopySource& source : sources) {
    if (from_build_id.empty()) {
      out.open().atom(source.path).atom(source.manifest_digest).close();
    } else {
      out.atom(source.path);
    }
  }
  out.close();
  out.close();
  return out.take();
}

std::string step_id_of(std::string_view encoding) {
  return sha256_hex(encoding);
}

Result<std::vector<Step>> compute_step_ids(const spec::Spec& spec, ContextSource* context,
                                           std::string_view filename) {
  StepComputation computation(context, filename);
  KILN_RETURN_IF_ERROR(computation.add_stage(spec, "", {}));
  return std::move(computation).take();
}

}  // namespace kiln::ids
