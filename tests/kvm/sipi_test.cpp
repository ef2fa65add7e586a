// Application processors started by the guest through its local APIC (INIT, then SIPI), the way
// Linux starts the CPUs the ACPI MADT lists: the util interface shows each one assigned to its
// core from the start and online only once the guest has started it.
#include <gtest/gtest.h>

#include <mutex>

#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

struct Observed {
    std::mutex mu;
    std::vector<VcpuState> states;  // vCPU 1's transitions
};

std::unique_ptr<Vm> sipi_vm(std::shared_ptr<Host> host, const std::string &guest,
                            test::Capture &capture, Observed &seen, std::uint64_t &entry) {
    MachineConfig config = test::config("sipi", 16 << 20, 2);
    config.irqchip = true;
    config.serial_sink = capture.sink();
    config.vcpu_state_observer = [&seen](Vcpu &v, VcpuState s) {
        if (v.id().value() != 1) return;
        std::lock_guard lock(seen.mu);
        seen.states.push_back(s);
    };
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return nullptr;
    auto image = read_file(test::guest_path(guest));
    EXPECT_TRUE(image);
    if (!image) return nullptr;
    auto loaded = load_elf((*vm)->vspace(), *image);
    EXPECT_TRUE(loaded);
    if (!loaded) return nullptr;
    entry = loaded->entry.rip;
    return std::move(*vm);
}

TEST(Sipi, TheGuestStartsItsApplicationProcessorAndTheUtilInterfaceFollows) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture capture;
    Observed seen;
    std::uint64_t entry = 0;
    auto vm = sipi_vm(host, "sipi_probe", capture, seen, entry);
    ASSERT_TRUE(vm);
    // vCPU 1 is given core 1 and waits before core 0 (the first unassigned vCPU) starts.
    Vcpu *ap = vm->vcpu(1);
    ASSERT_NE(ap, nullptr);
    ASSERT_TRUE(vm->assign_target(*ap, 1));
    ASSERT_TRUE(vm->await_sipi(1));
    EXPECT_EQ(ap->state(), VcpuState::kWaiting);
    EXPECT_FALSE(ap->online());
    EXPECT_EQ(ap->target_core(), 1);
    EXPECT_EQ(vm->vcpu_for_target(1), ap);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    // A second start of the same core is refused, whichever way.
    EXPECT_FALSE(vm->await_sipi(1));
    EXPECT_FALSE(vm->start_core(1, entry, 0));
    StopInfo stop = vm->run();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message << "\n" << capture.text();
    EXPECT_TRUE(capture.contains("ap: up")) << capture.text();
    EXPECT_TRUE(capture.contains("sipi_probe: AP up")) << capture.text();
    std::lock_guard lock(seen.mu);
    ASSERT_GE(seen.states.size(), 2u);
    EXPECT_EQ(seen.states[0], VcpuState::kWaiting);
    EXPECT_EQ(seen.states[1], VcpuState::kRunning);  // online once the guest's INIT came
}

TEST(Sipi, AProcessorNobodyStartsStaysOfflineAndStopsWithTheVm) {
    GUESTVM_REQUIRE_KVM(host);
    test::Capture capture;
    Observed seen;
    std::uint64_t entry = 0;
    auto vm = sipi_vm(host, "tiny", capture, seen, entry);
    ASSERT_TRUE(vm);
    // vCPU 1 waits before core 0 runs: tiny powers off at once.
    ASSERT_TRUE(vm->assign_target(*vm->vcpu(1), 1));
    ASSERT_TRUE(vm->await_sipi(1));
    EXPECT_EQ(vm->vcpu(1)->state(), VcpuState::kWaiting);
    EXPECT_FALSE(vm->vcpu(1)->online());
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    StopInfo stop = vm->run();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_FALSE(vm->vcpu(1)->online());
    std::lock_guard lock(seen.mu);
    EXPECT_EQ(seen.states, (std::vector<VcpuState>{VcpuState::kWaiting, VcpuState::kStopped}));
}

TEST(Sipi, WaitingForSipiNeedsTheIrqchip) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = build_machine(host, test::config("no-irqchip", 4 << 20, 2));
    ASSERT_TRUE(vm);
    auto refused = (*vm)->await_sipi(1);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("irqchip"), std::string::npos);
    // The failed claim is undone: core 1 can still be started the usual way.
    EXPECT_EQ((*vm)->vcpu_for_target(1), nullptr);
}

}  // namespace
}  // namespace guestvm
