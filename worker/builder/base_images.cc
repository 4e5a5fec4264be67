#include "worker/builder/base_images.h"

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/sha256.h"
#include "worker/builder/builder.h"

namespace kiln::builder {
namespace {

// The HEX of "sha256:HEX", or empty.
std::string digest_hex(const std::string& digest) {
  if (!digest.starts_with("sha256:") || !is_sha256_hex(std::string_view(digest).substr(7))) return "";
  return digest.substr(7);
}

Result<nlohmann::json> parse_object(std::string_view text, const std::string& what) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return make_error(ErrorKind::kFailedPrecondition,
                      fmt::format("the image config {} is not valid JSON; delete the base image's result "
                                  "(kiln delete ID) so that it is fetched again",
                                  what));
  return j;
}

}  // namespace

std::string image_config_json(const std::string& reference, const fetcher::ImageConfig& config) {
  nlohmann::json env = nlohmann::json::array();
  for (const auto& [key, value] : config.env) env.push_back(key + "=" + value);
  nlohmann::json j = {
      {"reference", reference},
      {"env", env},
      {"working_dir", config.working_dir},
      {"user", config.user},
      {"entrypoint", config.entrypoint},
      {"cmd", config.cmd},
      {"manifest_digest", config.manifest_digest},
  };
  if (!config.resolved.empty()) j["resolved"] = config.resolved;
  return j.dump(2) + "\n";
}

Result<std::vector<std::pair<std::string, std::string>>> read_image_env(const std::string& path) {
  KILN_ASSIGN_OR_RETURN_CONTEXT(std::string text, read_file(path, 4 << 20), "reading the image config");
  KILN_ASSIGN_OR_RETURN(nlohmann::json j, parse_object(text, path));
  std::vector<std::pair<std::string, std::string>> env;
  auto it = j.find("env");
  if (it == j.end() || !it->is_array()) return env;
  for (const auto& item : *it) {
    if (!item.is_string()) continue;
    std::string kv = item.get<std::string>();
    std::size_t eq = kv.find('=');
    if (eq == std::string::npos) {
      env.emplace_back(kv, "");
    } else {
      env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  return env;
}

Result<std::string> retarget_image_json(std::string_view text, const std::string& reference,
                                        const fetcher::ResolvedImage& resolved) {
  KILN_ASSIGN_OR_RETURN(nlohmann::json j, parse_object(text, "of the reused result"));
  auto recorded = j.find("manifest_digest");
  if (recorded == j.end() || !recorded->is_string() ||
      recorded->get<std::string>() != resolved.manifest_digest)
    return make_error(ErrorKind::kFailedPrecondition,
                      fmt::format("the reused result holds another image than {}", resolved.manifest_digest));
  j["reference"] = reference;
  j["manifest_digest"] = resolved.manifest_digest;
  if (resolved.resolved.empty()) {
    j.erase("resolved");
  } else {
    j["resolved"] = resolved.resolved;
  }
  return j.dump(2) + "\n";
}

std::optional<std::string> UnpackedImages::find(const std::string& manifest_digest) const {
  const std::string hex = digest_hex(manifest_digest);
  if (!enabled() || hex.empty()) return std::nullopt;
  auto text = read_file(dir_ + "/" + hex, 256);
  if (!text) return std::nullopt;
  std::string id = *text;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  if (!is_sha256_hex(id)) return std::nullopt;
  return id;
}

void UnpackedImages::record(const std::string& manifest_digest, const std::string& result_id) const {
  const std::string hex = digest_hex(manifest_digest);
  if (!enabled() || hex.empty()) return;
  Status s = ensure_dirs(dir_, 0700);
  if (s) s = write_file_atomically(dir_ + "/" + hex, result_id + "\n");
  if (!s) spdlog::warn("remembering which result holds image {}: {}", manifest_digest, s.error().to_string());
}

Result<std::optional<ImageReuse>> Builder::reuse_unpacked(const std::string& id, const std::string& reference,
                                                          std::optional<fetcher::PullPolicy> pull,
                                                          BuildLog& log, CancelToken& cancel,
                                                          std::string& resolved_out) {
  if (!unpacked_.enabled()) return std::optional<ImageReuse>();
  const auto started = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(
      std::optional<fetcher::ResolvedImage> resolved,
      fetcher_.resolve([&log](fetcher::ProgressKind, std::string_view line) { log.note(line); }, reference,
                       {.cancel = &cancel, .pull = pull}));
  if (!resolved) return std::optional<ImageReuse>();
  resolved_out = resolved->resolved;
  std::optional<std::string> earlier = unpacked_.find(resolved->manifest_digest);
  if (!earlier || *earlier == id) return std::optional<ImageReuse>();
  // Pinned before it is looked at, so that no prune removes it meanwhile.
  pin(*earlier);
  auto not_reused = [&] {
    unpin(*earlier);
    return std::optional<ImageReuse>();
  };
  auto dir = store_.result(*earlier);
  if (!dir || !*dir) return not_reused();
  auto json = read_file(**dir + "/image.json", 4 << 20);
  if (!json) return not_reused();
  auto retargeted = retarget_image_json(*json, reference, *resolved);
  if (!retargeted) return not_reused();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string note =
      fmt::format("{} is image {}, unpacked before as {}: reused as it is ({:.0f} ms)", reference,
                  resolved->manifest_digest, earlier->substr(0, 12), seconds * 1000);
  return std::optional<ImageReuse>(
      ImageReuse{.base = *earlier,
                 .fill = [text = std::move(*retargeted), note = std::move(note)](
                             const store::Workspace& ws, BuildLog& step_log, CancelToken&) -> Status {
                   step_log.note(note);
                   return write_file(ws.dir + "/image.json", text);
                 }});
}

}  // namespace kiln::builder
