// Build contexts from git: a bare clone of each repository is kept under the
// worker's state directory (`<cache_dir>/<sha256 of the URL>`), fetched again
// only when it lacks the commit a job asks for, and the commit's tree is
// checked out into the job's directory. Uses libgit2.
//
//   GitContexts git(state_dir + "/git");
//   KILN_RETURN_IF_ERROR(git.checkout("https://example.org/app.git", commit_hex, job_dir, &cancel));
//
// checkout() fetches every branch and tag of the repository when the commit
// is missing (servers rarely allow fetching an arbitrary commit), and fails
// with kNotFound if the commit is still not there, kInvalidArgument for a
// commit that is not 40 hex characters, kUnavailable when the repository
// cannot be cloned or fetched (the message gives libgit2's reason), and
// kCancelled when `cancel` fires during a clone or fetch. The checked-out
// tree is refused (kInvalidArgument) if one of its symlinks leads outside
// `dest_dir`. Submodules and LFS objects are not fetched.
// Thread safety: checkout() may be called from several threads; operations
// on the same repository are serialised.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/cancel_token.h"
#include "common/error.h"

namespace kiln::worker {

// `url` with the password of its user info replaced by "***"
// ("https://bot:TOKEN@host/r.git" -> "https://bot:***@host/r.git"), for
// messages and logs.
std::string redact_url(const std::string& url);

class GitContexts {
 public:
  explicit GitContexts(std::string cache_dir);
  ~GitContexts();
  GitContexts(const GitContexts&) = delete;
  GitContexts& operator=(const GitContexts&) = delete;

  // Writes the tree of `commit` (40 hex) of repository `url` into
  // `dest_dir`, which must exist and be empty. `cancel` may be null.
  Status checkout(const std::string& url, const std::string& commit, const std::string& dest_dir,
                  const CancelToken* cancel);

  // The bare clone kept for `url`.
  std::string repository_dir(const std::string& url) const;

 private:
  std::mutex& lock_for(const std::string& url);

  std::string cache_dir_;
  std::mutex mu_;  // guards locks_
  std::map<std::string, std::unique_ptr<std::mutex>> locks_;
};

}  // namespace kiln::worker
