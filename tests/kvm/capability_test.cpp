// Invoking TCB and VCPU capabilities: real effects on real vCPUs; null, deleted and wrongly
// typed caps give errors.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "guestvm/invoke.hpp"
#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

using namespace std::chrono_literals;

// Polls the guest's RAX (the spin guest's counter) until it exceeds `floor`; bounded.
bool wait_for_rax_above(Vcpu &vcpu, std::uint64_t floor) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        auto regs = vcpu.registers();
        if (regs && regs->rax > floor) return true;
        std::this_thread::sleep_for(2ms);
    }
    return false;
}

TEST(Capabilities, NullDeletedAndWrongTypeAreErrors) {
    GUESTVM_REQUIRE_KVM(host);
    CPtr tcb, vcpu;
    {
        auto vm = build_machine(host, test::config("caps", 4 << 20, 1));
        ASSERT_TRUE(vm) << vm.error().message();
        tcb = (*vm)->vcpu(0)->tcb();
        vcpu = (*vm)->vcpu(0)->cap();
        CSpace &cs = host->cspace();
        EXPECT_EQ(tcb::suspend(cs, kNullCap).error().code(), Errc::kNullCapability);
        EXPECT_EQ(tcb::read_registers(cs, kNullCap).error().code(), Errc::kNullCapability);
        EXPECT_EQ(vcpu_object::read_state(cs, kNullCap).error().code(), Errc::kNullCapability);
        EXPECT_EQ(tcb::suspend(cs, vcpu).error().code(), Errc::kWrongCapType);
        EXPECT_EQ(tcb::set_priority(cs, vcpu, 1).error().code(), Errc::kWrongCapType);
        EXPECT_EQ(vcpu_object::read_state(cs, tcb).error().code(), Errc::kWrongCapType);
        // Valid invocations on a vCPU that has not started.
        auto regs = tcb::read_registers(cs, tcb);
        ASSERT_TRUE(regs) << regs.error().message();
        Registers r = *regs;
        r.rbx = 0x1234;
        ASSERT_TRUE(tcb::write_registers(cs, tcb, r));
        EXPECT_EQ(tcb::read_registers(cs, tcb)->rbx, 0x1234u);
        auto state = vcpu_object::read_state(cs, vcpu);
        ASSERT_TRUE(state);
        EXPECT_TRUE(vcpu_object::write_state(cs, vcpu, *state));
        EXPECT_TRUE(tcb::set_name(cs, tcb, "guest-core-0"));
        EXPECT_TRUE(tcb::set_priority(cs, tcb, 200));
        EXPECT_EQ((*vm)->vcpu(0)->priority(), 200);
        EXPECT_EQ(tcb::set_priority(cs, tcb, 256).error().code(), Errc::kInvalidArgument);
        EXPECT_TRUE(tcb::set_affinity(cs, tcb, 0));
        EXPECT_EQ(tcb::set_affinity(cs, tcb, 1 << 20).error().code(), Errc::kInvalidArgument);
        EXPECT_EQ(tcb::suspend(cs, tcb).error().code(), Errc::kBadState);  // not running
        EXPECT_EQ(tcb::resume(cs, tcb).error().code(), Errc::kBadState);
    }
    // The VM and its objects are gone: the caps are stale.
    EXPECT_EQ(tcb::suspend(host->cspace(), tcb).error().code(), Errc::kStaleCapability);
    EXPECT_EQ(vcpu_object::read_state(host->cspace(), vcpu).error().code(), Errc::kStaleCapability);
    // A new VM reuses the slots, but the old cptrs still name nothing.
    auto vm2 = build_machine(host, test::config("caps2", 4 << 20, 1));
    ASSERT_TRUE(vm2);
    EXPECT_NE((*vm2)->vcpu(0)->tcb(), tcb);
    EXPECT_EQ(tcb::read_registers(host->cspace(), tcb).error().code(), Errc::kStaleCapability);
    EXPECT_TRUE(tcb::read_registers(host->cspace(), (*vm2)->vcpu(0)->tcb()));
}

TEST(Capabilities, SuspendPausesTheGuestAndResumeContinuesWhereItStopped) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "spin", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    CSpace &cs = host->cspace();
    CPtr tcb = vm->vcpu(0)->tcb();
    ASSERT_TRUE(wait_for_rax_above(*vm->vcpu(0), 0));  // reading registers pauses it briefly
    ASSERT_TRUE(tcb::suspend(cs, tcb));
    EXPECT_TRUE(vm->vcpu(0)->online());  // suspended is still online
    EXPECT_EQ(vm->vcpu(0)->state(), VcpuState::kSuspended);
    auto first = tcb::read_registers(cs, tcb);
    ASSERT_TRUE(first);
    EXPECT_GT(first->rax, 0u);  // the guest counted
    std::this_thread::sleep_for(20ms);
    auto still = tcb::read_registers(cs, tcb);
    EXPECT_EQ(still->rax, first->rax);  // nothing ran while suspended
    EXPECT_EQ(still->rip, first->rip);
    // Change its state while it is paused: it continues from what we wrote.
    Registers r = *still;
    r.rax = 1'000'000'000;
    ASSERT_TRUE(tcb::write_registers(cs, tcb, r));
    ASSERT_TRUE(tcb::resume(cs, tcb));
    EXPECT_TRUE(wait_for_rax_above(*vm->vcpu(0), 1'000'000'000u));  // continued from our value
    EXPECT_TRUE(vm->vcpu(0)->online());
    vm->stop();
    EXPECT_EQ(vm->run().reason, StopReason::kRequested);
    EXPECT_FALSE(vm->vcpu(0)->online());
}

TEST(Capabilities, VcpuCapReadsArchitecturalStateOfARunningGuest) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "spin", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    ASSERT_TRUE(vm->start_core(0, entry, 0));
    auto s = vcpu_object::read_state(host->cspace(), vm->vcpu(0)->cap());
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(s->cr3, 0x1000u);
    EXPECT_NE(s->efer & (1u << 10), 0u);  // LMA: long mode active
    EXPECT_TRUE(s->cs.l);
    vm->stop();
    vm->run();
}

}  // namespace
}  // namespace guestvm
