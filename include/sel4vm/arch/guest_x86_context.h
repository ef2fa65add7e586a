/*
 * guestvm — libsel4vm's x86 thread context and VMCS access: a vCPU's general-purpose registers
 * and its VT-x guest-state fields, mapped onto the KVM vCPU's registers (KVM_GET/SET_REGS and
 * _SREGS). Callable before vcpu_start (the vCPU then starts with what was written), from the
 * vCPU's own exit handlers, or while it is suspended (seL4_TCB_Suspend); on a running vCPU
 * guestvm pauses it briefly.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A general-purpose register of the thread context. */
typedef enum vcpu_context_reg {
    VCPU_CONTEXT_EAX = 0,
    VCPU_CONTEXT_EBX,
    VCPU_CONTEXT_ECX,
    VCPU_CONTEXT_EDX,
    VCPU_CONTEXT_ESI,
    VCPU_CONTEXT_EDI,
    VCPU_CONTEXT_EBP,
    VCPU_CONTEXT_R8,
    VCPU_CONTEXT_R9,
    VCPU_CONTEXT_R10,
    VCPU_CONTEXT_R11,
    VCPU_CONTEXT_R12,
    VCPU_CONTEXT_R13,
    VCPU_CONTEXT_R14,
    VCPU_CONTEXT_R15
} vcpu_context_reg_t;

/** Writes every register of the thread context. @return 0, or -1 (NULL vcpu, KVM error) */
int vm_set_thread_context(vm_vcpu_t *vcpu, seL4_VCPUContext context);
/** Writes one register. @return 0, or -1 (NULL vcpu, unknown register, KVM error) */
int vm_set_thread_context_reg(vm_vcpu_t *vcpu, vcpu_context_reg_t reg, seL4_Word value);
/** Reads the thread context. @return 0, or -1 (NULL vcpu or context, KVM error) */
int vm_get_thread_context(vm_vcpu_t *vcpu, seL4_VCPUContext *context);
/** Reads one register. @return 0, or -1 (NULL vcpu or value, unknown register, KVM error) */
int vm_get_thread_context_reg(vm_vcpu_t *vcpu, vcpu_context_reg_t reg, seL4_Word *value);

/**
 * Writes a VMCS guest-state field (<sel4vm/arch/vmcs_fields.h>): RIP, RSP, RFLAGS, CR0, CR3,
 * CR4, EFER, each segment's selector, base, limit and access rights (VMX format), GDTR and IDTR
 * base and limit. Any other field has no KVM equivalent here.
 * @return 0, or -1 (NULL vcpu, a field KVM cannot express, KVM refusing the state)
 */
int vm_set_vmcs_field(vm_vcpu_t *vcpu, seL4_Word field, seL4_Word value);
/** Reads a VMCS guest-state field as KVM holds it. @return 0, or -1 (as vm_set_vmcs_field) */
int vm_get_vmcs_field(vm_vcpu_t *vcpu, seL4_Word field, seL4_Word *value);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop
