// libsel4vm's x86 vCPU state through the C API: a vCPU from vm_create_vcpu is in 32-bit
// protected mode (flat 0x08/0x10, paging off); thread-context and VMCS writes before vcpu_start
// are what it starts with; reads after the run show what KVM holds; misuse gives -1.
#include <gtest/gtest.h>

#include "kvm_fixture.hpp"
#include "sel4vm/arch/guest_x86_context.h"
#include "sel4vm/arch/vmcs_fields.h"
#include "sel4vm/boot.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

seL4_Word vmcs(vm_vcpu_t *v, seL4_Word field) {
    seL4_Word value = ~0ull;
    EXPECT_EQ(vm_get_vmcs_field(v, field, &value), 0) << guestvm_last_error();
    return value;
}

TEST(X86Context, CreatedVcpuIsProtectedModeAndStartsWithWrittenState) {
    GUESTVM_REQUIRE_KVM(host);
    std::string serial;
    vm_t vm{};
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 4u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    opts.serial = [](int, const char *bytes, size_t len, void *cookie) {
        static_cast<std::string *>(cookie)->append(bytes, len);
    };
    opts.serial_cookie = &serial;
    ASSERT_EQ(guestvm_vm_init(&vm, "ctx", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(&vm, (std::string(GUESTVM_GUEST_DIR) + "/probe32.elf").c_str()),
              0);
    vm_vcpu_t *v = vm_create_vcpu(&vm, 100);
    ASSERT_NE(v, nullptr);

    // libsel4vm's initial x86 state.
    EXPECT_EQ(vmcs(v, VMX_GUEST_CR0) & 0x80000001u, 1u);  // PE on, PG off
    EXPECT_EQ(vmcs(v, VMX_GUEST_CS_SELECTOR), 0x08u);
    EXPECT_EQ(vmcs(v, VMX_GUEST_DS_SELECTOR), 0x10u);
    EXPECT_EQ(vmcs(v, VMX_GUEST_CS_LIMIT), 0xffffffffu);
    const seL4_Word cs_ar = vmcs(v, VMX_GUEST_CS_ACCESS_RIGHTS);
    EXPECT_EQ(cs_ar & (ACCESS_RIGHTS_P | ACCESS_RIGHTS_S | ACCESS_RIGHTS_DB | ACCESS_RIGHTS_G),
              ACCESS_RIGHTS_P | ACCESS_RIGHTS_S | ACCESS_RIGHTS_DB | ACCESS_RIGHTS_G);
    EXPECT_EQ(cs_ar & ACCESS_RIGHTS_L, 0u);
    EXPECT_EQ(vmcs(v, VMX_GUEST_EFER), 0u);

    // Written before start: the entry point and a register the guest does not touch early.
    ASSERT_EQ(vm_set_vmcs_field(v, VMX_GUEST_RIP, vm.entry), 0) << guestvm_last_error();
    ASSERT_EQ(vm_set_vmcs_field(v, VMX_GUEST_GDTR_BASE, 0x520), 0);
    ASSERT_EQ(vm_set_vmcs_field(v, VMX_GUEST_GDTR_LIMIT, 31), 0);
    ASSERT_EQ(vm_set_thread_context_reg(v, VCPU_CONTEXT_R12, 0x1234abcd), 0);
    seL4_VCPUContext ctx{};
    ASSERT_EQ(vm_get_thread_context(v, &ctx), 0);
    EXPECT_EQ(ctx.r12, 0x1234abcdu);
    ctx.ebp = 0xbeef;
    ASSERT_EQ(vm_set_thread_context(v, ctx), 0);
    seL4_Word ebp = 0;
    ASSERT_EQ(vm_get_thread_context_reg(v, VCPU_CONTEXT_EBP, &ebp), 0);
    EXPECT_EQ(ebp, 0xbeefu);
    EXPECT_EQ(vmcs(v, VMX_GUEST_RIP), vm.entry);
    EXPECT_EQ(vmcs(v, VMX_GUEST_GDTR_BASE), 0x520u);

    // Misuse: NULLs, unknown registers and fields with no KVM meaning.
    seL4_Word w = 0;
    EXPECT_EQ(vm_get_vmcs_field(nullptr, VMX_GUEST_RIP, &w), -1);
    EXPECT_EQ(vm_get_vmcs_field(v, VMX_GUEST_RIP, nullptr), -1);
    EXPECT_EQ(vm_set_vmcs_field(v, VMX_CONTROL_EXCEPTION_BITMAP, 0), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("no KVM equivalent"), std::string::npos);
    EXPECT_EQ(vm_get_vmcs_field(v, VMX_DATA_EXIT_QUALIFICATION, &w), -1);
    EXPECT_EQ(vm_get_vmcs_field(v, 0x12345, &w), -1);
    EXPECT_EQ(vm_set_thread_context_reg(v, static_cast<vcpu_context_reg_t>(99), 1), -1);
    EXPECT_EQ(vm_get_thread_context_reg(v, VCPU_CONTEXT_EAX, nullptr), -1);
    EXPECT_EQ(vm_get_thread_context(v, nullptr), -1);
    EXPECT_EQ(vm_set_thread_context(nullptr, ctx), -1);

    ASSERT_EQ(vm_assign_vcpu_target(v, 0), 0);
    ASSERT_EQ(vcpu_start(v), 0) << guestvm_last_error();
    EXPECT_EQ(vm_run(&vm), 0) << guestvm_last_error();
    // It ran from the written RIP in protected mode: the guest saw paging off and CS 0x08.
    EXPECT_EQ(guestvm_vm_stop_reason(&vm, nullptr, 0), GUESTVM_STOP_POWER_OFF);
    EXPECT_EQ(serial, "probe32: cr0.pe=1 cr0.pg=0 cs=0x08 entry=elf\n");
    // Read after the run: still protected mode, R12 untouched by the guest, RIP moved on.
    EXPECT_EQ(vmcs(v, VMX_GUEST_CR0) & 0x80000001u, 1u);
    ASSERT_EQ(vm_get_thread_context(v, &ctx), 0);
    EXPECT_EQ(ctx.r12, 0x1234abcdu);
    EXPECT_NE(vmcs(v, VMX_GUEST_RIP), vm.entry);
    EXPECT_EQ(vm_destroy(&vm), 0);
}

}  // namespace
}  // namespace guestvm
