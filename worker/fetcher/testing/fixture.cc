#include "worker/fetcher/testing/fixture.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

namespace kiln::fetcher::testing {

void FetcherTest::SetUp() {
  temp_.emplace("kiln-fetcher-test");
  tmp_ = temp_->path();
  rootfs_ = new_dir("rootfs");
}

void FetcherTest::TearDown() {
  temp_.reset();
}

std::string FetcherTest::new_dir(const std::string& name) {
  std::string dir = tmp_ + "/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

Result<ImageConfig> FetcherTest::fetch_layers(const std::vector<Layer>& layers, nlohmann::json config) {
  OciLayoutWriter oci(tmp_ + "/image");
  oci.write_index({{oci.add_image(layers, std::move(config)), "latest"}});
  return fetch("oci:" + tmp_ + "/image");
}

Result<ImageConfig> FetcherTest::fetch(const std::string& reference) {
  auto fetcher = make_fetcher();
  return fetcher->fetch(
      [this](ProgressKind kind, std::string_view line) {
        progress_kinds_.push_back(kind);
        progress_lines_.emplace_back(line);
      },
      rootfs_, reference, {});
}

std::string FetcherTest::tree(const std::string& root) {
  std::vector<std::string> lines;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    std::string rel = e.path().lexically_relative(root).string();
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    if (S_ISLNK(st.st_mode)) {
      lines.push_back("l " + rel + " -> " + std::filesystem::read_symlink(e.path()).string());
    } else if (S_ISDIR(st.st_mode)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%o", st.st_mode & 07777);
      lines.push_back("d " + rel + " " + mode);
    } else {
      lines.push_back("f " + rel + " " + read_file(e.path().string()));
    }
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace kiln::fetcher::testing
