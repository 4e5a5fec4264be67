// Test support: a real distribution for end-to-end tests, the Debian 12
// image with gcc, make and libc6-dev that scripts/make-debian-image builds
// with debootstrap and keeps under /var/cache/kiln-test (docs/images.md).
//
//   std::string error;
//   std::string ref = debian_image_reference(&error);   // "oci:/var/cache/kiln-test/debian-12:12"
//   ASSERT_FALSE(ref.empty()) << error;
//   kiln build --image-alias debian=<ref> ...
//
// The first call in a process runs the script, which checks the cached
// image's digests and rebuilds it when it is missing, damaged or of an older
// recipe (about a minute, from the Debian mirror apt uses; concurrent test
// processes wait for one build). Later calls return the same answer.
// KILN_TEST_DEBIAN_IMAGE_DIR names another directory for the cache.
// Thread safety: safe to call from any thread.
#pragma once

#include <string>

namespace kiln::testing {

// The image's reference, or "" with `*error` saying why it could not be made.
std::string debian_image_reference(std::string* error);

}  // namespace kiln::testing
