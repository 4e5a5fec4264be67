#include "tests/support/debian_image.h"

#include <cstdlib>
#include <mutex>

#include "tests/support/process.h"

namespace kiln::testing {

std::string debian_image_reference(std::string* error) {
  static std::once_flag once;
  static std::string reference;
  static std::string failure;
  std::call_once(once, [] {
    const char* dir = std::getenv("KILN_TEST_DEBIAN_IMAGE_DIR");
    std::vector<std::string> argv = {source_dir() + "/scripts/make-debian-image"};
    if (dir != nullptr && *dir != '\0') argv.emplace_back(dir);
    ProcessResult r = run_process(argv);
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    if (r.exit_code == 0 && out.starts_with("oci:")) {
      reference = out;
    } else {
      failure = "scripts/make-debian-image exited with " + std::to_string(r.exit_code) + ":\n" + r.err;
    }
  });
  if (reference.empty() && error != nullptr) *error = failure;
  return reference;
}

}  // namespace kiln::testing
