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

int g_context_built = 0;
std::string context_line(std::string text) {
  ++g_context_built;
  return text;
}

Result<int> sum_with_context(int a, int b) {
  KILN_ASSIGN_OR_RETURN_CONTEXT(int x, parse_positive(a), context_line("reading a"));
  KILN_RETURN_IF_ERROR_CONTEXT(parse_positive(b), context_line("checking b"));
  return x + b;
}

TEST(Error, ContextMacrosAddContextOnlyOnFailure) {
  g_context_built = 0;
  EXPECT_EQ(sum_with_context(1, 2).value(), 3);
  EXPECT_EQ(g_context_built, 0) << "context was built although nothing failed";
  auto bad_a = sum_with_context(0, 2);
  ASSERT_FALSE(bad_a);
  EXPECT_EQ(bad_a.error().to_string(), "reading a: expected a positive number, got 0");
  auto bad_b = sum_with_context(1, -3);
  ASSERT_FALSE(bad_b);
  EXPECT_EQ(bad_b.error().to_string(), "checking b: expected a positive number, got -3");
  EXPECT_EQ(bad_b.error().kind(), ErrorKind::kInvalidArgument);
  EXPECT_EQ(g_context_built, 2);
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
