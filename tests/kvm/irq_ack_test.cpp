// Interrupt acknowledgements: the guest's EOI of a line the VMM raised reaches the VMM
// (Vm::set_irq_ack_handler and libsel4vm's vm_register_irq). The uart_irq guest takes three UART
// interrupts (IRQ 4, each ended with an EOI) and waits for IRQ 3, which these tests raise from
// the first acknowledgement of IRQ 4, as a device model raising a line from its ack callback
// would. Acknowledgements that come before the handler runs are one call, so IRQ 4's three
// EOIs make one to three calls; IRQ 3's one EOI makes one.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_irq_controller.h"
#include "sel4vm/guest_vm_exits.h"
#include "sel4vm/guestvm.h"
#include "support/process_usage.hpp"
#include "support/watchdog.hpp"

namespace guestvm {
namespace {

const std::vector<std::string> kUartIrqLines{
    "uart_irq: PIC and LAPIC ready",         "uart_irq: interrupt 1 iir=0x02",
    "uart_irq: interrupt 2 iir=0x02",        "uart_irq: interrupt 3 iir=0x02",
    "uart_irq: 3 interrupts on vector 0x24", "uart_irq: waiting for IRQ 3",
    "uart_irq: IRQ 3 taken on vector 0x23"};

/// Waits up to 5 s for `counter` to reach `want` (acknowledgements arrive on another thread).
bool reaches(const std::atomic<int> &counter, int want) {
    for (int i = 0; i < 500 && counter.load() < want; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return counter.load() >= want;
}

/// A VM with the irqchip and `guest` loaded; `entry` receives its entry state (start it after
/// registering handlers: acknowledgements can come as soon as it runs).
std::unique_ptr<Vm> irq_vm(std::shared_ptr<Host> host, test::Capture &capture, EntryState &entry,
                           const std::string &guest = "uart_irq") {
    MachineConfig config = test::config("irq-ack", 64ull << 20);
    config.serial_sink = capture.sink();
    config.irqchip = true;
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return nullptr;
    auto loaded = test::load_guest(**vm, guest);
    if (!loaded) return nullptr;
    entry = *loaded;
    return std::move(*vm);
}

TEST(IrqAck, AcknowledgedRaisesReachTheHandler) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture capture;
    EntryState entry;
    auto vm = irq_vm(host, capture, entry);
    ASSERT_TRUE(vm);
    std::atomic<int> irq4{0}, irq3{0}, wrong_line{0};
    Vm &v = *vm;
    ASSERT_TRUE(v.set_irq_ack_handler(4, [&](int line) {
        if (line != 4) ++wrong_line;
        if (++irq4 == 1) {
            EXPECT_TRUE(v.pulse_irq(3));
        }
    }));
    ASSERT_TRUE(v.set_irq_ack_handler(3, [&](int line) {
        if (line != 3) ++wrong_line;
        ++irq3;
    }));
    ASSERT_TRUE(v.start_core(0, entry));
    StopInfo stop = v.run();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_EQ(capture.lines(), kUartIrqLines);
    EXPECT_TRUE(reaches(irq3, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // nothing more arrives
    EXPECT_GE(irq4.load(), 1);
    EXPECT_LE(irq4.load(), 3);
    EXPECT_EQ(irq3.load(), 1);
    EXPECT_EQ(wrong_line.load(), 0);
}

TEST(IrqAck, ARemovedHandlerIsNotCalledAndLinesAreChecked) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture capture;
    EntryState entry;
    auto vm = irq_vm(host, capture, entry);
    ASSERT_TRUE(vm);
    Vm &v = *vm;
    std::atomic<int> removed{0};
    // Line 5 gets a handler and loses it again; the guest never raises it anyway, but its
    // descriptors stay polled: a removed handler must not be called for anything.
    ASSERT_TRUE(v.set_irq_ack_handler(4, [&](int) { ++removed; }));
    ASSERT_TRUE(v.set_irq_ack_handler(4, nullptr));
    ASSERT_TRUE(v.set_irq_ack_handler(4, nullptr));  // removing twice is harmless
    ASSERT_TRUE(v.set_irq_ack_handler(5, [&](int) { ++removed; }));
    ASSERT_TRUE(v.set_irq_ack_handler(5, nullptr));
    ASSERT_TRUE(v.start_core(0, entry));
    // IRQ 3 raised by the VMM watching the console instead: the guest still finishes.
    std::jthread raiser([&](std::stop_token stop) {
        while (!stop.stop_requested() && !capture.has_complete_line("waiting for IRQ 3")) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (!stop.stop_requested()) {
            EXPECT_TRUE(v.pulse_irq(3));
        }
    });
    StopInfo stop = v.run();
    raiser = {};
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(removed.load(), 0);

    for (int bad : {-1, 24, 1000}) {
        auto r = v.set_irq_ack_handler(bad, [](int) {});
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
    }
    auto plain = build_machine(host, test::config("no-irqchip"));
    ASSERT_TRUE(plain);
    auto none = (*plain)->set_irq_ack_handler(4, [](int) {});
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), Errc::kBadState);
}

// ---- a hostile guest ----

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds since(Clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

// The guest writes a specific EOI for IRQ 4 to the PIC in a loop (~10^5 a second here) with
// every line masked; the VMM raises IRQ 4 every 20 ms and its acknowledgement handler takes
// 50 us. Only acknowledgements of those raises reach the handler, and stop and destroy stay
// prompt.
TEST(IrqAck, ForgedAcksOfALineNobodyRaisedAreDropped) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture capture;
    EntryState entry;
    auto vm = irq_vm(host, capture, entry, "forged_ack");
    ASSERT_TRUE(vm);
    Vm &v = *vm;
    std::atomic<int> calls{0};
    ASSERT_TRUE(v.set_irq_ack_handler(4, [&](int) {
        ++calls;
        std::this_thread::sleep_for(50us);
    }));
    const auto rss_before = test::process_usage().rss_kib;
    ASSERT_TRUE(v.start_core(0, entry));
    std::atomic<bool> returned{false};
    StopInfo stop;
    std::thread runner([&] {
        stop = v.run();
        returned = true;
    });
    const volatile std::uint64_t *forged = test::forged_counter(v, capture);
    EXPECT_NE(forged, nullptr) << capture.text();
    int raises = 0;
    for (auto t0 = Clock::now(); since(t0) < 2s; std::this_thread::sleep_for(20ms)) {
        EXPECT_TRUE(v.pulse_irq(4));
        ++raises;
    }
    const std::uint64_t writes = forged != nullptr ? *forged : 0;
    const int seen = calls.load();
    const auto rss_after = test::process_usage().rss_kib;
    EXPECT_GT(writes, 20000u) << "the guest hardly ran";
    EXPECT_GE(seen, 1) << "no raise was acknowledged";
    // A raise overlapping an acknowledgement may be acknowledged twice, never more.
    EXPECT_LE(seen, 2 * raises + 1) << writes << " forged EOIs, " << raises << " raises";
    EXPECT_LT(rss_after, rss_before + 32 * 1024) << "KiB";

    {
        test::Watchdog watchdog(20s, "Vm::stop with forged acknowledgements");
        auto t0 = Clock::now();
        v.stop();
        while (!returned.load() && since(t0) < 20s) std::this_thread::sleep_for(1ms);
        EXPECT_LT(since(t0), 1s) << "run() returned late";
        runner.join();
    }
    EXPECT_EQ(stop.reason, StopReason::kRequested) << stop.message;
    test::Watchdog watchdog(20s, "destroying the Vm with forged acknowledgements");
    auto t0 = Clock::now();
    vm.reset();
    EXPECT_LT(since(t0), 1s) << "destroying the Vm took long";
}

// ---- the C API ----

struct AckLog {
    vm_vcpu_t *vcpu = nullptr;
    std::vector<int> lines;
    std::vector<std::thread::id> threads;
    std::vector<vm_vcpu_t *> vcpus;
    std::vector<void *> cookies;
    int inject_result = 1;
};

void on_ack(vm_vcpu_t *vcpu, int irq, void *cookie) {
    auto *log = static_cast<AckLog *>(cookie);
    log->lines.push_back(irq);
    log->threads.push_back(std::this_thread::get_id());
    log->vcpus.push_back(vcpu);
    log->cookies.push_back(cookie);
    // The first UART interrupt is done: the device model raises the next line.
    if (irq == 4 && std::count(log->lines.begin(), log->lines.end(), 4) == 1) {
        log->inject_result = vm_inject_irq(vcpu, 3);
    }
}

void collect(int, const char *bytes, size_t len, void *cookie) {
    static_cast<std::string *>(cookie)->append(bytes, len);
}

TEST(IrqAck, VmRegisterIrqCallsBackOnVmRunsThread) {
    GUESTVM_REQUIRE_KVM(host);
    EXPECT_EQ(vm_register_irq(nullptr, 4, on_ack, nullptr), -1);
    vm_t vm{};
    std::string out;
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 64u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    opts.serial = collect;
    opts.serial_cookie = &out;
    ASSERT_EQ(guestvm_vm_init(&vm, "vm-register-irq", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(&vm, test::guest_path("uart_irq").c_str()), 0);
    vm_vcpu_t *no_pic = vm_create_vcpu(&vm, 100);
    ASSERT_NE(no_pic, nullptr);
    // No controller yet: recorded for when it comes (libsel4vm's order; tests/c/call_order_vmm.c
    // runs it), the line range still checked.
    EXPECT_EQ(vm_register_irq(no_pic, 4, on_ack, nullptr), 0) << guestvm_last_error();
    EXPECT_EQ(vm_register_irq(no_pic, 24, on_ack, nullptr), -1);
    EXPECT_EQ(vm_inject_irq(no_pic, 4), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("no interrupt controller"), std::string::npos);
    ASSERT_EQ(vm_destroy(&vm), 0);

    ASSERT_EQ(guestvm_vm_init(&vm, "vm-register-irq", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(&vm, test::guest_path("uart_irq").c_str()), 0);
    ASSERT_EQ(vm_create_default_irq_controller(&vm), 0) << guestvm_last_error();
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    ASSERT_NE(vcpu, nullptr);
    AckLog log;
    EXPECT_EQ(vm_register_irq(vcpu, 24, on_ack, &log), -1);
    EXPECT_EQ(vm_register_irq(vcpu, -1, on_ack, &log), -1);
    ASSERT_EQ(vm_register_irq(vcpu, 4, on_ack, &log), 0) << guestvm_last_error();
    ASSERT_EQ(vm_register_irq(vcpu, 3, on_ack, &log), 0);
    ASSERT_EQ(vm_register_irq(vcpu, 6, on_ack, &log), 0);
    ASSERT_EQ(vm_register_irq(vcpu, 6, nullptr, nullptr), 0);  // removed again
    ASSERT_EQ(vcpu_start(vcpu), 0) << guestvm_last_error();
    EXPECT_EQ(vm_run(&vm), 0) << guestvm_last_error();
    EXPECT_EQ(guestvm_vm_stop_reason(&vm, nullptr, 0), GUESTVM_STOP_POWER_OFF);
    // An acknowledgement of IRQ 4 came first (IRQ 3 is raised from it; the guest could not
    // have finished otherwise), then up to two more; IRQ 3's may arrive after the guest powered
    // off, when no run loop is left to call it, so it is seen at most once.
    ASSERT_GE(log.lines.size(), 1u);
    EXPECT_EQ(log.lines[0], 4);
    const auto fours = std::count(log.lines.begin(), log.lines.end(), 4);
    EXPECT_LE(fours, 3);
    EXPECT_LE(std::count(log.lines.begin(), log.lines.end(), 3), 1);
    EXPECT_EQ(static_cast<std::size_t>(fours + std::count(log.lines.begin(), log.lines.end(), 3)),
              log.lines.size());
    EXPECT_EQ(log.inject_result, 0);
    for (std::size_t i = 0; i < log.lines.size(); ++i) {
        EXPECT_EQ(log.threads[i], std::this_thread::get_id()) << "ack " << i;
        EXPECT_EQ(log.vcpus[i], vcpu);
        EXPECT_EQ(log.cookies[i], &log);
    }
    for (const auto &line : kUartIrqLines) {
        EXPECT_NE(out.find(line + "\n"), std::string::npos) << line << "\n" << out;
    }
    EXPECT_EQ(vm_destroy(&vm), 0);
}

}  // namespace
}  // namespace guestvm
