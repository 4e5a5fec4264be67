#include "worker/daemon/git_context.h"

#include <git2.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include <fmt/format.h>

#include "common/context/context_tar.h"
#include "common/sha256.h"

namespace kiln::worker {
namespace {

std::string git_reason() {
  const git_error* e = git_error_last();
  return e != nullptr && e->message != nullptr ? e->message : "unknown libgit2 error";
}

// RAII holders for libgit2 objects.
template <class T, void (*Free)(T*)>
struct Owned {
  T* p = nullptr;
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() {
    if (p != nullptr) Free(p);
  }
};
using Repo = Owned<git_repository, git_repository_free>;
using Remote = Owned<git_remote, git_remote_free>;
using Commit = Owned<git_commit, git_commit_free>;
using Tree = Owned<git_tree, git_tree_free>;

// Aborts a transfer when the job is cancelled (libgit2 stops on non-zero).
int on_transfer(const git_indexer_progress*, void* payload) {
  const auto* cancel = static_cast<const CancelToken*>(payload);
  return cancel != nullptr && cancel->cancelled() ? -1 : 0;
}
int on_sideband(const char*, int, void* payload) {
  return on_transfer(nullptr, payload);
}

void set_cancel_callbacks(git_remote_callbacks& callbacks, const CancelToken* cancel) {
  callbacks.transfer_progress = on_transfer;
  callbacks.sideband_progress = on_sideband;
  callbacks.payload = const_cast<CancelToken*>(cancel);
}

bool is_commit_hex(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

}  // namespace

std::string redact_url(const std::string& url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  std::size_t host = scheme + 3;
  std::size_t end = url.find_first_of("/?#", host);
  std::size_t at = url.rfind('@', end == std::string::npos ? url.size() - 1 : end);
  if (at == std::string::npos || at < host) return url;
  std::size_t colon = url.find(':', host);
  // Only a password is secret: "ssh://git@host" names a user and nothing more.
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + ":***" + url.substr(at);
}

GitContexts::GitContexts(std::string cache_dir) : cache_dir_(std::move(cache_dir)) {
  git_libgit2_init();
}

GitContexts::~GitContexts() {
  git_libgit2_shutdown();
}

std::string GitContexts::repository_dir(const std::string& url) const {
  return cache_dir_ + "/" + sha256_hex(url);
}

std::mutex& GitContexts::lock_for(const std::string& url) {
  std::lock_guard lock(mu_);
  auto& m = locks_[url];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

Status GitContexts::checkout(const std::string& url, const std::string& commit, const std::string& dest_dir,
                             const CancelToken* cancel) {
  if (!is_commit_hex(commit))
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("git commit {:?} is not a full 40-character hash; resubmit with `git "
                                  "rev-parse` of the commit",
                                  commit));
  const std::string shown = redact_url(url);  // for messages: no credentials
  auto cancelled = [&] {
    return make_error(ErrorKind::kCancelled, fmt::format("cancelled while fetching {}", shown));
  };
  std::lock_guard repo_lock(lock_for(url));
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(cache_dir_, ec);
  if (ec) return make_error(ErrorKind::kIo, fmt::format("cannot create {}: {}", cache_dir_, ec.message()));

  const std::string dir = repository_dir(url);
  Repo repo;
  if (git_repository_open_bare(&repo.p, dir.c_str()) != 0) {
    // Cloned beside the final place and renamed, so a crash never leaves a
    // half-made clone where the next job would open it.
    fs::remove_all(dir, ec);
    std::string tmp = fmt::format("{}.tmp-{}", dir, ::getpid());
    fs::remove_all(tmp, ec);
    git_clone_options options = GIT_CLONE_OPTIONS_INIT;
    options.bare = 1;
    set_cancel_callbacks(options.fetch_opts.callbacks, cancel);
    if (git_clone(&repo.p, url.c_str(), tmp.c_str(), &options) != 0) {
      std::string reason = git_reason();
      fs::remove_all(tmp, ec);
      if (cancel != nullptr && cancel->cancelled()) return cancelled();
      return make_error(ErrorKind::kUnavailable,
                        fmt::format("cannot clone git repository {}: {}; check the URL and that this worker "
                                    "can reach it",
                                    shown, reason));
    }
    git_repository_free(repo.p);
    repo.p = nullptr;
    fs::rename(tmp, dir, ec);
    if (ec)
      return make_error(ErrorKind::kIo, fmt::format("cannot move the clone to {}: {}", dir, ec.message()));
    if (git_repository_open_bare(&repo.p, dir.c_str()) != 0)
      return make_error(ErrorKind::kIo, fmt::format("cannot open the clone {}: {}", dir, git_reason()));
  }

  git_oid oid;
  if (git_oid_fromstr(&oid, commit.c_str()) != 0)
    return make_error(ErrorKind::kInvalidArgument,
                      fmt::format("bad git commit {:?}: {}", commit, git_reason()));
  Commit found;
  if (git_commit_lookup(&found.p, repo.p, &oid) != 0) {
    Remote remote;
    if (git_remote_lookup(&remote.p, repo.p, "origin") != 0 &&
        git_remote_create_anonymous(&remote.p, repo.p, url.c_str()) != 0)
      return make_error(ErrorKind::kIo, fmt::format("cannot use the clone of {}: {}", shown, git_reason()));
    const char* specs[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"};
    git_strarray refspecs{const_cast<char**>(specs), 2};
    git_fetch_options options = GIT_FETCH_OPTIONS_INIT;
    set_cancel_callbacks(options.callbacks, cancel);
    if (git_remote_fetch(remote.p, &refspecs, &options, "kiln-worker fetch") != 0) {
      if (cancel != nullptr && cancel->cancelled()) return cancelled();
      return make_error(ErrorKind::kUnavailable,
                        fmt::format("cannot fetch git repository {}: {}", shown, git_reason()));
    }
    if (git_commit_lookup(&found.p, repo.p, &oid) != 0)
      return make_error(ErrorKind::kNotFound,
                        fmt::format("git commit {} is not in {} (not on any branch or tag after fetching); "
                                    "push it, then resubmit",
                                    commit, shown));
  }
  if (cancel != nullptr && cancel->cancelled()) return cancelled();

  Tree tree;
  if (git_commit_tree(&tree.p, found.p) != 0)
    return make_error(ErrorKind::kIo,
                      fmt::format("cannot read the tree of commit {}: {}", commit, git_reason()));
  git_checkout_options options = GIT_CHECKOUT_OPTIONS_INIT;
  options.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
  // Files exactly as committed, whatever this machine's attributes say, so
  // every worker sees the same bytes (and the same step ids).
  options.disable_filters = 1;
  options.target_directory = dest_dir.c_str();
  if (git_checkout_tree(repo.p, reinterpret_cast<const git_object*>(tree.p), &options) != 0)
    return make_error(ErrorKind::kIo, fmt::format("cannot check out commit {} of {} into {}: {}", commit,
                                                  shown, dest_dir, git_reason()));
  return context::check_symlinks_stay_inside(dest_dir);
}

}  // namespace kiln::worker
