// The serialized handler mode (VmConfig::serialize_handlers): exit handlers of different vCPUs
// and tasks posted to run() never overlap, and a handler that pauses or reads another vCPU
// does not wait for it to finish waiting for the turn the handler holds.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "guestvm/vm.hpp"
#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;

/// Counts calls that found another one still running.
struct OverlapDetector {
    std::atomic<bool> busy{false};
    std::atomic<int> overlaps{0};
    void enter() {
        if (busy.exchange(true)) overlaps.fetch_add(1);
        std::this_thread::sleep_for(20us);  // time for another vCPU's exit to arrive
    }
    void leave() { busy.store(false); }
};

/// Two vCPUs running pio_loop (an OUT to port 0x510 forever).
std::unique_ptr<Vm> two_looping_vcpus(std::shared_ptr<Host> host, bool serialized,
                                      std::uint64_t *entry) {
    MachineConfig config = test::config("serialized", 4 << 20, 2);
    config.serialize_handlers = serialized;
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return nullptr;
    auto image = read_file(test::guest_path("pio_loop"));
    EXPECT_TRUE(image);
    if (!image) return nullptr;
    auto loaded = load_elf((*vm)->vspace(), *image);
    EXPECT_TRUE(loaded);
    if (!loaded) return nullptr;
    *entry = loaded->entry.rip;
    return std::move(*vm);
}

TEST(SerializedHandlers, HandlersAndTasksNeverOverlap) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = two_looping_vcpus(host, true, &entry);
    ASSERT_TRUE(vm);
    OverlapDetector detector;
    std::atomic<int> exits[2] = {0, 0};
    ASSERT_TRUE(vm->add_io_handler(0x510, 4, "loop", [&](ExitContext &ctx, IoAccess &) {
        EXPECT_TRUE(ctx.vm->holds_handler_turn());
        detector.enter();
        exits[ctx.vcpu_id].fetch_add(1);
        detector.leave();
        return ExitAction::kContinue;
    }));
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    ASSERT_TRUE(vm->start_core(1, entry, 0));
    EXPECT_FALSE(vm->set_serialize_handlers(false));  // fixed once a vCPU runs
    std::atomic<int> tasks{0};
    std::jthread poster([&] {
        while (exits[0] < 300 || exits[1] < 300 || tasks < 50) {
            (void)vm->post([&] {
                EXPECT_TRUE(vm->holds_handler_turn());
                detector.enter();
                tasks.fetch_add(1);
                detector.leave();
            });
            std::this_thread::sleep_for(200us);
        }
        vm->stop();
    });
    StopInfo info = vm->run();
    EXPECT_EQ(info.reason, StopReason::kRequested) << info.message;
    EXPECT_GE(exits[0], 300);
    EXPECT_GE(exits[1], 300);
    EXPECT_GE(tasks, 50);
    EXPECT_EQ(detector.overlaps, 0);
}

// The same handlers in the parallel mode do overlap (what the serialized mode prevents), and
// nothing holds a turn.
TEST(SerializedHandlers, TheParallelModeRunsHandlersAtOnce) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = two_looping_vcpus(host, false, &entry);
    ASSERT_TRUE(vm);
    OverlapDetector detector;
    std::atomic<int> exits{0};
    ASSERT_TRUE(vm->add_io_handler(0x510, 4, "loop", [&](ExitContext &ctx, IoAccess &) {
        EXPECT_FALSE(ctx.vm->holds_handler_turn());
        detector.enter();
        exits.fetch_add(1);
        detector.leave();
        return ExitAction::kContinue;
    }));
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    ASSERT_TRUE(vm->start_core(1, entry, 0));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (detector.overlaps == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    vm->stop();
    vm->run();
    EXPECT_GT(detector.overlaps, 0) << exits << " exits, none overlapped in 10 s";
}

// A handler holding the turn reads, writes, suspends and resumes the other vCPU, which may be
// waiting for that turn: each returns at once instead of timing out after 5 s.
TEST(SerializedHandlers, AHandlerMayPauseAVcpuWaitingForItsTurn) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = two_looping_vcpus(host, true, &entry);
    ASSERT_TRUE(vm);
    std::atomic<int> exits[2] = {0, 0};
    std::atomic<int> done{0};
    std::atomic<long> slowest_us{0};
    ASSERT_TRUE(vm->add_io_handler(0x510, 4, "loop", [&](ExitContext &ctx, IoAccess &) {
        const int n = exits[ctx.vcpu_id].fetch_add(1);
        if (ctx.vcpu_id != 0 || n % 50 != 49 || done >= 20) return ExitAction::kContinue;
        // Let vCPU 1 reach its next exit and queue for the turn this handler holds.
        std::this_thread::sleep_for(200us);
        Vcpu &other = *ctx.vm->vcpu(1);
        const auto t0 = std::chrono::steady_clock::now();
        auto regs = other.registers();
        EXPECT_TRUE(regs) << regs.error().message();
        if (regs) {
            EXPECT_TRUE(other.set_registers(*regs));
        }
        EXPECT_TRUE(other.suspend());
        EXPECT_TRUE(other.resume());
        const long us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
        if (us > slowest_us) slowest_us = us;
        done.fetch_add(1);
        return ExitAction::kContinue;
    }));
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    ASSERT_TRUE(vm->start_core(1, entry, 0));
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (done < 20 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    const int vcpu1_before = exits[1];
    std::this_thread::sleep_for(50ms);
    const bool vcpu1_goes_on = exits[1] > vcpu1_before;
    vm->stop();
    StopInfo info = vm->run();
    EXPECT_EQ(info.reason, StopReason::kRequested) << info.message;
    EXPECT_EQ(done, 20);
    EXPECT_LT(slowest_us, 1'000'000) << "a pause waited for the turn its caller held";
    EXPECT_TRUE(vcpu1_goes_on) << "vCPU 1 did not run on after the resumes";
}

}  // namespace
}  // namespace guestvm
