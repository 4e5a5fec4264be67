#include "common/error.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace kiln {
namespace {

Result<int> parse_positive(int x) {
  if (x <= 0)
    return make_error(ErrorKind::kInvalidArgument, "expected a positive number, got " + std::to_string(x));
  return x;
}

Result<int> doubled(int x) {
  KILN_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

Status check_both(int a, int b) {
  KILN_RETURN_IF_ERROR(with_context(parse_positive(a), "first argument"));
  KILN_RETURN_IF_ERROR(with_context(parse_positive(b), "second argument"));
  return {};
}

TEST(Error, AssignOrReturnPassesValuesAndErrors) {
  EXPECT_EQ(doubled(21).value(), 42);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "expected a positive number, got -1");
}

TEST(Error, ContextIsPrintedOutermostFirst) {
  auto s = check_both(1, 0);
  ASSERT_FALSE(s.has_value());
  Error e = s.error();
  e.with_context("while checking the job");
  EXPECT_EQ(e.to_string(), "while checking the job: second argument: expected a positive number, got 0");
  EXPECT_TRUE(check_both(1, 2).has_value());
}

TEST(Error, ErrnoErrorsMapKinds) {
  EXPECT_EQ(errno_error("open x", ENOENT).error().kind(), ErrorKind::kNotFound);
  EXPECT_EQ(errno_error("mkdir x", EEXIST).error().kind(), ErrorKind::kAlreadyExists);
  EXPECT_EQ(errno_error("umount x", EBUSY).error().kind(), ErrorKind::kBusy);
  EXPECT_EQ(errno_error("read x", EIO).error().kind(), ErrorKind::kIo);
  EXPECT_EQ(errno_error("open x", ENOENT).error().message(), "open x: No such file or directory");
}

TEST(Error, KindNames) {
  EXPECT_EQ(error_kind_name(ErrorKind::kBusy), "busy");
  EXPECT_EQ(error_kind_name(ErrorKind::kNotFound), "not found");
}

}  // namespace
}  // namespace kiln
