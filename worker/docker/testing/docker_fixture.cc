#include "worker/docker/testing/docker_fixture.h"

#include <archive.h>
#include <archive_entry.h>

#include "tests/support/process.h"

namespace kiln::docker::testing {

// A tar of regular files, in memory.
std::string make_tar(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* user, const void* buffer, size_t length) -> la_ssize_t {
        static_cast<std::string*>(user)->append(static_cast<const char*>(buffer), length);
        return static_cast<la_ssize_t>(length);
      },
      nullptr);
  for (const auto& [path, content] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// The regular files of a tar: path -> content.
std::map<std::string, std::string> read_tar(const std::string& tar) {
  std::map<std::string, std::string> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_open_memory(a, tar.data(), tar.size());
  archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    std::string content(static_cast<std::size_t>(archive_entry_size(e)), '\0');
    if (!content.empty()) archive_read_data(a, content.data(), content.size());
    out[archive_entry_pathname(e)] = content;
  }
  archive_read_free(a);
  return out;
}

void DockerFixture::SetUp() {
  ASSERT_EQ(dockerd_.start_error(), "");
  image_dir_ = tmp_.path() + "/busybox";
  auto made =
      kiln::testing::run_process({kiln::testing::source_dir() + "/scripts/make-base-image", image_dir_});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(dockerd_.load_image("oci:" + image_dir_ + ":latest", kBusybox), "");
  auto client = DockerClient::create({.host = dockerd_.host()});
  ASSERT_TRUE(client) << client.error().to_string();
  client_ = std::move(*client);
}

}  // namespace kiln::docker::testing
