// The exit router without KVM: typed exits in, handlers called, routes out.
#include "core/exit_router.hpp"

#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <string>
#include <vector>

namespace guestvm {
namespace {

IoHandler answer(std::uint8_t value, int *calls = nullptr) {
    return [value, calls](ExitContext &, IoAccess &a) {
        if (calls) ++*calls;
        if (!a.is_write) a.data[0] = value;
        return ExitAction::kContinue;
    };
}

kvm::Exit io_exit(std::uint16_t port, bool write, std::span<std::uint8_t> data,
                  std::uint8_t size = 1, std::uint32_t count = 1) {
    return kvm::IoExit{port, size, write, count, data};
}

struct RouterTest : ::testing::Test {
    ExitRouter router{UnhandledIoPolicy::kStopVm, nullptr};
    ExitContext ctx{nullptr, nullptr, 2, std::nullopt};
};

TEST_F(RouterTest, PortExitReachesItsRangeAndIsCounted) {
    int calls = 0;
    ASSERT_TRUE(router.add_port_range(0x3f8, 8, "uart", answer(0x60, &calls)));
    ASSERT_TRUE(router.add_port_range(0x80, 1, "post", answer(1)));
    std::uint8_t byte = 0;
    auto exit = io_exit(0x3fd, false, std::span(&byte, 1));
    Route r = router.route(ctx, exit);
    EXPECT_EQ(r.action, ExitAction::kContinue);
    EXPECT_FALSE(r.stop);
    EXPECT_EQ(byte, 0x60);
    EXPECT_EQ(calls, 1);
    auto counts = router.port_exits();
    ASSERT_EQ(counts.size(), 2u);
    EXPECT_EQ(counts[0], (std::pair<std::string, std::uint64_t>{"post", 0}));
    EXPECT_EQ(counts[1], (std::pair<std::string, std::uint64_t>{"uart", 1}));
}

TEST_F(RouterTest, OverlappingRangesAreRefusedNamingBoth) {
    ASSERT_TRUE(router.add_port_range(0x100, 0x10, "a", answer(0)));
    auto clash = router.add_port_range(0x10f, 1, "b", answer(0));
    ASSERT_FALSE(clash);
    EXPECT_EQ(clash.error().code(), Errc::kAlreadyExists);
    EXPECT_NE(clash.error().message().find("b [0x10f"), std::string::npos);
    EXPECT_NE(clash.error().message().find("a [0x100"), std::string::npos);
    EXPECT_EQ(router.add_port_range(0xffff, 2, "wrap", answer(0)).error().code(),
              Errc::kInvalidArgument);
    EXPECT_EQ(router.add_port_range(0x300, 1, "null", nullptr).error().code(),
              Errc::kInvalidArgument);
    EXPECT_TRUE(router.add_port_range(0x110, 0x10, "adjacent", answer(0)));
}

TEST_F(RouterTest, StringIoGivesEachElementItsOwnSlice) {
    std::vector<std::uint16_t> seen;
    ASSERT_TRUE(router.add_port_range(0x500, 2, "words", [&](ExitContext &, IoAccess &a) {
        seen.push_back(static_cast<std::uint16_t>(a.data[0] | a.data[1] << 8));
        return ExitAction::kContinue;
    }));
    std::uint8_t data[6] = {1, 0, 2, 0, 3, 0};
    auto exit = io_exit(0x500, true, std::span(data, 6), 2, 3);
    EXPECT_EQ(router.route(ctx, exit).action, ExitAction::kContinue);
    EXPECT_EQ(seen, (std::vector<std::uint16_t>{1, 2, 3}));
}

TEST_F(RouterTest, UnhandledPortStopsTheVmNamingThePort) {
    std::uint8_t byte = 7;
    auto exit = io_exit(0x1234, true, std::span(&byte, 1));
    Route r = router.route(ctx, exit);
    EXPECT_EQ(r.action, ExitAction::kStopVcpu);
    ASSERT_TRUE(r.stop);
    EXPECT_EQ(r.stop->reason, StopReason::kUnhandledExit);
    EXPECT_EQ(r.stop->message, "unhandled port I/O: out to port 0x1234 (1 byte)");
    EXPECT_EQ(r.stop->vcpu, 2);
    EXPECT_TRUE(r.locate);
}

TEST(ExitRouter, AllOnesPolicyAnswersReadsAndIgnoresWrites) {
    ExitRouter router(UnhandledIoPolicy::kAllOnes, nullptr);
    ExitContext ctx;
    std::uint8_t data[4] = {};
    auto exit = io_exit(0x1234, false, std::span(data, 4), 4);
    Route r = router.route(ctx, exit);
    EXPECT_EQ(r.action, ExitAction::kContinue);
    EXPECT_FALSE(r.stop);
    for (auto b : data) EXPECT_EQ(b, 0xff);
}

TEST_F(RouterTest, UnhandledIoHandlerComesBeforeThePolicy) {
    int calls = 0;
    ASSERT_TRUE(router.set_unhandled_io_handler(answer(0x42, &calls)));
    std::uint8_t byte = 0;
    auto exit = io_exit(0x99, false, std::span(&byte, 1));
    EXPECT_EQ(router.route(ctx, exit).action, ExitAction::kContinue);
    EXPECT_EQ(byte, 0x42);
    EXPECT_EQ(calls, 1);
    ASSERT_TRUE(router.set_unhandled_io_handler(nullptr));
    EXPECT_TRUE(router.route(ctx, exit).stop);
}

TEST_F(RouterTest, AFailingHandlerStopsTheVmWithItsReason) {
    ASSERT_TRUE(router.add_port_range(0x3f8, 8, "uart", [](ExitContext &c, IoAccess &) {
        return c.fail(Error(Errc::kSystem, "disk on fire"));
    }));
    std::uint8_t byte = 0;
    auto exit = io_exit(0x3f8, true, std::span(&byte, 1));
    Route r = router.route(ctx, exit);
    ASSERT_TRUE(r.stop);
    EXPECT_EQ(r.stop->reason, StopReason::kError);
    EXPECT_EQ(r.stop->message, "handler for port 0x3f8 failed: disk on fire");
}

TEST_F(RouterTest, HandlersCannotChangeHandlers) {
    Status inner;
    ASSERT_TRUE(router.add_port_range(0x70, 2, "rtc", [&](ExitContext &, IoAccess &) {
        inner = router.add_port_range(0x72, 1, "more", answer(0));
        return ExitAction::kContinue;
    }));
    std::uint8_t byte = 0;
    auto exit = io_exit(0x70, true, std::span(&byte, 1));
    router.route(ctx, exit);
    ASSERT_FALSE(inner);
    EXPECT_EQ(inner.error().code(), Errc::kBadState);
}

TEST(ExitRouter, MmioGoesToMemoryThenTheUnhandledHandlerThenStops) {
    std::vector<std::string> order;
    ExitRouter router(UnhandledIoPolicy::kStopVm, [&](ExitContext &, MmioAccess &a) {
        order.push_back("memory");
        return a.addr == 0x1000 ? ExitAction::kContinue : ExitAction::kUnhandled;
    });
    ExitContext ctx;
    std::uint8_t data[4] = {};
    kvm::Exit owned = kvm::MmioExit{0x1000, 4, false, std::span(data, 4)};
    EXPECT_EQ(router.route(ctx, owned).action, ExitAction::kContinue);
    kvm::Exit stray = kvm::MmioExit{0xdead0000, 4, false, std::span(data, 4)};
    Route r = router.route(ctx, stray);
    ASSERT_TRUE(r.stop);
    EXPECT_EQ(r.stop->reason, StopReason::kUnhandledExit);
    EXPECT_EQ(r.stop->message, "unhandled MMIO read of 4 bytes at 0xdead0000");
    ASSERT_TRUE(router.set_unhandled_memory_handler([&](ExitContext &c, MmioAccess &) {
        order.push_back("unhandled");
        return c.fail(Error(Errc::kNotFound, "no device"));
    }));
    r = router.route(ctx, stray);
    ASSERT_TRUE(r.stop);
    EXPECT_EQ(r.stop->reason, StopReason::kError);
    EXPECT_EQ(r.stop->message, "memory fault handler for 0xdead0000 failed: no device");
    EXPECT_EQ(order, (std::vector<std::string>{"memory", "memory", "memory", "unhandled"}));
}

struct EventCase {
    kvm::Exit exit;
    ExitKind kind;
    bool stops;
    StopReason reason;
    bool locate;
};

TEST_F(RouterTest, EveryEventHasItsDefault) {
    const std::vector<EventCase> cases = {
        {kvm::HltExit{}, ExitKind::kHlt, false, {}, false},
        {kvm::ShutdownExit{}, ExitKind::kShutdown, true, StopReason::kGuestFault, true},
        {kvm::FailEntryExit{0x7}, ExitKind::kFailEntry, true, StopReason::kGuestFault, true},
        {kvm::InternalErrorExit{KVM_INTERNAL_ERROR_EMULATION}, ExitKind::kInternalError, true,
         StopReason::kGuestFault, true},
        {kvm::SystemEventExit{KVM_SYSTEM_EVENT_SHUTDOWN}, ExitKind::kSystemEvent, true,
         StopReason::kPowerOff, false},
        {kvm::SystemEventExit{KVM_SYSTEM_EVENT_RESET}, ExitKind::kSystemEvent, true,
         StopReason::kReset, false},
        {kvm::SystemEventExit{99}, ExitKind::kSystemEvent, true, StopReason::kGuestFault, true},
        {kvm::UnknownExit{1234}, ExitKind::kUnknown, true, StopReason::kUnhandledExit, true},
        {kvm::InterruptedExit{}, ExitKind::kInterrupted, false, {}, false},
    };
    for (auto c : cases) {
        SCOPED_TRACE(exit_kind_name(c.kind));
        EXPECT_EQ(exit_kind(c.exit), c.kind);
        Route r = router.route(ctx, c.exit);
        ASSERT_EQ(r.stop.has_value(), c.stops);
        if (!c.stops) {
            EXPECT_EQ(r.action, ExitAction::kContinue);
            continue;
        }
        EXPECT_EQ(r.action, ExitAction::kStopVcpu);
        EXPECT_EQ(r.stop->reason, c.reason) << r.stop->message;
        EXPECT_EQ(r.locate, c.locate);
        EXPECT_EQ(r.stop->vcpu, 2);
    }
}

TEST_F(RouterTest, EventHandlersOverrideOrDeferToTheDefault) {
    int hlts = 0;
    ASSERT_TRUE(
        router.set_event_handler(ExitEvent::Kind::kHlt, [&](ExitContext &, const ExitEvent &ev) {
            EXPECT_EQ(ev.kind, ExitEvent::Kind::kHlt);
            return ++hlts == 1 ? ExitAction::kStopVcpu : ExitAction::kUnhandled;
        }));
    kvm::Exit hlt = kvm::HltExit{};
    EXPECT_EQ(router.route(ctx, hlt).action, ExitAction::kStopVcpu);
    EXPECT_EQ(router.route(ctx, hlt).action, ExitAction::kContinue);  // deferred: resume
    ASSERT_TRUE(
        router.set_event_handler(ExitEvent::Kind::kShutdown, [](ExitContext &c, const ExitEvent &) {
            return c.fail(Error(Errc::kBadState, "cannot log the fault"));
        }));
    kvm::Exit shutdown = kvm::ShutdownExit{};
    Route r = router.route(ctx, shutdown);
    ASSERT_TRUE(r.stop);
    EXPECT_EQ(r.stop->reason, StopReason::kError);
    EXPECT_EQ(r.stop->message, "exit event handler failed: cannot log the fault");
    EXPECT_EQ(router.set_event_handler(static_cast<ExitEvent::Kind>(42), nullptr).error().code(),
              Errc::kInvalidArgument);
}

TEST(ExitCounts, TotalAddsEveryKind) {
    ExitCounts c;
    c.by_kind[static_cast<std::size_t>(ExitKind::kIo)] = 10;
    c.by_kind[static_cast<std::size_t>(ExitKind::kHlt)] = 1;
    EXPECT_EQ(c.total(), 11u);
    ExitCounts d = c;
    d += c;
    EXPECT_EQ(d[ExitKind::kIo], 20u);
    EXPECT_EQ(d.total(), 22u);
}

}  // namespace
}  // namespace guestvm
