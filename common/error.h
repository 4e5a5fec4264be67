// kiln's one error model: every fallible call returns `Result<T>`, which is
// `std::expected<T, Error>`. An `Error` carries a kind (what class of failure,
// for callers that branch on it), a message (what failed, on what input, what
// to do) and a stack of context lines added as the error travels up.
//
//   Result<Spec> load(const std::string& path) {
//     KILN_ASSIGN_OR_RETURN(auto text, read_file(path));
//     return parse_spec(text, path);
//   }
//   ...
//   if (auto r = load(p); !r) std::cerr << r.error().to_string() << "\n";
//
// Errors never cross module boundaries as exceptions. Thread safety: values.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln {

enum class ErrorKind {
  kInvalidArgument,     // bad input from a user or peer (a spec, a flag, a frame)
  kNotFound,            // a named thing does not exist
  kAlreadyExists,       // creating something that is already there
  kBusy,                // in use; retry later (e.g. deleting a cache in use)
  kIo,                  // the OS refused an operation (errno in the message)
  kUnavailable,         // a peer or service cannot be reached
  kCancelled,           // the caller asked to stop
  kTimeout,             // a deadline passed
  kFailedPrecondition,  // the system is not in a state that allows this
  kUnsupported,         // a feature this build or machine does not have
  kPermissionDenied,    // the peer's identity may not do this (authentication, roles)
  kInternal,            // a bug in kiln (keep last: the wire codec counts up to it)
};

// Short lowercase name of an error kind ("invalid argument", "not found"...).
std::string_view error_kind_name(ErrorKind kind);

class Error {
 public:
  Error(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}

  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  // Context lines, innermost first.
  const std::vector<std::string>& context() const { return context_; }

  // Adds a line of context ("while loading spec examples/a.spec").
  Error& with_context(std::string line) & {
    context_.push_back(std::move(line));
    return *this;
  }
  Error&& with_context(std::string line) && {
    context_.push_back(std::move(line));
    return std::move(*this);
  }

  // "outermost context: ...: innermost context: message".
  std::string to_string() const;

 private:
  ErrorKind kind_;
  std::string message_;
  std::vector<std::string> context_;
};

// A value or the Error that kept it from being made. [[nodiscard]]: a
// result nobody looks at is an error nobody sees, so ignoring one is a
// compiler warning (discard one on purpose with `(void)`, saying why).
// Everything std::expected offers works; std::expected and std::unexpected
// convert to it.
template <typename T>
class [[nodiscard]] Result : public std::expected<T, Error> {
 public:
  using std::expected<T, Error>::expected;
  Result(const std::expected<T, Error>& e) : std::expected<T, Error>(e) {}
  Result(std::expected<T, Error>&& e) : std::expected<T, Error>(std::move(e)) {}
};

// Result of an operation with no value.
using Status = Result<void>;

inline std::unexpected<Error> make_error(ErrorKind kind, std::string message) {
  return std::unexpected<Error>(Error(kind, std::move(message)));
}

// Error from the current errno: "<what>: <strerror(errno)>".
std::unexpected<Error> errno_error(std::string_view what);
// Same with an explicit errno value.
std::unexpected<Error> errno_error(std::string_view what, int err);

// Returns a copy of `r` with `line` added to its error's context.
template <typename T>
Result<T> with_context(Result<T> r, std::string line) {
  if (!r) r.error().with_context(std::move(line));
  return r;
}

}  // namespace kiln

#define KILN_CONCAT_INNER_(a, b) a##b
#define KILN_CONCAT_(a, b) KILN_CONCAT_INNER_(a, b)

// Evaluates `expr` (a Status or Result); returns its error from the enclosing
// function if it failed.
#define KILN_RETURN_IF_ERROR(expr)                                              \
  do {                                                                          \
    auto&& kiln_status_ = (expr);                                               \
    if (!kiln_status_) return std::unexpected(std::move(kiln_status_).error()); \
  } while (false)

// The same, adding a line of context to the error on the way out. `context`
// (a std::string expression) is evaluated only when `expr` failed:
//   KILN_RETURN_IF_ERROR_CONTEXT(store.remove(id), fmt::format("deleting result {}", id));
#define KILN_RETURN_IF_ERROR_CONTEXT(expr, context)                                                   \
  do {                                                                                                \
    auto&& kiln_status_ = (expr);                                                                     \
    if (!kiln_status_) return std::unexpected(std::move(kiln_status_).error().with_context(context)); \
  } while (false)

// `KILN_ASSIGN_OR_RETURN(auto x, f())`: declares/assigns the value of a
// Result, or returns its error from the enclosing function.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL_(KILN_CONCAT_(kiln_result_, __LINE__), lhs, expr)
#define KILN_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)         \
  auto tmp = (expr);                                        \
  if (!tmp) return std::unexpected(std::move(tmp).error()); \
  lhs = std::move(tmp).value()

// `KILN_ASSIGN_OR_RETURN_CONTEXT(auto x, f(), "reading " + path)`: as
// KILN_ASSIGN_OR_RETURN, adding `context` (evaluated only on failure).
#define KILN_ASSIGN_OR_RETURN_CONTEXT(lhs, expr, context) \
  KILN_ASSIGN_OR_RETURN_CONTEXT_IMPL_(KILN_CONCAT_(kiln_result_, __LINE__), lhs, expr, context)
#define KILN_ASSIGN_OR_RETURN_CONTEXT_IMPL_(tmp, lhs, expr, context)              \
  auto tmp = (expr);                                                              \
  if (!tmp) return std::unexpected(std::move(tmp).error().with_context(context)); \
  lhs = std::move(tmp).value()
