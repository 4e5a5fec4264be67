// CurveZMQ key pairs for kiln's sockets, and the two files a key lives in
// (docs/security.md):
//
//   NAME.key   the secret key and its public key (mode 0600: never leaves its host)
//   NAME.pub   the public key alone (copied to the scheduler's auth directory,
//              or to clients and workers that pin the scheduler's key)
//
//   KILN_ASSIGN_OR_RETURN(CurveKeyPair pair, generate_curve_key_pair());
//   KILN_RETURN_IF_ERROR(write_key_files(pair, "/etc/kiln/keys", "w1"));
//   KILN_ASSIGN_OR_RETURN(CurveKeyPair mine, read_secret_key_file("/etc/kiln/keys/w1.key"));
//   KILN_ASSIGN_OR_RETURN(std::string theirs, read_public_key_file("/etc/kiln/scheduler.pub"));
//
// Keys are Z85 text (40 characters for 32 bytes), as ZeroMQ's socket options
// take them. The files are small "name = value" texts with comments:
//   # kiln CurveZMQ key "w1" ...
//   public-key = "Z85"
//   secret-key = "Z85"        (NAME.key only)
// A .key file is also accepted where a public key is expected (its public
// half is used). Reading refuses a secret key file that group or others can
// read (kFailedPrecondition, naming the chmod that fixes it).
// Errors say which file and what is wrong. Thread safety: pure functions.
#pragma once

#include <string>

#include "common/error.h"

namespace kiln::auth {

struct CurveKeyPair {
  std::string public_z85;
  std::string secret_z85;
};

Result<CurveKeyPair> generate_curve_key_pair();

// True for 40 characters of Z85 that decode to 32 bytes.
bool is_curve_key(const std::string& z85);

// Identity names (file names, worker and client names): 1 to 64 of
// [A-Za-z0-9._-], not starting with '.'.
bool is_valid_key_name(const std::string& name);

// Writes DIR/NAME.key (0600, created exclusively: an existing key is never
// overwritten, kAlreadyExists) and DIR/NAME.pub (0644). Creates DIR (0700).
Status write_key_files(const CurveKeyPair& pair, const std::string& dir, const std::string& name);

Result<CurveKeyPair> read_secret_key_file(const std::string& path);
Result<std::string> read_public_key_file(const std::string& path);

}  // namespace kiln::auth
