// The log of one build step, shared by everyone who asked for that step.
//
// A step's log is a sequence of tagged pieces of text, as in OBuilder's seed
// (heading: the op being run; note: kiln's own lines; output: the command's
// stdout and stderr). A requester who joins late gets everything so far and
// then every new piece as it is written. It is written to a file (the
// store's `log_file(id)`, i.e. `<build dir>/log`) once the store has made the
// step's directory: the file is readable while the step builds and, once
// saved, with the result. Memory is bounded whatever the step prints: the
// pieces are kept in memory up to 256 KiB; past that (with a file attached)
// a late requester's replay is read back from the file, and only the tag
// runs and the last 64 KiB (for tail()) stay in memory.
//
//   auto log = std::make_shared<BuildLog>();
//   log->heading("/: (run (shell \"make\"))");
//   auto sub = log->subscribe(sink);            // replays, then follows live
//   KILN_RETURN_IF_ERROR(log->attach_file(dir + "/log"));
//   log->output("cc -c main.c\n");
//   log->unsubscribe(sub);
//   log->detach_file();
//   KILN_RETURN_IF_ERROR(replay_log_file(store.log_file(id), sink));   // a cached step
//
// The file holds plain text (what `kiln build` prints): a heading or a note
// is one line, output is written as produced. progress() lines (a fetch's
// byte counts) go to the subscribers of the moment only: they are not kept,
// not written to the file and not replayed, so a cached step's replay is the
// step's log and nothing of how long it took to make. detach_file() writes the tags
// beside it (`log.tags`: one "heading|note|output LENGTH" line per run of
// bytes with one tag), so a replay delivers each piece with its tag; a log
// without a usable index replays as kOutput.
// Thread safety: every BuildLog method may be called from any thread. Sinks
// are called with the log's lock held, on the thread that appended the text;
// after unsubscribe() returns a sink is never called again. Sinks must not
// call back into the same log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"

namespace kiln::builder {

enum class LogTag {
  kHeading,  // introduces a build step: "/src: (run (shell \"make\"))"
  kNote,     // kiln's own lines: "---> saved as ID", "unpacking layer 1/1 ...", fetch progress
  kOutput,   // raw output of the step's command
};

// "heading", "note" or "output".
std::string_view log_tag_name(LogTag tag);

// Receives log text. A heading or note arrives as one line ending in '\n';
// output arrives in chunks of any size.
using LogSink = std::function<void(LogTag tag, std::string_view text)>;

class BuildLog {
 public:
  BuildLog() = default;
  ~BuildLog();  // closes the file if still attached
  BuildLog(const BuildLog&) = delete;
  BuildLog& operator=(const BuildLog&) = delete;

  void heading(std::string_view line) { append_line(LogTag::kHeading, line); }
  void note(std::string_view line) { append_line(LogTag::kNote, line); }
  void output(std::string_view chunk) { append(LogTag::kOutput, chunk); }
  // A kNote line for the current subscribers only: not kept for later
  // subscribers, the file, text() or tail().
  void progress(std::string_view line);

  // Writes everything logged so far to `path` (created or truncated) and
  // every later piece too, until detach_file(). A write error after
  // attaching is remembered and returned by detach_file().
  Status attach_file(const std::string& path);
  Status detach_file();

  // Calls `sink` with every piece so far, in order, then with each new one.
  // Returns a handle for unsubscribe(). An empty sink is accepted (and never called).
  std::uint64_t subscribe(LogSink sink);
  void unsubscribe(std::uint64_t handle);

  // The last `max_lines` lines of everything logged (at most its last 64
  // KiB), for error messages.
  std::string tail(std::size_t max_lines) const;
  // Everything logged so far, as plain text (what the file holds): for tests
  // and small logs (past the memory bound it is read back from the file).
  std::string text() const;
  // Bytes of log text held in memory (pieces and tail).
  std::size_t memory_bytes() const;

 private:
  void append_line(LogTag tag, std::string_view line);
  void append(LogTag tag, std::string_view text);
  // Everything so far, in order and tagged: from memory, or from the file
  // once the pieces were dropped. With mu_ held.
  void replay_locked(const LogSink& sink) const;

  mutable std::mutex mu_;
  std::vector<std::pair<LogTag, std::string>> pieces_;  // everything, unless spilled_
  std::size_t pieces_bytes_ = 0;
  bool spilled_ = false;                                // pieces_ dropped: the file holds them
  std::vector<std::pair<LogTag, std::uint64_t>> runs_;  // tag runs of everything logged
  std::uint64_t total_bytes_ = 0;
  std::string tail_;  // the end of everything logged
  std::map<std::uint64_t, LogSink> sinks_;
  std::uint64_t next_handle_ = 1;
  UniqueFd fd_;
  std::string path_;
  std::optional<Error> write_error_;
};

// Sends the content of a saved log file to `sink`, tagged as it was written
// (or as kOutput when its tag index is missing or does not match). An error
// if there is no such file (a result saved without a log).
Status replay_log_file(const std::string& path, const LogSink& sink);

// Where the tag index of the log at `log_path` is kept.
std::string log_tags_path(const std::string& log_path);

}  // namespace kiln::builder
