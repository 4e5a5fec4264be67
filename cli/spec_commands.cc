// `kiln spec check|fmt|ids` and `kiln dockerfile`: the spec tools. They work
// offline on files; nothing here talks to a scheduler or a store.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/ids/manifest.h"
#include "common/ids/step_id.h"
#include "common/spec/spec.h"

namespace kiln::cli {
namespace {

void report(const Error& e) {
  std::cerr << "kiln: " << e.to_string() << "\n";
}

Status write_file_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".kiln-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return errno_error("cannot create " + tmp);
    out << content;
    if (!out.flush()) return errno_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("cannot replace " + path);
  return {};
}

struct CheckOptions {
  std::vector<std::string> files;
};

void run_check(const CheckOptions& o) {
  int failed = 0;
  for (const auto& file : o.files) {
    auto spec = spec::load_spec_file(file);
    if (!spec) {
      report(spec.error());
      ++failed;
    }
  }
  if (failed > 0) {
    std::cerr << "kiln: " << failed << " of " << o.files.size() << " specs have errors\n";
    set_exit(kExitFailed);
    return;
  }
  std::cout << o.files.size() << (o.files.size() == 1 ? " spec" : " specs") << " ok\n";
}

struct FmtOptions {
  std::string file;
  bool check = false;
  bool write = false;
};

void run_fmt(const FmtOptions& o) {
  std::ifstream in(o.file, std::ios::binary);
  if (!in) {
    report(errno_error("cannot read " + o.file).error());
    set_exit(kExitFailed);
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto spec = spec::parse_spec(text.str(), o.file);
  if (!spec) {
    report(spec.error());
    set_exit(kExitFailed);
    return;
  }
  std::string canonical = spec::print_spec(*spec);
  if (o.check) {
    if (canonical != text.str()) {
      std::cerr << "kiln: " << o.file << " is not in canonical form; run `kiln spec fmt --write " << o.file
                << "`\n";
      set_exit(kExitFailed);
    }
    return;
  }
  if (o.write) {
    if (canonical == text.str()) return;
    if (auto s = write_file_atomically(o.file, canonical); !s) {
      report(s.error());
      set_exit(kExitFailed);
    }
    return;
  }
  std::cout << canonical;
}

struct DockerfileOptions {
  std::string file;
  bool buildkit = false;
};

void run_dockerfile(const DockerfileOptions& o) {
  auto spec = spec::load_spec_file(o.file);
  if (!spec) {
    report(spec.error());
    set_exit(kExitFailed);
    return;
  }
  std::cout << spec::to_dockerfile(*spec, o.buildkit);
}

struct IdsOptions {
  std::string file;
  std::string context;
  bool json = false;
};

// A context argument is a directory, or a file written by `kiln spec manifest`.
Result<std::unique_ptr<ids::ContextSource>> open_context(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error("cannot open context " + path);
  if (S_ISDIR(st.st_mode)) {
    KILN_ASSIGN_OR_RETURN(auto dir, ids::DirectoryContext::open(path));
    return std::make_unique<ids::DirectoryContext>(std::move(dir));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  auto manifest = ids::ContextManifest::parse(bytes.str());
  if (!manifest)
    return std::unexpected(
        std::move(manifest.error()).with_context(path + " is neither a directory nor a context manifest"));
  return std::make_unique<ids::ContextManifest>(std::move(*manifest));
}

void run_ids(const IdsOptions& o) {
  auto spec = spec::load_spec_file(o.file);
  if (!spec) {
    report(spec.error());
    set_exit(kExitFailed);
    return;
  }
  std::unique_ptr<ids::ContextSource> context;
  if (!o.context.empty()) {
    auto opened = open_context(o.context);
    if (!opened) {
      report(opened.error());
      set_exit(kExitFailed);
      return;
    }
    context = std::move(*opened);
  }
  auto steps = ids::compute_step_ids(*spec, context.get(), o.file);
  if (!steps) {
    report(steps.error());
    set_exit(kExitFailed);
    return;
  }
  if (o.json) {
    auto out = nlohmann::json::array();
    for (const auto& step : *steps) {
      out.push_back(
          {{"id", step.id},
           {"parent", step.parent_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(step.parent_id)},
           {"kind", ids::step_kind_name(step.kind)},
           {"stage", step.stage},
           {"op", step.description},
           {"line", step.pos.line},
           {"column", step.pos.column}});
    }
    std::cout << out.dump(2) << "\n";
    return;
  }
  for (const auto& step : *steps) {
    std::cout << step.id << "  ";
    if (!step.stage.empty()) std::cout << "[" << step.stage << "] ";
    std::cout << step.description << "\n";
  }
}

struct ManifestOptions {
  std::string dir;
  std::string output;
};

void run_manifest(const ManifestOptions& o) {
  auto manifest = ids::ContextManifest::from_directory(o.dir);
  if (!manifest) {
    report(manifest.error());
    set_exit(kExitFailed);
    return;
  }
  std::string bytes = manifest->serialize();
  if (o.output.empty() || o.output == "-") {
    std::cout << bytes;
    return;
  }
  if (auto s = write_file_atomically(o.output, bytes); !s) {
    report(s.error());
    set_exit(kExitFailed);
    return;
  }
  std::cerr << "kiln: wrote the manifest of " << manifest->entries().size() << " entries to " << o.output
            << "\n";
}

}  // namespace

void add_spec_commands(CLI::App& app) {
  auto* spec_cmd = app.add_subcommand("spec", "Check, format and inspect build specs");
  spec_cmd->require_subcommand(1);

  auto check = std::make_shared<CheckOptions>();
  auto* check_cmd = spec_cmd->add_subcommand(
      "check", "Parse and validate specs; print each error with FILE:LINE:COL (exit 1 if any is invalid)");
  check_cmd->add_option("files", check->files, "Spec files")->required()->check(CLI::ExistingFile);
  check_cmd->callback([check] { run_check(*check); });

  auto fmt = std::make_shared<FmtOptions>();
  auto* fmt_cmd = spec_cmd->add_subcommand("fmt", "Print a spec in canonical form");
  fmt_cmd->add_option("file", fmt->file, "Spec file")->required()->check(CLI::ExistingFile);
  auto* check_flag =
      fmt_cmd->add_flag("--check", fmt->check, "Print nothing; exit 1 if FILE is not canonical");
  fmt_cmd->add_flag("-w,--write", fmt->write, "Rewrite FILE in canonical form")->excludes(check_flag);
  fmt_cmd->callback([fmt] { run_fmt(*fmt); });

  auto ids_opts = std::make_shared<IdsOptions>();
  auto* ids_cmd = spec_cmd->add_subcommand(
      "ids",
      "Print the step id of every snapshot the spec builds, one line each: the id, the stage in brackets for "
      "child builds, then the op. Ids depend only on the spec and the context (see docs/step-ids.md)");
  ids_cmd->add_option("-f,--file", ids_opts->file, "Spec file")->required()->check(CLI::ExistingFile);
  ids_cmd
      ->add_option(
          "context", ids_opts->context,
          "Build context: a directory, or a manifest from `kiln spec manifest` (needed when the spec "
          "copies from the context)")
      ->check(CLI::ExistingPath);
  ids_cmd->add_flag("--json", ids_opts->json,
                    "Print a JSON array of {id, parent, kind, stage, op, line, column} instead");
  ids_cmd->callback([ids_opts] { run_ids(*ids_opts); });

  auto manifest_opts = std::make_shared<ManifestOptions>();
  auto* manifest_cmd = spec_cmd->add_subcommand(
      "manifest",
      "Write the manifest of a whole context directory (what `spec ids` needs instead of the files)");
  manifest_cmd->add_option("dir", manifest_opts->dir, "Context directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  manifest_cmd->add_option("-o,--output", manifest_opts->output, "Output file (default: standard output)");
  manifest_cmd->callback([manifest_opts] { run_manifest(*manifest_opts); });

  auto dockerfile = std::make_shared<DockerfileOptions>();
  auto* dockerfile_cmd = app.add_subcommand("dockerfile", "Print the Dockerfile equivalent of a spec");
  dockerfile_cmd->add_option("-f,--file", dockerfile->file, "Spec file")
      ->required()
      ->check(CLI::ExistingFile);
  dockerfile_cmd->add_flag("--buildkit", dockerfile->buildkit,
                           "Emit cache and secret mounts as RUN --mount (needs BuildKit)");
  dockerfile_cmd->callback([dockerfile] { run_dockerfile(*dockerfile); });
}

}  // namespace kiln::cli
