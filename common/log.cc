#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>

namespace kiln {

namespace {

// `%*` in a pattern: the message, escaped as the inside of a JSON string.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : msg.payload) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(c);
      } else if (c == '\n') {
        dest.append(std::string_view("\\n"));
      } else if (u < 0x20) {
        dest.append(std::string_view("\\u00"));
        dest.push_back(kHex[u >> 4]);
        dest.push_back(kHex[u & 0xf]);
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

}  // namespace

LogOptions log_options_from_env() {
  LogOptions options;
  if (const char* level = std::getenv("KILN_LOG_LEVEL"); level != nullptr && *level != '\0')
    options.level = level;
  if (const char* json = std::getenv("KILN_LOG_JSON"); json != nullptr)
    options.json = std::string(json) == "1";
  return options;
}

Status init_logging(const LogOptions& options) {
  auto level = spdlog::level::from_str(options.level);
  // from_str answers "off" for anything it does not know; only accept "off" when asked.
  if (level == spdlog::level::off && options.level != "off")
    return make_error(ErrorKind::kInvalidArgument,
                      "unknown log level \"" + options.level + "\"; use one of " + kLogLevels);
  auto logger = std::make_shared<spdlog::logger>("kiln", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (options.json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","pid":%P,"msg":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(level);
  spdlog::set_default_logger(std::move(logger));
  return {};
}

}  // namespace kiln
