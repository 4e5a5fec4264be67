#include "common/auth/zap_handler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <future>
#include <set>
#include <vector>

namespace kiln::auth {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr int kMaxRefusalLogsPerMinute = 20;

std::string peer_key_z85(const zmq::message_t& credentials) {
  if (credentials.size() != 32) return {};
  std::array<char, 41> text{};
  if (zmq_z85_encode(text.data(), static_cast<const std::uint8_t*>(credentials.data()), 32) == nullptr)
    return {};
  return text.data();
}

bool same_table(const KeyTable& a, const KeyTable& b) {
  return a.by_key == b.by_key;
}

}  // namespace

ZapHandler::ZapHandler(zmq::context_t& context, std::string auth_dir,
                       std::chrono::milliseconds reload_interval)
    : context_(context), auth_dir_(std::move(auth_dir)), reload_interval_(reload_interval) {}

Result<std::unique_ptr<ZapHandler>> ZapHandler::start(zmq::context_t& context, std::string auth_dir,
                                                      std::chrono::milliseconds reload_interval) {
  KILN_ASSIGN_OR_RETURN(KeyTable first, load_auth_dir(auth_dir));
  for (const std::string& problem : first.problems) spdlog::warn("auth directory: {}", problem);
  std::unique_ptr<ZapHandler> handler(new ZapHandler(context, std::move(auth_dir), reload_interval));
  handler->keys_ = std::make_shared<const KeyTable>(std::move(first));
  std::promise<std::string> bound;
  auto bound_future = bound.get_future();
  ZapHandler* self = handler.get();
  handler->thread_ = std::thread([self, &bound] {
    zmq::socket_t socket(self->context_, zmq::socket_type::rep);
    socket.set(zmq::sockopt::linger, 0);
    try {
      socket.bind(kZapEndpoint);
    } catch (const zmq::error_t& e) {
      bound.set_value(e.what());
      return;
    }
    bound.set_value("");
    auto next_reload = std::chrono::steady_clock::now() + self->reload_interval_;
    while (!self->stop_.load()) {
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(100));
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) return;
        if (e.num() != EINTR) spdlog::error("authentication handler: poll: {}", e.what());
        continue;
      }
      if (item.revents & ZMQ_POLLIN) self->answer(socket);
      if (std::chrono::steady_clock::now() >= next_reload) {
        self->reload(false);
        next_reload = std::chrono::steady_clock::now() + self->reload_interval_;
      }
    }
  });
  std::string error = bound_future.get();
  if (!error.empty()) {
    handler->thread_.join();
    return make_error(ErrorKind::kUnavailable,
                      fmt::format("cannot start the authentication handler ({}): {}", kZapEndpoint, error));
  }
  return handler;
}

ZapHandler::~ZapHandler() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const KeyTable> ZapHandler::keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

std::optional<Identity> ZapHandler::check(std::string_view user_id) const {
  // "ROLE:NAME:KEY"; a name has no ':', a Z85 key may.
  const auto first = user_id.find(':');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = user_id.find(':', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  auto identity = Identity::from_user_id(user_id.substr(0, second));
  if (!identity) return std::nullopt;
  const std::string key(user_id.substr(second + 1));
  auto table = keys();
  const Identity* now = table->find(key);
  if (now == nullptr || !(*now == *identity)) return std::nullopt;
  return identity;
}

void ZapHandler::reload(bool first) {
  auto loaded = load_auth_dir(auth_dir_);
  if (!loaded) {
    // Keep the keys we have: a directory being replaced must not lock everyone out.
    spdlog::error("auth directory: {}; keeping the keys loaded before", loaded.error().to_string());
    return;
  }
  auto current = keys();
  if (!first && same_table(*current, *loaded)) return;
  std::set<std::string> before, after;
  for (const auto& [key, who] : current->by_key) before.insert(who.user_id());
  for (const auto& [key, who] : loaded->by_key) after.insert(who.user_id());
  for (const std::string& problem : loaded->problems) spdlog::warn("auth directory: {}", problem);
  std::vector<std::string> added, removed;
  for (const auto& id : after)
    if (!before.contains(id)) added.push_back(id);
  for (const auto& id : before)
    if (!after.contains(id)) removed.push_back(id);
  spdlog::info("auth directory {} reloaded: {} keys ({} new identities, {} removed{})", auth_dir_,
               loaded->by_key.size(), added.size(), removed.size(),
               removed.empty() ? "" : fmt::format(": {}", fmt::join(removed, ", ")));
  {
    std::lock_guard lock(mu_);
    keys_ = std::make_shared<const KeyTable>(std::move(*loaded));
  }
  generation_.fetch_add(1);
}

void ZapHandler::answer(zmq::socket_t& socket) {
  // Request: version, request id, domain, address, identity, mechanism, credentials...
  std::vector<zmq::message_t> frames;
  while (true) {
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) break;
    const bool more = frame.more();
    if (frames.size() < 16) frames.push_back(std::move(frame));
    if (!more) break;
  }
  auto text = [&](std::size_t i) { return i < frames.size() ? frames[i].to_string() : std::string(); };
  std::string status = "400", status_text = "refused", user_id;
  const std::string domain = text(2), address = text(3), mechanism = text(5);
  if (frames.size() < 7 || text(0) != "1.0") {
    status = "500";
    status_text = "malformed ZAP request";
  } else if (mechanism != "CURVE") {
    status_text = "kiln's scheduler accepts CurveZMQ connections only";
  } else {
    const std::string key = peer_key_z85(frames[6]);
    auto table = keys();
    const Identity* who = key.empty() ? nullptr : table->find(key);
    const bool client_port = domain == kZapDomainClients;
    const bool worker_port = domain == kZapDomainWorkers;
    if (who == nullptr) {
      status_text = fmt::format("key {} is not in {}", key, client_port ? "clients/ or admins/" : "workers/");
    } else if (client_port && who->role == Role::kWorker) {
      status_text =
          fmt::format("{} is a worker key; the client port takes client and admin keys", who->user_id());
    } else if (worker_port && who->role != Role::kWorker) {
      status_text =
          fmt::format("{} is not a worker key; the worker port takes keys in workers/", who->user_id());
    } else if (!client_port && !worker_port) {
      status_text = fmt::format("unknown ZAP domain {:?}", domain);
    } else {
      status = "200";
      status_text = "OK";
      user_id = who->user_id() + ":" + key;
    }
  }
  if (status == "200") {
    accepted_.fetch_add(1);
  } else {
    refused_.fetch_add(1);
    const auto now = std::chrono::steady_clock::now();
    if (now - log_window_ > std::chrono::minutes(1)) {
      log_window_ = now;
      logged_in_window_ = 0;
    }
    if (++logged_in_window_ <= kMaxRefusalLogsPerMinute) {
      spdlog::warn("refused a connection from {} on the {} port: {}", address,
                   domain == kZapDomainWorkers ? "worker" : "client", status_text);
    } else if (logged_in_window_ == kMaxRefusalLogsPerMinute + 1) {
      spdlog::warn("more refused connections this minute are not logged");
    }
  }
  const std::string request_id = text(1);
  std::array<std::string, 6> reply = {"1.0", request_id, status, status_text, user_id, ""};
  for (std::size_t i = 0; i < reply.size(); ++i) {
    socket.send(zmq::buffer(reply[i]),
                i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

}  // namespace kiln::auth
