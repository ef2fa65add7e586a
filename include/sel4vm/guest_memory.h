/*
 * guestvm — libsel4vm's guest_memory.h: memory fault results and callbacks.
 */
#pragma once

#include <sel4vm/sel4_compat.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vm vm_t;
typedef struct vm_vcpu vm_vcpu_t;

/** What a memory fault handler did with an access. */
typedef enum memory_fault_result {
    FAULT_HANDLED,   /**< handled: advance the guest past the access */
    FAULT_UNHANDLED, /**< left unhandled */
    FAULT_RESTART,   /**< restart the faulting access */
    FAULT_IGNORE,    /**< ignore the access and advance */
    FAULT_ERROR      /**< handling failed */
} memory_fault_result_t;

typedef memory_fault_result_t (*memory_fault_callback_fn)(vm_t *vm, vm_vcpu_t *vcpu,
                                                          uintptr_t fault_addr, size_t fault_length,
                                                          void *cookie);

typedef struct vm_memory_reservation vm_memory_reservation_t;
typedef struct vm_memory_reservation_cookie vm_memory_reservation_cookie_t;

/**
 * Reserves guest-physical [addr, addr+size) with no memory behind it: every guest access there
 * calls `fault_callback` on the faulting vCPU's thread; the get_vcpu_fault_* accessors of
 * <sel4vm/guest_vcpu_fault.h> describe the access and set_vcpu_fault_data answers a read.
 * FAULT_HANDLED/FAULT_IGNORE/FAULT_RESTART continue the guest, FAULT_UNHANDLED goes to the
 * unhandled-memory callback, FAULT_ERROR stops the VM (vm_run returns -1).
 * @return a handle, or NULL on error (NULL vm or callback, misaligned, overlapping RAM or
 *         another reservation)
 */
vm_memory_reservation_t *vm_reserve_memory_at(vm_t *vm, uintptr_t addr, size_t size,
                                              memory_fault_callback_fn fault_callback,
                                              void *cookie);

/**
 * Releases a reservation; guest accesses there become unhandled memory faults.
 * @return 0 on success, -1 on error (NULL arguments, not a reservation of this VM)
 */
int vm_free_reserved_memory(vm_t *vm, vm_memory_reservation_t *reservation);

/** Where a reservation lies (NULL reservation: *addr and *size become 0). */
void vm_get_reservation_memory_region(vm_memory_reservation_t *reservation, uintptr_t *addr,
                                      size_t *size);

#ifdef __cplusplus
}
#endif
