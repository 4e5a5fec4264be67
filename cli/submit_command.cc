// `kiln submit`: checks the spec, packs and uploads the context directory
// (or names a git commit), submits the job and prints its id as the last
// line of stdout; with --follow, follows it (cli/follow.h).
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/farm_client.h"
#include "cli/follow.h"
#include "cli/format.h"
#include "cli/job_outputs.h"
#include "cli/secret_flags.h"
#include "common/context/context_tar.h"
#include "common/fs.h"
#include "common/proto/client.h"
#include "common/proto/transport.h"
#include "common/spec/spec.h"
#include "worker/fetcher/internal/registry_auth.h"
#include "worker/fetcher/registry_reference.h"

namespace kiln::cli {
namespace {

// Context tars go up in chunks of this size (the scheduler's limit).
constexpr std::size_t kChunkBytes = 1 << 20;

// What one submit message may carry (the scheduler's limit on a message
// body, proto::kMaxBodyBytes); a spec or a secret file is refused at once
// when it alone is over its share, before anything is read whole or sent.
constexpr std::size_t kMaxSpecBytes = 4u << 20;

Result<std::string> read_file(const std::string& path, const std::string& what, std::size_t max_bytes) {
  auto text = kiln::read_file(path, max_bytes);
  if (!text && text.error().kind() == ErrorKind::kInvalidArgument) {
    return make_error(
        ErrorKind::kInvalidArgument,
        fmt::format("{} {} is over {}, the most a submit takes for it (a submit message carries at "
                    "most {}: spec, secrets and labels together)",
                    what, path, human_bytes(max_bytes), human_bytes(proto::kMaxBodyBytes)));
  }
  if (!text)
    return std::unexpected(std::move(text.error()).with_context(fmt::format("reading {} {}", what, path)));
  return text;
}

struct SubmitOptions {
  FarmFlags farm;
  std::string file;
  std::string context;
  std::string pool;
  bool urgent = false;
  std::vector<std::string> secrets;
  std::vector<std::string> labels;
  std::uint32_t timeout_seconds = 0;
  double estimate_seconds = 0;
  std::string pull;  // "" : the worker's --pull
  std::string git_url;
  std::string git_commit;
  bool follow = false;
  std::string push;  // --push REF
  std::vector<std::string> outputs;  // --output SRC:DESTDIR
};

// Uploads `tar_path` (described by `tar`) in chunks, resuming where the
// scheduler says, until it reports the upload complete.
Status upload_context(proto::Client& client, const std::string& tar_path, const context::ContextTar& tar) {
  std::ifstream in(tar_path, std::ios::binary);
  if (!in) return errno_error("cannot read the context tar " + tar_path);
  std::uint64_t offset = 0;
  std::string chunk;
  // Each round either advances or is told where to resume; a scheduler that
  // keeps answering without progress is a bug, not a reason to spin forever.
  for (int stalls = 0; stalls < 16;) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkBytes, tar.size - offset));
    chunk.resize(want);
    in.clear();
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(chunk.data(), static_cast<std::streamsize>(want)))
      return errno_error("cannot read the context tar " + tar_path);
    KILN_ASSIGN_OR_RETURN(
        auto ack, client.call<proto::ContextAck>(proto::PutContext{
                      .digest = tar.digest, .total_size = tar.size, .offset = offset, .data = chunk}));
    if (ack.complete) return {};
    if (ack.received > tar.size)
      return make_error(
          ErrorKind::kInternal,
          fmt::format("the scheduler acknowledged {} bytes of a {}-byte context", ack.received, tar.size));
    stalls = ack.received > offset ? 0 : stalls + 1;
    offset = ack.received;
  }
  return make_error(
      ErrorKind::kUnavailable,
      fmt::format("the scheduler does not accept the upload of context {}; try again", tar.digest));
}

Result<std::vector<proto::Secret>> read_secrets(const std::vector<std::string>& flags) {
  KILN_ASSIGN_OR_RETURN(auto pairs, read_secret_flags(flags));
  std::vector<proto::Secret> secrets;
  for (auto& [id, value] : pairs) secrets.push_back({.id = std::move(id), .value = std::move(value)});
  return secrets;
}

Status check_submit_flags(const SubmitOptions& o) {
  for (const std::string& label : o.labels) {
    std::size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("--label {:?}: expected KEY=VALUE, e.g. --label arch=x86_64", label));
  }
  if (!o.pull.empty() && o.pull != "always" && o.pull != "missing" && o.pull != "never")
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("--pull {:?}: expected always, missing or never", o.pull));
  if (o.git_url.empty() != o.git_commit.empty())
    return make_error(
        ErrorKind::kInvalidArgument,
        "--git URL and --commit SHA go together: the worker checks out that commit of that repository");
  if (!o.git_url.empty()) {
    if (!o.context.empty())
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("a context directory ({:?}) and --git are exclusive: the context is either "
                      "uploaded or checked out from git",
                      o.context));
    if (o.git_commit.size() != 40 || o.git_commit.find_first_not_of("0123456789abcdef") != std::string::npos)
      return make_error(ErrorKind::kInvalidArgument,
                        fmt::format("--commit {:?}: expected a full 40-character lowercase commit hash (`git "
                                    "rev-parse HEAD` prints it)",
                                    o.git_commit));
  }
  if (!o.push.empty()) {
    std::string_view name = o.push;
    if (name.starts_with("docker://")) name.remove_prefix(9);
    KILN_ASSIGN_OR_RETURN(fetcher::RegistryReference ref,
                          with_context(fetcher::parse_registry_reference(name), "--push"));
    if (!ref.digest.empty())
      return make_error(
          ErrorKind::kInvalidArgument,
          fmt::format("--push {}: name a tag, not a digest (the registry computes the digest)", o.push));
  }
  return {};
}

// The login for the push registry from the submitter's docker config, as the
// job's secret kiln-push-login (USER:PASSWORD): held in the scheduler's
// memory only, never stored or logged, like every secret.
Result<std::optional<proto::Secret>> push_login(const std::string& reference) {
  std::string_view name = reference;
  if (name.starts_with("docker://")) name.remove_prefix(9);
  KILN_ASSIGN_OR_RETURN(fetcher::RegistryReference ref, fetcher::parse_registry_reference(name));
  KILN_ASSIGN_OR_RETURN(auto credentials, fetcher::internal::docker_config_credentials(
                                              fetcher::internal::docker_config_path(""), ref.registry));
  if (!credentials) return std::optional<proto::Secret>();
  return std::optional<proto::Secret>(
      proto::Secret{.id = std::string(proto::kPushLoginSecret),
                    .value = credentials->username + ":" + credentials->password});
}

// Packs and uploads the context directory; returns its reference.
Result<proto::ContextRef> send_directory_context(proto::Client& client, const std::string& dir) {
  std::string tmp_dir = std::filesystem::temp_directory_path().string();
  std::string tar_path = fmt::format("{}/kiln-context-{}.tar", tmp_dir, ::getpid());
  KILN_ASSIGN_OR_RETURN(context::ContextTar tar, context::write_context_tar(dir, tar_path));
  for (const std::string& skipped : tar.skipped)
    std::cerr << fmt::format("kiln: left {} out of the context: not a file, directory or symlink\n", skipped);
  Status uploaded = upload_context(client, tar_path, tar);
  ::unlink(tar_path.c_str());
  KILN_RETURN_IF_ERROR(
      with_context(std::move(uploaded), fmt::format("uploading context {} ({})", dir, tar.digest)));
  std::cerr << fmt::format("kiln: context {}: {} entries, {}, {}\n", dir, tar.entries, human_bytes(tar.size),
                           tar.digest);
  return proto::ContextRef{.kind = proto::ContextRef::Kind::kTar, .digest = tar.digest, .size = tar.size};
}

void run_submit(const SubmitOptions& o) {
  if (auto s = check_submit_flags(o); !s) return fail(s.error(), kExitUsage);
  auto outputs = parse_output_flags(o.outputs);
  if (!outputs) return fail(outputs.error(), kExitUsage);
  auto secrets = read_secrets(o.secrets);
  if (!secrets) return fail(secrets.error(), kExitUsage);
  for (const proto::Secret& secret : *secrets)
    if (secret.id == proto::kPushLoginSecret)
      return fail(
          Error(ErrorKind::kInvalidArgument,
                fmt::format("--secret {}: the id is kiln's own (the login of --push); name it otherwise",
                            secret.id)),
          kExitUsage);
  if (!o.push.empty()) {
    auto login = push_login(o.push);
    if (!login) return fail(login.error().with_context("reading the login for --push"), kExitUsage);
    if (*login) secrets->push_back(std::move(**login));
  }
  auto text = read_file(o.file, "spec", kMaxSpecBytes);
  if (!text) return fail(text.error());
  // Checked here too so a typo is reported with its line and column before
  // anything is packed or sent.
  if (auto spec = spec::parse_spec(*text, o.file); !spec) return fail(spec.error());

  auto client = connect(o.farm);
  if (!client) return fail(client.error());

  proto::JobSpec job{.spec = *text,
                     .spec_name = o.file,
                     .pool = o.pool,
                     .client = (*client)->name(),
                     .urgent = o.urgent,
                     .secrets = std::move(*secrets),
                     .timeout_seconds = o.timeout_seconds,
                     .labels = o.labels,
                     .estimate_seconds = o.estimate_seconds,
                     .push = o.push,
                     .pull = o.pull};
  for (const auto& [src, dest] : *outputs) job.outputs.push_back(src);
  if (!o.git_url.empty()) {
    job.context = {.kind = proto::ContextRef::Kind::kGit, .git_repo = o.git_url, .git_commit = o.git_commit};
  } else {
    // Always sent, even when the spec copies nothing: an unchanged context is
    // deduplicated by the scheduler after its first chunk.
    auto context = send_directory_context(**client, o.context.empty() ? "." : o.context);
    if (!context) return fail(context.error());
    job.context = *context;
  }
  proto::Submit submit{.job = std::move(job)};
  if (const std::size_t bytes = proto::encode(submit).size(); bytes > proto::kMaxBodyBytes) {
    return fail(
        Error(ErrorKind::kInvalidArgument,
              fmt::format("the job is {} as a submit message (spec {}, {} secret(s), {} label(s)); a "
                          "scheduler takes at most {}: make the spec or the secrets smaller",
                          human_bytes(bytes), human_bytes(submit.job.spec.size()), submit.job.secrets.size(),
                          submit.job.labels.size(), human_bytes(proto::kMaxBodyBytes))),
        kExitUsage);
  }
  auto submitted = (*client)->call<proto::Submitted>(submit);
  if (!submitted) return fail(submitted.error().with_context("submitting " + o.file));
  const std::string& id = submitted->job_id;
  if (!o.follow && outputs->empty()) {
    std::cout << id << "\n";
    return;
  }
  std::cerr << fmt::format(
      "kiln: submitted job {}; following its log (Ctrl-C stops following, not the job)\n", id);
  auto ended = follow_and_report(*client, o.farm, id, 0, /*end_line=*/true);
  if (ended && ended->state == "succeeded" && !outputs->empty()) {
    if (auto fetched = fetch_outputs(**client, *ended, *outputs, std::cerr); !fetched) fail(fetched.error());
  }
  // The id stays the last line of stdout, as without --follow.
  std::cout << id << "\n";
}

}  // namespace

void add_submit_command(CLI::App& app) {
  auto submit = std::make_shared<SubmitOptions>();
  auto* submit_cmd = app.add_subcommand("submit",
                                        "Submit a spec to the farm: packs and uploads CONTEXT (default .), "
                                        "prints the job id as the last line of stdout");
  submit_cmd->add_option("-f,--file", submit->file, "Spec file")->required()->check(CLI::ExistingFile);
  submit_cmd
      ->add_option("context", submit->context,
                   "Build context directory (default .; .git and .kiln are left out)")
      ->check(CLI::ExistingDirectory);
  submit_cmd->add_option("--pool", submit->pool, "Worker pool (default: the scheduler's, linux-x86_64)");
  submit_cmd->add_flag("--urgent", submit->urgent, "Run before non-urgent jobs");
  submit_cmd->add_option("--secret", submit->secrets,
                         "ID:FILE: secret ID's value is FILE's content; held in memory only (repeatable)");
  submit_cmd->add_option("--label", submit->labels, "KEY=VALUE the worker must carry (repeatable)");
  submit_cmd->add_option("--timeout", submit->timeout_seconds,
                         "Seconds the job may run (default: the scheduler's, 3600)");
  submit_cmd
      ->add_option(
          "--estimate", submit->estimate_seconds,
          "Seconds a cold build of this spec takes, if you know; placement costs the steps no worker "
          "has built before from it (default: learned from the pool's builds)")
      ->check(CLI::NonNegativeNumber);
  submit_cmd->add_option("--pull", submit->pull,
                         "When the worker asks a registry what a base image's tag names: missing (once per "
                         "worker), always, or never (its image cache only); default: the worker's --pull");
  submit_cmd->add_option("--git", submit->git_url,
                         "Use this git repository as the context instead of uploading");
  submit_cmd->add_option("--commit", submit->git_commit, "Full commit hash to check out (with --git)");
  submit_cmd->add_flag(
      "--follow", submit->follow,
      "Stream the log until the job ends; exit 0 if it succeeded, 1 if it failed or was cancelled");
  submit_cmd->add_option("--push", submit->push,
                         "REF: the worker pushes the result as an OCI image to this registry reference "
                         "([HOST[:PORT]/]PATH[:TAG]); the login for it is read from your docker config and "
                         "travels with the job as a secret. `kiln status` shows the pushed digest");
  submit_cmd->add_option("--output", submit->outputs,
                         "SRC:DESTDIR: once the job succeeded, copy the file or directory SRC of its result into "
                         "DESTDIR here (created if missing; repeatable); the worker sends it through the "
                         "scheduler (at most its --max-output-bytes, 256 MiB by default). Implies --follow");
  add_farm_flags(submit_cmd, submit->farm);
  submit_cmd->callback([submit] { run_submit(*submit); });
}

}  // namespace kiln::cli
