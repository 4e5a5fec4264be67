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

#include "cli/commands.h"
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
