/*
 * guestvm — libsel4vm's guest_memory.h: memory fault results and callbacks.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

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

/** A frame to map into guest memory: its capability, the rights the guest gets, the
 *  guest-physical address it goes to and its size (2^size_bits bytes). On guestvm the
 *  capability names a frame made with guestvm_frame_alloc (<sel4vm/guestvm.h>). */
typedef struct vm_frame {
    seL4_CPtr cptr;
    seL4_CapRights_t rights;
    uintptr_t vaddr;
    size_t size_bits;
} vm_frame_t;

/** Gives the frame that backs guest-physical `addr` (vm_map_reservation calls it from a
 *  reservation's start, advancing by each frame's size). */
typedef vm_frame_t (*memory_map_iterator_fn)(uintptr_t addr, void *cookie);

typedef struct vm_memory_reservation vm_memory_reservation_t;
typedef struct vm_memory_reservation_cookie vm_memory_reservation_cookie_t;

/**
 * Reserves guest-physical [addr, addr+size) with no memory behind it: every guest access there
 * calls `fault_callback` on the faulting vCPU's thread; the get_vcpu_fault_* accessors of
 * <sel4vm/guest_vcpu_fault.h> describe the access and set_vcpu_fault_data answers a read.
 * FAULT_HANDLED/FAULT_IGNORE/FAULT_RESTART continue the guest, FAULT_UNHANDLED goes to the
 * unhandled-memory callback, FAULT_ERROR stops the VM (vm_run returns -1). Any alignment is
 * accepted, as in libsel4vm: the reservation takes the whole pages the range touches, and an
 * access in those pages outside [addr, addr+size) goes to the unhandled-memory callback, as
 * libsel4vm sends an address no reservation holds (so no other reservation or RAM can share a
 * page with this one).
 * @return a handle, or NULL on error (NULL vm or callback, empty or wrapping range, its pages
 *         overlapping RAM, another reservation or an anonymous pool)
 */
vm_memory_reservation_t *vm_reserve_memory_at(vm_t *vm, uintptr_t addr, size_t size,
                                              memory_fault_callback_fn fault_callback,
                                              void *cookie);

/**
 * Declares guest-physical [addr, addr+size) an anonymous pool: vm_reserve_anon_memory places
 * reservations in it and vm_ram_register takes RAM from it (as in libsel4vm). Nothing else may
 * be registered or reserved there.
 * @return 0 on success, -1 on error (NULL vm, empty or misaligned range, one past
 *         guest-physical space (2^46), overlapping RAM, a reservation or another pool)
 */
int vm_memory_make_anon(vm_t *vm, uintptr_t addr, size_t size);

/**
 * Reserves `size` bytes (rounded up to pages) at the lowest `align`-aligned free place of an
 * anonymous pool (vm_memory_make_anon), trying each pool in the order they were declared;
 * accesses go to `fault_callback` as with vm_reserve_memory_at.
 * @param align  a power of two; below 4096 means 4096
 * @param addr   receives the reservation's guest-physical address
 * @return a handle, or NULL on error (NULL vm, callback or addr, bad alignment, no room)
 */
vm_memory_reservation_t *vm_reserve_anon_memory(vm_t *vm, size_t size, size_t align,
                                                memory_fault_callback_fn fault_callback,
                                                void *cookie, uintptr_t *addr);

/**
 * Backs a reservation with frames: `map_iterator(addr, cookie)` is called for addr = the
 * reservation's start, then start + each returned frame's size, until the reservation's pages
 * are covered. Each frame must have vaddr == where the pages continue (addr rounded down to a
 * page for an unaligned reservation, as libsel4vm's iterators give it), an address aligned to
 * its size, the size of
 * the object its capability names, and read rights; all of them either write rights (the
 * guest reads and writes the memory) or none (the guest reads it, and its writes still reach
 * the reservation's fault callback). From then on the guest uses the frames' memory directly;
 * the VMM sees it through guestvm_frame_data, and a frame may back several reservations (and
 * VMs) at once. vm_free_reserved_memory unmaps it again.
 * @return 0 on success, -1 on error (NULL argument, a null or non-frame capability, a frame
 *         that does not fit, mixed rights, already mapped)
 */
int vm_map_reservation(vm_t *vm, vm_memory_reservation_t *reservation,
                       memory_map_iterator_fn map_iterator, void *cookie);

/**
 * vm_map_reservation with `num_frames` frames of 2^frame_size_bits bytes each, in order, all
 * with read and write rights.
 * @return as vm_map_reservation (also -1 when the frames do not cover the reservation)
 */
int vm_map_reservation_frames(vm_t *vm, vm_memory_reservation_t *reservation, seL4_CPtr *frames,
                              size_t num_frames, size_t frame_size_bits);

/**
 * Sets up the VM's reservation bookkeeping. vm_init already does it; calling it again is
 * harmless.
 * @return 0 on success, -1 on error (NULL or uninitialised vm)
 */
int vm_memory_init(vm_t *vm);

/**
 * Releases a reservation (an anonymous one goes back to its pool), unmapping its frames if it
 * was mapped; guest accesses there become unhandled memory faults.
 * @return 0 on success, -1 on error (NULL arguments, not a reservation of this VM)
 */
int vm_free_reserved_memory(vm_t *vm, vm_memory_reservation_t *reservation);

/** Where a reservation lies (NULL reservation: *addr and *size become 0). */
void vm_get_reservation_memory_region(vm_memory_reservation_t *reservation, uintptr_t *addr,
                                      size_t *size);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop
