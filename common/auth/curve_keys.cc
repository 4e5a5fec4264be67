#include "common/auth/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <array>
#include <cerrno>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/fs.h"
#include "common/unique_fd.h"

namespace kiln::auth {
namespace {

constexpr std::size_t kMaxKeyFileBytes = 4096;

Result<std::string> read_small_file(const std::string& path) {
  auto text = read_file(path, kMaxKeyFileBytes);
  if (!text && text.error().kind() == ErrorKind::kInvalidArgument) {
    return make_error(ErrorKind::kInvalidArgument,
                      path + " is not a kiln key file (over 4 KiB); `kiln keygen` writes them");
  }
  return text;
}

// "name = value" lines; values may be quoted; '#' starts a comment.
Result<std::map<std::string, std::string>> parse_key_file(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string text, read_small_file(path));
  std::map<std::string, std::string> fields;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    auto trim = [](std::string s) {
      const auto first = s.find_first_not_of(" \t\r");
      if (first == std::string::npos) return std::string();
      const auto last = s.find_last_not_of(" \t\r");
      return s.substr(first, last - first + 1);
    };
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
      return make_error(ErrorKind::kInvalidArgument,
                        path + ":" + std::to_string(number) + ": expected `name = value`");
    }
    std::string name = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    fields[name] = value;
  }
  return fields;
}

Result<std::string> key_field(const std::map<std::string, std::string>& fields, const std::string& name,
                              const std::string& path) {
  auto it = fields.find(name);
  if (it == fields.end()) {
    return make_error(ErrorKind::kInvalidArgument,
                      path + " has no " + name + " (not a kiln key file? `kiln keygen NAME` writes them)");
  }
  if (!is_curve_key(it->second)) {
    return make_error(ErrorKind::kInvalidArgument,
                      path + ": " + name + " is not a CurveZMQ key (40 characters of Z85)");
  }
  return it->second;
}

Status write_file(const std::string& path, const std::string& text, mode_t mode, bool exclusive) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC);
  UniqueFd fd(::open(path.c_str(), flags, mode));
  if (!fd) {
    if (errno == EEXIST) {
      return make_error(
          ErrorKind::kAlreadyExists,
          path + " already exists; kiln never overwrites a key (remove it first to replace it)");
    }
    return errno_error("cannot create " + path);
  }
  KILN_RETURN_IF_ERROR(write_all(fd.get(), text, path));
  if (::fchmod(fd.get(), mode) != 0 || ::fsync(fd.get()) != 0) return errno_error("cannot finish " + path);
  if (int err = fd.close(); err != 0) return errno_error("cannot close " + path, err);
  return {};
}

}  // namespace

Result<CurveKeyPair> generate_curve_key_pair() {
  std::array<char, 41> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
    return make_error(ErrorKind::kUnsupported, std::string("cannot make a CurveZMQ key pair: ") +
                                                   zmq_strerror(zmq_errno()) +
                                                   " (is libzmq built with CURVE?)");
  }
  return CurveKeyPair{.public_z85 = pub.data(), .secret_z85 = sec.data()};
}

bool is_curve_key(const std::string& z85) {
  if (z85.size() != 40) return false;
  std::array<std::uint8_t, 32> bytes{};
  return zmq_z85_decode(bytes.data(), z85.c_str()) != nullptr;
}

bool is_valid_key_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Status write_key_files(const CurveKeyPair& pair, const std::string& dir, const std::string& name) {
  if (!is_valid_key_name(name)) {
    return make_error(
        ErrorKind::kInvalidArgument,
        "key name \"" + name + "\" is not valid: use 1-64 of A-Z a-z 0-9 . _ - (not starting with .)");
  }
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return make_error(ErrorKind::kIo, "cannot create " + dir + ": " + ec.message());
    ::chmod(dir.c_str(), 0700);
  }
  const std::string header = "# kiln CurveZMQ key \"" + name + "\" (written by `kiln keygen`)\n";
  const std::string secret_path = dir + "/" + name + ".key";
  const std::string public_path = dir + "/" + name + ".pub";
  KILN_RETURN_IF_ERROR(write_file(secret_path,
                                  header +
                                      "# SECRET: keep this file on its host, mode 0600\npublic-key = \"" +
                                      pair.public_z85 + "\"\nsecret-key = \"" + pair.secret_z85 + "\"\n",
                                  0600, /*exclusive=*/true));
  return write_file(public_path, header + "public-key = \"" + pair.public_z85 + "\"\n", 0644,
                    /*exclusive=*/false);
}

Result<CurveKeyPair> read_secret_key_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error("cannot read key file " + path);
  if ((st.st_mode & 077) != 0) {
    return make_error(ErrorKind::kFailedPrecondition,
                      path + " holds a secret key but others can read it (mode " +
                          std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                          std::to_string(st.st_mode & 7) + "); run `chmod 600 " + path + "`");
  }
  KILN_ASSIGN_OR_RETURN(auto fields, parse_key_file(path));
  KILN_ASSIGN_OR_RETURN(std::string pub, key_field(fields, "public-key", path));
  KILN_ASSIGN_OR_RETURN(std::string sec, key_field(fields, "secret-key", path));
  // The public half must belong to the secret half.
  std::array<char, 41> derived{};
  if (zmq_curve_public(derived.data(), sec.c_str()) != 0 || pub != derived.data()) {
    return make_error(ErrorKind::kInvalidArgument,
                      path + ": its public-key does not belong to its secret-key (a damaged key file)");
  }
  return CurveKeyPair{.public_z85 = std::move(pub), .secret_z85 = std::move(sec)};
}

Result<std::string> read_public_key_file(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(auto fields, parse_key_file(path));
  return key_field(fields, "public-key", path);
}

}  // namespace kiln::auth
