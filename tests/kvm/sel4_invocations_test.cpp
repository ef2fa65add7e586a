// seL4_TCB_* invoked on the TCB capabilities of C-API vCPUs, with seL4's error codes for every
// misuse: null, deleted and wrongly typed capabilities, out-of-range counts and priorities.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_vm_util.h"
#include "sel4vm/guestvm.h"
#include "sel4vm/sel4_compat.h"

namespace guestvm {
namespace {

constexpr seL4_Word kAll = sizeof(seL4_UserContext) / sizeof(seL4_Word);

TEST(Sel4Invocations, SuspendReadWriteResumeOnARunningVcpu) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = std::make_unique<vm_t>();
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    ASSERT_EQ(guestvm_vm_init(vm.get(), "sel4", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(vm.get(), test::guest_path("spin").c_str()), 0);
    vm_vcpu_t *v = vm_create_vcpu(vm.get(), 100);
    ASSERT_NE(v, nullptr);
    const seL4_CPtr tcb = vm_get_vcpu_tcb(v);

    seL4_UserContext ctx{};
    EXPECT_EQ(seL4_TCB_Suspend(tcb), seL4_IllegalOperation);  // never started
    ASSERT_EQ(vm_assign_vcpu_target(v, 0), 0);
    ASSERT_EQ(vcpu_start(v), 0) << guestvm_last_error();
    std::thread runner([&] { EXPECT_EQ(vm_run(vm.get()), 0); });

    // Let the guest get past its first instruction (which clears RAX), then suspend and read.
    for (int i = 0; i < 500 && ctx.rax == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ASSERT_EQ(seL4_TCB_ReadRegisters(tcb, true, 0, kAll, &ctx), seL4_NoError);  // suspends
        if (ctx.rax == 0) {
            ASSERT_EQ(seL4_TCB_Resume(tcb), seL4_NoError);
        }
    }
    ASSERT_NE(ctx.rax, 0u) << "the guest never ran";
    EXPECT_GT(ctx.rip, vm->entry);
    EXPECT_LT(ctx.rip, vm->entry + 16);  // inside the spin loop
    const seL4_Word counted = ctx.rax;
    seL4_UserContext again{};
    ASSERT_EQ(seL4_TCB_ReadRegisters(tcb, false, 0, kAll, &again), seL4_NoError);
    EXPECT_EQ(again.rax, counted);  // suspended: the count stands still
    EXPECT_EQ(again.fs_base, 0u);

    // Write RAX only (count 4: rip, rsp, rflags, rax) and resume: the guest counts on from it.
    ctx.rax = 1ull << 40;
    ASSERT_EQ(seL4_TCB_WriteRegisters(tcb, false, 0, 4, &ctx), seL4_NoError);
    ASSERT_EQ(seL4_TCB_ReadRegisters(tcb, false, 0, kAll, &again), seL4_NoError);
    EXPECT_EQ(again.rax, 1ull << 40);
    ASSERT_EQ(seL4_TCB_Resume(tcb), seL4_NoError);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_EQ(seL4_TCB_Suspend(tcb), seL4_NoError);
    ASSERT_EQ(seL4_TCB_ReadRegisters(tcb, false, 0, kAll, &again), seL4_NoError);
    EXPECT_GT(again.rax, 1ull << 40);
    EXPECT_EQ(seL4_TCB_Resume(tcb), seL4_NoError);
    EXPECT_EQ(seL4_TCB_Resume(tcb), seL4_NoError);  // running already: no effect

    EXPECT_EQ(seL4_TCB_SetPriority(tcb, seL4_CapNull, 200), seL4_NoError);
    EXPECT_EQ(seL4_TCB_SetPriority(tcb, seL4_CapNull, 256), seL4_RangeError);
    EXPECT_EQ(seL4_TCB_ReadRegisters(tcb, false, 0, kAll + 1, &ctx), seL4_RangeError);
    EXPECT_EQ(seL4_TCB_WriteRegisters(tcb, false, 0, kAll + 1, &ctx), seL4_RangeError);
    EXPECT_EQ(seL4_TCB_ReadRegisters(tcb, false, 0, kAll, nullptr), seL4_InvalidArgument);

    // Null and wrongly typed capabilities.
    EXPECT_EQ(seL4_TCB_Suspend(seL4_CapNull), seL4_InvalidCapability);
    EXPECT_EQ(seL4_TCB_Resume(seL4_CapNull), seL4_InvalidCapability);
    EXPECT_EQ(seL4_TCB_SetPriority(seL4_CapNull, seL4_CapNull, 1), seL4_InvalidCapability);
    const seL4_CPtr vcpu_cap = vm_get_vcpu(vm.get(), 0);
    ASSERT_NE(vcpu_cap, seL4_CapNull);
    EXPECT_EQ(seL4_TCB_Suspend(vcpu_cap), seL4_IllegalOperation);
    EXPECT_EQ(seL4_TCB_ReadRegisters(vcpu_cap, false, 0, 1, &ctx), seL4_IllegalOperation);

    guestvm_vm_stop(vm.get());
    runner.join();
    ASSERT_EQ(vm_destroy(vm.get()), 0);
    // Deleted with the VM.
    EXPECT_EQ(seL4_TCB_Suspend(tcb), seL4_InvalidCapability);
    EXPECT_EQ(seL4_TCB_ReadRegisters(tcb, false, 0, 1, &ctx), seL4_InvalidCapability);
    EXPECT_EQ(seL4_TCB_WriteRegisters(tcb, false, 0, 1, &ctx), seL4_InvalidCapability);
}

}  // namespace
}  // namespace guestvm
