#include "common/mountinfo.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(Mountinfo, ParsesFieldsAroundOptionalOnes) {
  auto mounts = parse_mountinfo(
      "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
      "35 22 0:30 / /sys/fs/cgroup/memory rw,nosuid master:7 shared:9 - cgroup cgroup rw,memory\n"
      "40 22 0:40 / /var/tmp/with\\040space rw - overlay overlay rw,lowerdir=a:b\n"
      "garbage line\n");
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_EQ(mounts[0].mount_point, "/");
  EXPECT_EQ(mounts[0].fstype, "ext4");
  EXPECT_EQ(mounts[0].source, "/dev/vda");
  EXPECT_EQ(mounts[1].mount_point, "/sys/fs/cgroup/memory");
  EXPECT_EQ(mounts[1].fstype, "cgroup");
  EXPECT_EQ(mounts[1].super_options, "rw,memory");
  EXPECT_EQ(mounts[1].mount_options, "rw,nosuid");
  EXPECT_EQ(mounts[2].mount_point, "/var/tmp/with space");
  EXPECT_EQ(mounts[2].super_options, "rw,lowerdir=a:b");
}

TEST(Mountinfo, UnescapesOnlyOctalTriples) {
  EXPECT_EQ(unescape_mountinfo("a\\040b\\011c\\012d\\134e"), "a b\tc\nd\\e");
  EXPECT_EQ(unescape_mountinfo("x\\09y"), "x\\09y");  // not an octal triple: kept
  EXPECT_EQ(unescape_mountinfo("end\\04"), "end\\04");
}

TEST(Mountinfo, ReadsThisProcessesTable) {
  auto mounts = read_mountinfo();
  ASSERT_TRUE(mounts.has_value()) << mounts.error().to_string();
  bool root = false;
  for (const auto& m : *mounts) root = root || m.mount_point == "/";
  EXPECT_TRUE(root);
  EXPECT_FALSE(read_mountinfo("/nonexistent/mountinfo").has_value());
}

}  // namespace
}  // namespace kiln
