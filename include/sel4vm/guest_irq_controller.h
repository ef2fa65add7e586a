/*
 * guestvm — libsel4vm's guest_irq_controller.h: the VM's interrupt controller and guest IRQs.
 * On guestvm the controller is KVM's in-kernel one (two 8259 PICs on ports 0x20-0x21, 0xa0-0xa1
 * and 0x4d0-0x4d1, an IOAPIC at 0xfec00000, a local APIC per vCPU at 0xfee00000), without KVM's
 * 8254 timer: the PIT's ports 0x40-0x43 and 0x61 stay the VMM's. IRQ n is GSI n: PIC pin n for
 * 0..15 and IOAPIC pin n for 0..23.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Called when the guest acknowledges an interrupt registered with vm_register_irq. */
typedef void (*irq_ack_fn_t)(vm_vcpu_t *vcpu, int irq, void *cookie);

/**
 * Creates the VM's interrupt controller. As in libsel4vm it may come after vm_create_vcpu
 * (guestvm creates each KVM vCPU when it is first started or its registers are first used, and
 * KVM takes its irqchip only before that); IRQs registered with vm_register_irq before it take
 * effect now. Calling it again is harmless.
 * @return 0 on success, -1 on error (NULL/uninitialised vm, a vCPU already started or its
 *         registers or VMCS fields already read or written)
 */
int vm_create_default_irq_controller(vm_t *vm);

/**
 * Raises an edge on guest interrupt line `irq` (high, then low).
 * @param vcpu  any vCPU of the VM (the controller routes the interrupt)
 * @return 0 on success, -1 on error (NULL vcpu, no interrupt controller, irq outside 0..23)
 */
int vm_inject_irq(vm_vcpu_t *vcpu, int irq);

/**
 * Drives guest interrupt line `irq` to `irq_level` (0 low, anything else high).
 * @return 0 on success, -1 on error (as vm_inject_irq)
 */
int vm_set_irq_level(vm_vcpu_t *vcpu, int irq, int irq_level);

/**
 * Registers `ack_fn` for guest interrupt line `irq`: it is called with `vcpu`, `irq` and `cookie`
 * when the guest acknowledges the line (an EOI at the PIC or the IOAPIC) after the VMM raised it
 * (vm_inject_irq, vm_set_irq_level, a built-in device) or while the VMM holds it high, on the
 * thread running vm_run, as libsel4vm calls it from its run loop. Acknowledgements of a line
 * nobody raised are dropped, and those repeated before the call runs make one call. A device
 * model re-raises the line from it while it still has work. Registering again
 * replaces the callback; a NULL `ack_fn` removes it. Made before vm_create_default_irq_controller
 * (as camkes-vm does), the registration is recorded and takes effect with the controller.
 * @return 0 on success, -1 on error (NULL vcpu, irq outside 0..23)
 */
int vm_register_irq(vm_vcpu_t *vcpu, int irq, irq_ack_fn_t ack_fn, void *cookie);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop
