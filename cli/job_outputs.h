// A farm job's outputs on this machine (`kiln submit --output SRC:DESTDIR`,
// `kiln output JOB SRC:DESTDIR`; docs/images.md "Results out"): the worker
// sent the tar of each SRC to the scheduler; here each is read with
// get-output into an unnamed temporary file, checked against its digest and
// size, and only then unpacked into DESTDIR (common/context/result_tar.h:
// never written through a symlink, never outside DESTDIR).
//
//   KILN_ASSIGN_OR_RETURN(auto wanted, parse_output_flags({"/app/bin:./out"}));
//   KILN_RETURN_IF_ERROR(fetch_outputs(client, job_info, wanted, std::cerr));
//
// Errors: kNotFound when the job has no such output (it did not ask for it,
// has not succeeded, or the scheduler no longer holds it: outputs are kept
// for its --output-retention), kFailedPrecondition when the bytes do not
// match the digest, the scheduler's and the file system's errors.
// Thread safety: the command's one thread.
#pragma once

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/proto/client.h"

namespace kiln::cli {

// SRC, DESTDIR of each `--output` value (usage errors name the flag).
Result<std::vector<std::pair<std::string, std::string>>> parse_output_flags(
    const std::vector<std::string>& values);

// Fetches and unpacks each wanted output of `job` (a succeeded job's status),
// noting one line per output on `notes`.
Status fetch_outputs(proto::Client& client, const proto::JobInfo& job,
                     const std::vector<std::pair<std::string, std::string>>& wanted, std::ostream& notes);

}  // namespace kiln::cli
