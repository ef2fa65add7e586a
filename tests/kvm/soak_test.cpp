// Hostile guests for a bounded time, round after round: forged interrupt acknowledgements, a
// console flood, CPU_ON churn and a HLT storm. Each must really be hostile (its counters show
// it), stop and destroy stay prompt, and at the end the process has the descriptors and threads
// it started with and has not grown.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "kvm_fixture.hpp"
#include "support/process_usage.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kRoundTime = 1500ms;

struct Hostile {
    const char *guest;
    int vcpus;
    bool irqchip;
};

constexpr Hostile kHostiles[] = {
    {"forged_ack", 1, true},     // EOIs for IRQ 4 in a loop; the VMM has a slow ack handler
    {"cli_noise", 1, false},     // floods the UART
    {"cpu_on_churn", 2, false},  // CPU_ON of a core that goes off at once, forever
    {"hlt_storm", 1, false},     // HLT with nothing to wake it: every one exits
};

/// One guest for kRoundTime; returns what the hostility counted.
std::uint64_t run_hostile(const std::shared_ptr<Host> &host, const Hostile &h) {
    std::atomic<std::uint64_t> serial_bytes{0};
    test::Capture capture;  // only the forged_ack guest's few lines (it says where it counts)
    MachineConfig config = test::config(h.guest, 16 << 20, h.vcpus);
    config.irqchip = h.irqchip;
    config.serial_sink = h.irqchip ? capture.sink() : [&](int, std::string_view bytes) {
        serial_bytes += bytes.size();
    };
    auto vm = build_machine(host, config);
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return 0;
    Vm &v = **vm;
    auto image = read_file(test::guest_path(h.guest));
    EXPECT_TRUE(image);
    if (!image) return 0;
    auto plan = plan_elf(*image, ram_ranges(v.vspace()));
    EXPECT_TRUE(plan && write_plan(v.vspace(), *plan));
    if (!plan) return 0;
    v.set_boot_mode(plan->entry.mode);
    std::atomic<int> acks{0};
    if (h.irqchip) {
        EXPECT_TRUE(v.set_irq_ack_handler(4, [&](int) {
            ++acks;
            std::this_thread::sleep_for(50us);
        }));
    }
    EXPECT_TRUE(v.start_core(0, plan->entry));
    std::atomic<bool> returned{false};
    std::thread runner([&] {
        v.run();
        returned = true;
    });
    const volatile std::uint64_t *forged = h.irqchip ? test::forged_counter(v, capture) : nullptr;
    int raises = 0;
    for (auto t0 = Clock::now(); Clock::now() - t0 < kRoundTime;
         std::this_thread::sleep_for(20ms)) {
        if (h.irqchip && v.pulse_irq(4)) ++raises;
    }
    std::uint64_t hostility = 0;
    if (h.irqchip) {
        EXPECT_LE(acks.load(), 2 * raises + 1) << "forged acknowledgements reached the VMM";
        EXPECT_NE(forged, nullptr) << capture.text();
        hostility = forged != nullptr ? *forged : 0;  // EOIs the guest wrote
    } else if (std::string(h.guest) == "cli_noise") {
        hostility = serial_bytes.load();
    } else if (std::string(h.guest) == "cpu_on_churn") {
        hostility = v.port_exits("platform-call");
    } else {
        hostility = v.exit_counts()[ExitKind::kHlt];
    }
    const auto stopping = Clock::now();
    v.stop();
    runner.join();
    EXPECT_LT(Clock::now() - stopping, 1s) << h.guest << ": stop took too long";
    const auto destroying = Clock::now();
    vm->reset();
    EXPECT_LT(Clock::now() - destroying, 1s) << h.guest << ": destroy took too long";
    return hostility;
}

TEST(Soak, HostileGuestsLeaveTheVmmAsTheyFoundIt) {
    GUESTVM_REQUIRE_KVM(host);
    for (const Hostile &h : kHostiles) run_hostile(host, h);  // warm-up: caches, thread pools
    const test::ProcessUsage before = test::process_usage();
    for (int round = 0; round < 2; ++round) {
        for (const Hostile &h : kHostiles) {
            SCOPED_TRACE(fmt::format("{} round {}", h.guest, round));
            const std::uint64_t hostility = run_hostile(host, h);
            EXPECT_GT(hostility, 1000u) << "the guest was not hostile enough to test anything";
        }
    }
    const test::ProcessUsage after = test::process_usage();
    EXPECT_EQ(after.fds, before.fds);
    EXPECT_EQ(after.threads, before.threads);
    EXPECT_LT(after.rss_kib, before.rss_kib + 64 * 1024) << "KiB";
}

}  // namespace
}  // namespace guestvm
