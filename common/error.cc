#include "common/error.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace kiln {

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kNotFound: return "not found";
    case ErrorKind::kAlreadyExists: return "already exists";
    case ErrorKind::kBusy: return "busy";
    case ErrorKind::kIo: return "I/O error";
    case ErrorKind::kUnavailable: return "unavailable";
    case ErrorKind::kCancelled: return "cancelled";
    case ErrorKind::kTimeout: return "timed out";
    case ErrorKind::kFailedPrecondition: return "failed precondition";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kPermissionDenied: return "permission denied";
    case ErrorKind::kInternal: return "internal error";
  }
  return "unknown error";
}

std::string Error::to_string() const {
  std::string out;
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) {
    out += *it;
    out += ": ";
  }
  out += message_;
  return out;
}

std::unexpected<Error> errno_error(std::string_view what, int err) {
  ErrorKind kind = ErrorKind::kIo;
  if (err == ENOENT)
    kind = ErrorKind::kNotFound;
  else if (err == EEXIST)
    kind = ErrorKind::kAlreadyExists;
  else if (err == EBUSY)
    kind = ErrorKind::kBusy;
  else if (err == EINVAL)
    kind = ErrorKind::kInvalidArgument;
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  return make_error(kind, std::move(message));
}

std::unexpected<Error> errno_error(std::string_view what) {
  return errno_error(what, errno);
}

}  // namespace kiln
