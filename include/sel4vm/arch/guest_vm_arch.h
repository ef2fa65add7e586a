/*
 * guestvm — libsel4vm's x86 guest_vm_arch.h: the architecture parts of vm_t and vm_vcpu_t.
 * guestvm keeps the fields VMM code reads true (the port handlers, the unhandled-port callback)
 * and leaves the rest empty: KVM's in-kernel PIC and local APICs are not libsel4vm's emulated
 * ones (i8259_gs, lapic: NULL), KVM holds the guest state (guest_state: NULL), exits are
 * dispatched by guestvm (vmexit_handlers: all NULL, as libsel4vm leaves them too) and VMCALL
 * does not reach the VMM (no vmcall handlers).
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/arch/ioports.h>
#include <sel4vm/arch/vmexit_reasons.h>
#include <sel4vm/sel4_compat.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Where a guest finds its IOAPIC and local APIC (KVM's in-kernel ones, once created). */
#define IO_APIC_DEFAULT_PHYS_BASE 0xfec00000
#define APIC_DEFAULT_PHYS_BASE 0xfee00000

typedef struct vm_lapic vm_lapic_t;
typedef struct i8259 i8259_t;
typedef struct guest_state guest_state_t;

typedef int (*vmexit_handler_ptr)(vm_vcpu_t *vcpu);
/** A handler for the VMCALL whose EAX matches its token (see <sel4vm/arch/vmcall.h>). */
typedef int (*vmcall_handler)(vm_vcpu_t *vcpu);
/* libsel4vm names the struct after the function type, which C allows and C++ does not: C++
 * sees the same struct under another tag. */
#ifdef __cplusplus
typedef struct guestvm_vmcall_handler_entry {
#else
typedef struct vmcall_handler {
#endif
    int token;
    vmcall_handler func;
} vmcall_handler_t;

struct vm_arch {
    vmexit_handler_ptr vmexit_handlers[VM_EXIT_REASON_NUM]; /**< all NULL */
    vmcall_handler_t *vmcall_handlers;                      /**< NULL */
    unsigned int vmcall_num_handlers;                       /**< 0 */
    uintptr_t guest_pd; /**< 0: a vCPU from vm_create_vcpu starts with paging off */
    unhandled_ioport_callback_fn unhandled_ioport_callback; /**< as registered */
    void *unhandled_ioport_callback_cookie;                 /**< as registered */
    vm_io_port_list_t ioport_list; /**< the port handlers, sorted by start */
    i8259_t *i8259_gs;             /**< NULL */
};

struct vm_vcpu_arch {
    guest_state_t *guest_state; /**< NULL */
    vm_lapic_t *lapic;          /**< NULL */
};

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop
