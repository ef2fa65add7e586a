#include <gtest/gtest.h>

#include "guestvm/exits.hpp"

namespace guestvm {
namespace {

IoHandler answer(std::uint8_t value, int *calls = nullptr) {
    return [value, calls](ExitContext &, IoAccess &a) {
        if (calls) ++*calls;
        if (!a.is_write) a.data[0] = value;
        return ExitAction::kContinue;
    };
}

TEST(RangeBus, FindsByBinarySearch) {
    IoBus bus(0xffff);
    ASSERT_TRUE(bus.insert(0x3f8, 8, "uart", answer(1)));
    ASSERT_TRUE(bus.insert(0x600, 4, "pcall", answer(2)));
    ASSERT_TRUE(bus.insert(0x80, 1, "post", answer(3)));
    EXPECT_EQ(bus.find(0x3f8)->name, "uart");
    EXPECT_EQ(bus.find(0x3ff)->name, "uart");
    EXPECT_EQ(bus.find(0x400), nullptr);
    EXPECT_EQ(bus.find(0x3f7), nullptr);
    EXPECT_EQ(bus.find(0x603)->name, "pcall");
    EXPECT_EQ(bus.find(0x604), nullptr);
    EXPECT_EQ(bus.find(0x80)->name, "post");
    EXPECT_EQ(bus.find(0), nullptr);
    EXPECT_EQ(bus.size(), 3u);
}

TEST(RangeBus, RefusesOverlapEmptyAndOverflow) {
    IoBus bus(0xffff);
    ASSERT_TRUE(bus.insert(0x100, 0x10, "a", answer(0)));
    EXPECT_EQ(bus.insert(0x10f, 1, "b", answer(0)).error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(bus.insert(0xf0, 0x11, "c", answer(0)).error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(bus.insert(0x0, 0x1000, "d", answer(0)).error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(bus.insert(0x200, 0, "e", answer(0)).error().code(), Errc::kInvalidArgument);
    EXPECT_EQ(bus.insert(0xffff, 2, "f", answer(0)).error().code(), Errc::kInvalidArgument);
    EXPECT_EQ(bus.insert(0x10000, 1, "g", answer(0)).error().code(), Errc::kInvalidArgument);
    EXPECT_EQ(bus.insert(0x300, 1, "h", nullptr).error().code(), Errc::kInvalidArgument);
    EXPECT_TRUE(bus.insert(0xffff, 1, "last", answer(0)));
    EXPECT_TRUE(bus.insert(0xf0, 0x10, "adjacent-below", answer(0)));
    EXPECT_TRUE(bus.insert(0x110, 0x10, "adjacent-above", answer(0)));
    MmioBus mmio(~std::uint64_t{0});
    EXPECT_TRUE(mmio.insert(~std::uint64_t{0} - 0xfff, 0x1000, "top",
                            [](ExitContext &, MmioAccess &) { return ExitAction::kContinue; }));
    EXPECT_EQ(mmio.insert(~std::uint64_t{0} - 0xf, 0x20, "wrap",
                          [](ExitContext &, MmioAccess &) { return ExitAction::kContinue; })
                  .error()
                  .code(),
              Errc::kInvalidArgument);
}

TEST(RangeBus, DispatchCallsTheHandlerOrReportsUnhandled) {
    IoBus bus(0xffff);
    int calls = 0;
    ASSERT_TRUE(bus.insert(0x3f8, 8, "uart", answer(0x60, &calls)));
    ExitContext ctx;
    std::uint8_t byte = 0;
    IoAccess in{0x3fd, 1, false, std::span(&byte, 1)};
    EXPECT_EQ(dispatch_io(bus, ctx, in), ExitAction::kContinue);
    EXPECT_EQ(byte, 0x60);
    EXPECT_EQ(calls, 1);
    IoAccess other{0x1234, 1, true, std::span(&byte, 1)};
    EXPECT_EQ(dispatch_io(bus, ctx, other), ExitAction::kUnhandled);
    EXPECT_EQ(calls, 1);
}

TEST(RangeBus, RemoveForgetsTheRange) {
    IoBus bus(0xffff);
    ASSERT_TRUE(bus.insert(0x40, 4, "pit", answer(0)));
    ASSERT_TRUE(bus.remove(0x40));
    EXPECT_EQ(bus.find(0x41), nullptr);
    EXPECT_EQ(bus.remove(0x40).error().code(), Errc::kNotFound);
}

TEST(ExitCounts, TotalExcludesPlatformCallSubset) {
    ExitCounts c;
    c.by_kind[static_cast<std::size_t>(ExitKind::kIo)] = 10;
    c.by_kind[static_cast<std::size_t>(ExitKind::kPlatformCall)] = 4;
    c.by_kind[static_cast<std::size_t>(ExitKind::kHlt)] = 1;
    EXPECT_EQ(c.total(), 11u);
    ExitCounts d = c;
    d += c;
    EXPECT_EQ(d[ExitKind::kIo], 20u);
}

}  // namespace
}  // namespace guestvm
