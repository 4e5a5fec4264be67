// The build context tar: the one owner of its format. `kiln submit` packs a
// directory into one (write_context_tar), the scheduler reads its manifest to
// compute a job's step ids at submit (context_tar_manifest), and the worker
// unpacks it into the job's directory (unpack_context_tar). Reading goes
// through ContextTarReader (context_tar_reader.h), where every rule about
// what a context tar may hold is checked, so the scheduler refuses at submit
// exactly the tars a worker would refuse, and the manifest it computes is the
// manifest of the directory the worker unpacks (docs/step-ids.md).
//
//   KILN_ASSIGN_OR_RETURN(ContextTar tar, write_context_tar("examples/context", "/tmp/ctx.tar"));
//   // tar.digest == "sha256:<64 hex>", tar.size == bytes in /tmp/ctx.tar
//   KILN_ASSIGN_OR_RETURN(ids::ContextManifest m, context_tar_manifest("/tmp/ctx.tar"));
//   KILN_ASSIGN_OR_RETURN(auto steps, ids::compute_step_ids(spec, &m, "app.spec"));
//   KILN_RETURN_IF_ERROR(unpack_context_tar("/tmp/ctx.tar", job_dir));  // same ids from job_dir
//
// The tar written (by kiln's own writer; reading goes through libarchive): POSIX
// pax (ustar headers, with a pax extended header before an entry whose name
// or link target does not fit one or is not ASCII; names UTF-8), every directory, regular file and symlink below `dir` (not
// `dir` itself), with paths relative to it, sorted by their bytes (so a
// directory precedes its content). Each entry keeps its permission bits (the
// executable bit matters to step ids) and a symlink its target, never
// followed; mtime is 0, owner and group 0 with no names; hard links are
// stored as separate files. Entries named `.git` or `.kiln`, at any depth,
// are left out with everything under them (version control and kiln's own
// state). Sockets, fifos and devices are skipped (a reader would refuse
// them); `skipped` lists them so the caller can say so. The same tree gives
// the same bytes, so the same digest, on any machine.
//
// Errors: see each function. Thread safety: no shared state (no chdir, the
// locale switched per thread); concurrent calls on distinct outputs are fine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/ids/manifest.h"

namespace kiln::context {

struct ContextTar {
  std::string digest;                // "sha256:" + lowercase hex of the tar's bytes
  std::uint64_t size = 0;            // bytes of the tar
  std::uint64_t entries = 0;         // entries written
  std::vector<std::string> skipped;  // relative paths of special files left out
};

// Writes the tar of `dir` to `out_path` (created or truncated). Errors:
// kNotFound / kInvalidArgument when `dir` is missing or not a directory, kIo
// (naming the path) when a file cannot be read or the output written,
// kFailedPrecondition when a file changes size while being packed. A failed
// call removes `out_path`.
Result<ContextTar> write_context_tar(const std::string& dir, const std::string& out_path);

// The manifest of every entry of the tar at `tar_path` (docs/step-ids.md,
// "Whole-context manifests"): directories, files (content SHA-256 and
// executable bit; a hard link is its target's file) and symlinks, with the
// directories that only deeper paths imply. Fails as ContextTarReader does
// (kInvalidArgument), so a tar that yields a manifest also unpacks.
Result<ids::ContextManifest> context_tar_manifest(const std::string& tar_path);

// Unpacks the tar at `tar_path` into `dest_dir`, which must exist (and is
// normally empty: a file already there under an entry's name is replaced, a
// directory kept). Fails as ContextTarReader does, and never writes outside
// `dest_dir` or through a symlink. Files get the entry's rwx bits (setuid,
// setgid and sticky dropped), directories too; owners and times are not
// restored (everything belongs to the caller's user). Hard links are made as
// hard links. On error `dest_dir` may hold part of the tree (the caller
// removes it).
Status unpack_context_tar(const std::string& tar_path, const std::string& dest_dir);

// The same symlink rule for a tree that did not come from a tar (a git
// checkout): fails (kInvalidArgument, naming the link, as a refusal) if any
// symlink below `root` points at an absolute path or, followed link by link,
// leads outside `root`; kIo when `root` cannot be read.
Status check_symlinks_stay_inside(const std::string& root);

}  // namespace kiln::context
