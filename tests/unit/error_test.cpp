#include "guestvm/error.hpp"

#include <gtest/gtest.h>

namespace guestvm {
namespace {

Result<int> half(int v) {
    if (v % 2 != 0) return make_error(Errc::kInvalidArgument, "odd");
    return v / 2;
}

Result<int> quarter(int v) {
    GUESTVM_TRY_ASSIGN(h, half(v));
    GUESTVM_TRY_ASSIGN(q, half(h));
    return q;
}

TEST(Error, TryPropagatesTheFirstError) {
    EXPECT_EQ(*quarter(8), 2);
    auto r = quarter(6);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
    EXPECT_EQ(r.error().message(), "odd");
}

TEST(Error, ErrnoErrorNamesTheCallAndTheErrno) {
    auto e = errno_error("KVM_CREATE_VM", ENOMEM).error();
    EXPECT_EQ(e.code(), Errc::kSystem);
    EXPECT_NE(e.message().find("KVM_CREATE_VM"), std::string::npos);
    EXPECT_NE(e.message().find("ENOMEM"), std::string::npos);
}

TEST(Error, ContextPrefixes) {
    Error e(Errc::kNotFound, "inner");
    Error wrapped = std::move(e).context("outer");
    EXPECT_EQ(wrapped.message(), "outer: inner");
    EXPECT_EQ(errc_name(Errc::kStaleCapability), "stale-capability");
}

}  // namespace
}  // namespace guestvm
