// VM lifecycle: stop from other threads at any time, fatal exits, unhandled exits, two VMs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;

TEST(Lifecycle, StopFromAnotherThreadKicksASpinningGuest) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "spin", 2, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    ASSERT_TRUE(vm->start_core(1, entry, 1));
    std::thread stopper([&] {
        std::this_thread::sleep_for(30ms);
        vm->stop({StopReason::kRequested, "test"});
    });
    StopInfo stop = vm->run();
    stopper.join();
    EXPECT_EQ(stop.reason, StopReason::kRequested);
    EXPECT_EQ(stop.message, "test");
    EXPECT_FALSE(vm->vcpu(0)->online());
}

TEST(Lifecycle, RunWithNothingStartedReturnsAtOnce) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = build_machine(host, test::config("idle", 4 << 20, 2));
    ASSERT_TRUE(vm);
    EXPECT_EQ((*vm)->run().reason, StopReason::kAllVcpusOff);
}

TEST(Lifecycle, DestroyWhileRunningJoinsEverything) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "spin", 4, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    for (int c = 0; c < 4; ++c) ASSERT_TRUE(vm->start_core(c, entry, c));
    std::this_thread::sleep_for(10ms);
    vm.reset();  // no run(): the destructor stops, kicks and joins
    SUCCEED();
}

struct FaultCase {
    const char *guest;
    StopReason reason;
    const char *text;
};

class Faults : public ::testing::TestWithParam<FaultCase> {};

TEST_P(Faults, StopTheVmWithAClearReason) {
    GUESTVM_REQUIRE_KVM(host);
    const FaultCase &fc = GetParam();
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, fc.guest, 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    StopInfo stop = vm->run();
    EXPECT_EQ(stop.reason, fc.reason) << stop.message;
    EXPECT_NE(stop.message.find(fc.text), std::string::npos) << stop.message;
    EXPECT_EQ(stop.vcpu, 0);
}

INSTANTIATE_TEST_SUITE_P(Guests, Faults,
                         ::testing::Values(FaultCase{"bad_port", StopReason::kUnhandledExit,
                                                     "port 0x1234"},
                                           FaultCase{"mmio_touch", StopReason::kUnhandledExit,
                                                     "MMIO read of 8 bytes at 0xd0000000"},
                                           FaultCase{"halt", StopReason::kPowerOff, "SYSTEM_OFF"}),
                         [](const auto &info) { return std::string(info.param.guest); });

TEST(Lifecycle, TripleFaultIsAGuestFault) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "triple_fault", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    StopInfo stop = vm->run();
    // Nested KVM reports a triple fault as SHUTDOWN or as an emulation failure.
    EXPECT_EQ(stop.reason, StopReason::kGuestFault) << stop.message;
    EXPECT_TRUE(stop.message.find("triple fault") != std::string::npos) << stop.message;
}

TEST(Lifecycle, MmioHandlerServesTheGuest) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "mmio_touch", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    std::atomic<std::uint32_t> seen{0};
    ASSERT_TRUE(
        vm->add_mmio_handler(0xd0000000, 0x1000, "test-dev", [](ExitContext &, MmioAccess &a) {
            for (std::size_t i = 0; i < a.data.size(); ++i)
                a.data[i] = static_cast<std::uint8_t>(0x11 * (i + 1));
            return ExitAction::kContinue;
        }));
    ASSERT_TRUE(vm->add_io_handler(0x511, 4, "report", [&](ExitContext &, IoAccess &a) {
        std::uint32_t v = 0;
        std::memcpy(&v, a.data.data(), a.data.size());
        seen = v;
        return ExitAction::kContinue;
    }));
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    StopInfo stop = vm->run();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_EQ(seen.load(), 0x44332211u);  // the low 4 bytes the handler returned
    EXPECT_EQ(vm->exit_counts()[ExitKind::kMmio], 1u);
}

TEST(Lifecycle, HandlersRefuseOverlapAndAllOnesPolicyAnswersUnknownPorts) {
    GUESTVM_REQUIRE_KVM(host);
    MachineConfig config = test::config("policy");
    config.unhandled_io = UnhandledIoPolicy::kAllOnes;
    auto vm = build_machine(host, config);
    ASSERT_TRUE(vm);
    auto overlap = (*vm)->add_io_handler(
        0x3fc, 4, "clash", [](ExitContext &, IoAccess &) { return ExitAction::kContinue; });
    ASSERT_FALSE(overlap);
    EXPECT_EQ(overlap.error().code(), Errc::kAlreadyExists);
    auto image = read_file(test::guest_path("bad_port"));
    ASSERT_TRUE(image);
    auto loaded = load_elf((*vm)->vspace(), *image);
    ASSERT_TRUE(loaded);
    ASSERT_TRUE((*vm)->start_core(0, loaded->entry.rip, 0));
    std::this_thread::sleep_for(30ms);  // the guest ignores the port and halts in a loop
    EXPECT_FALSE((*vm)->stopped());
    (*vm)->stop();
    EXPECT_EQ((*vm)->run().reason, StopReason::kRequested);
}

TEST(Lifecycle, EventHandlersSeeHltAndCanOverrideTheFaultDefault) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto halting = test::make_vm(host, "halt", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(halting);
    std::atomic<int> hlts{0};
    ASSERT_TRUE(halting->set_event_handler(ExitEvent::Kind::kHlt,
                                           [&](ExitContext &ctx, const ExitEvent &ev) {
                                               EXPECT_EQ(ev.kind, ExitEvent::Kind::kHlt);
                                               EXPECT_EQ(ctx.vcpu->id().value(), 0);
                                               ++hlts;
                                               return ExitAction::kContinue;
                                           }));
    ASSERT_TRUE(halting->start_core(0, entry, 0));
    EXPECT_EQ(halting->run().reason, StopReason::kPowerOff);
    EXPECT_EQ(hlts.load(), 1);

    // A handler that defers keeps the default; one that answers kError stops with kError.
    for (bool defer : {true, false}) {
        auto faulting = test::make_vm(host, "triple_fault", 1, nullptr, &entry, 4 << 20);
        ASSERT_TRUE(faulting);
        std::atomic<int> seen{0};
        EventHandler h = [&, defer](ExitContext &, const ExitEvent &) {
            ++seen;
            return defer ? ExitAction::kUnhandled : ExitAction::kError;
        };
        ASSERT_TRUE(faulting->set_event_handler(ExitEvent::Kind::kShutdown, h));
        ASSERT_TRUE(faulting->set_event_handler(ExitEvent::Kind::kInternalError, h));
        ASSERT_TRUE(faulting->start_core(0, entry, 0));
        StopInfo stop = faulting->run();
        EXPECT_EQ(seen.load(), 1);
        EXPECT_EQ(stop.reason, defer ? StopReason::kGuestFault : StopReason::kError)
            << stop.message;
    }
}

TEST(Lifecycle, TwoVmsInOneProcessEachNumberVcpusFromZero) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture a_out, b_out;
    std::uint64_t entry = 0;
    auto a = test::make_vm(host, "demo", 2, &a_out, &entry);
    auto b = test::make_vm(host, "demo", 3, &b_out, &entry);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->vcpu(0)->id().value(), 0);
    EXPECT_EQ(b->vcpu(0)->id().value(), 0);
    EXPECT_NE(a->vcpu_cap(0), b->vcpu_cap(0));  // one CSpace: caps are distinct process-wide
    EXPECT_EQ(b->vcpu_cap(2), b->vcpu(2)->cap());
    EXPECT_EQ(a->vcpu_cap(2), kNullCap);
    ASSERT_TRUE(a->start_core(0, entry, 0));
    ASSERT_TRUE(b->start_core(0, entry, 0));
    std::thread ta([&] { EXPECT_EQ(a->run().reason, StopReason::kPowerOff); });
    EXPECT_EQ(b->run().reason, StopReason::kPowerOff);
    ta.join();
    EXPECT_TRUE(a_out.contains("2 of 2 cores came up"));
    EXPECT_TRUE(b_out.contains("3 of 3 cores came up"));
}

TEST(Lifecycle, BadConfigsAreRefused) {
    GUESTVM_REQUIRE_KVM(host);
    EXPECT_EQ(build_machine(nullptr, {}).error().code(), Errc::kInvalidArgument);
    EXPECT_EQ(build_machine(host, test::config("neg", 4 << 20, -1)).error().code(),
              Errc::kInvalidArgument);
    EXPECT_EQ(
        build_machine(host, test::config("many", 4 << 20, host->max_vcpus() + 1)).error().code(),
        Errc::kInvalidArgument);
    EXPECT_EQ(build_machine(host, test::config("tiny", 4096)).error().code(),
              Errc::kInvalidArgument);
    EXPECT_EQ(build_machine(host, test::config("odd", (4 << 20) + 1)).error().code(),
              Errc::kInvalidArgument);
}

}  // namespace
}  // namespace guestvm
