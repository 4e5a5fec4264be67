// What `kiln build` does with a finished result besides printing its id:
// `--output SRC:DESTDIR` (copies SRC of the result into a host directory,
// common/context/result_tar.h) and `--push REF` (worker/pusher). One
// function per flag, called in that order after a successful build.
//
//   KILN_RETURN_IF_ERROR(write_outputs(local, id, {"/app/bin:./out"}, kiln_home(), std::cerr));
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/spec/spec.h"
#include "worker/builder/local_builder.h"
#include "worker/store/store.h"

namespace kiln::cli {

// Checks each --output value (SRC:DESTDIR) before anything is built.
Status check_output_flags(const std::vector<std::string>& outputs);

// Copies each SRC of result `id` into its DESTDIR (created if missing), through
// a temporary tar under `tmp_dir` (LocalBuilder::write_result_tar: any store,
// docker included); notes one line per output on `notes`.
Status write_outputs(builder::LocalBuilder& local, const std::string& id,
                     const std::vector<std::string>& outputs, const std::string& tmp_dir,
                     std::ostream& notes);

// Pushes result `id` as the image `reference` (worker/pusher/image_pusher.h),
// logging in and trusting registries as the build's pulls do (`flags`:
// --insecure-registry, --registry-ca; blobs of registry bases from
// HOME/image-cache). Prints the progress on `notes` and `Pushed: REF@DIGEST`
// on stdout.
Status push_output(store::Store& store, const std::string& id, const spec::Spec& spec,
                   const std::string& reference, const builder::LocalBuilderOptions& flags,
                   const std::string& home, std::ostream& notes);

}  // namespace kiln::cli
