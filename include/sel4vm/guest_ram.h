/*
 * guestvm — libsel4vm's guest_ram.h: guest RAM.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Called by vm_ram_touch for each page-bounded piece of the range.
 * @param guest_addr  guest-physical address of the piece
 * @param vmm_vaddr   where the VMM sees it
 * @param size        bytes in the piece
 * @param offset      the piece's offset from the start of the touched range
 * @return 0 to go on, non-zero to stop (vm_ram_touch then returns -1)
 */
typedef int (*ram_touch_callback_fn)(vm_t *vm, uintptr_t guest_addr, void *vmm_vaddr, size_t size,
                                     size_t offset, void *cookie);

/** A ram_touch_callback_fn that copies guest memory into the buffer `cookie` at `offset`. */
int vm_guest_ram_read_callback(vm_t *vm, uintptr_t guest_addr, void *vaddr, size_t size,
                               size_t offset, void *buf);
/** A ram_touch_callback_fn that copies the buffer `cookie` at `offset` into guest memory. */
int vm_guest_ram_write_callback(vm_t *vm, uintptr_t guest_addr, void *vaddr, size_t size,
                                size_t offset, void *buf);

/**
 * Calls `touch_callback` for each page-bounded piece of guest RAM [addr, addr+size). The whole
 * range is checked first: if any byte of it is not RAM, no callback runs.
 * @return 0 on success, -1 on error (NULL arguments, range not all RAM, a callback failed)
 */
int vm_ram_touch(vm_t *vm, uintptr_t addr, size_t size, ram_touch_callback_fn touch_callback,
                 void *cookie);

/**
 * Registers `bytes` (rounded up to pages) of RAM. With anonymous pools (vm_memory_make_anon)
 * it comes from them, as in libsel4vm; without any, from the lowest free page-aligned
 * guest-physical address at or above 1 MiB (skipping the MMIO hole at 3-4 GiB).
 * @return the address, or 0 on error (guestvm never places RAM from here at 0)
 */
uintptr_t vm_ram_register(vm_t *vm, size_t bytes);

/**
 * Registers `bytes` of RAM at guest-physical `start`, backed by fresh host memory. As in
 * libsel4vm any alignment is accepted: the whole pages the range touches become RAM (camkes-vm
 * registers [0x500, 0x80000), which maps [0, 0x80000)), and vm->mem.ram_regions records the
 * range as given.
 * @param vm       an initialised VM
 * @param start    guest-physical address
 * @param bytes    size
 * @param untyped  ignored on guestvm (host memory backs all RAM)
 * @return 0 on success, -1 on error (NULL vm, empty or wrapping range, its pages overlapping an
 *         existing region, no KVM memory slot left)
 */
int vm_ram_register_at(vm_t *vm, uintptr_t start, size_t bytes, bool untyped);

/**
 * Registers RAM at [start, start+bytes) backed by the caller's frames: `map_iterator` gives
 * them as for vm_map_reservation (so the memory can be shared, e.g. a dataport). A guest access
 * the frames do not allow (a write to read-only frames) is an error that stops the VM.
 * @return 0 on success, -1 on error (as vm_ram_register_at and vm_map_reservation; nothing is
 *         left registered)
 */
int vm_ram_register_at_custom_iterator(vm_t *vm, uintptr_t start, size_t bytes,
                                       memory_map_iterator_fn map_iterator, void *cookie);

/*
 * RAM bookkeeping, as libsel4vm keeps it in vm->mem.ram_regions (sorted, adjacent regions with
 * the same state merged): which registered RAM the VMM has handed out (to an image, a device
 * buffer, ...). It does not change the guest's access to the memory.
 */

/**
 * The largest RAM region not marked allocated, preferring regions that end below 4 GiB (a
 * vCPU starts in 32-bit mode).
 * @return 0 and *addr, *size; -1 when every region is allocated (or NULL arguments)
 */
int vm_ram_find_largest_free_region(vm_t *vm, uintptr_t *addr, size_t *size);

/** Marks [start, start+bytes) allocated if it lies inside one unallocated region; otherwise
 *  nothing happens (as in libsel4vm). */
void vm_ram_mark_allocated(vm_t *vm, uintptr_t start, size_t bytes);

/** Allocates `bytes` from the first unallocated region large enough. @return its address, or
 *  0 when none is */
uintptr_t vm_ram_allocate(vm_t *vm, size_t bytes);

/** Marks [start, start+bytes) unallocated again (libsel4vm's version does nothing). A range
 *  that wraps or passes guest-physical space (2^46) changes nothing and sets
 *  guestvm_last_error(). */
void vm_ram_free(vm_t *vm, uintptr_t start, size_t bytes);

#ifdef __cplusplus
}
#endif

#pragma GCC visibility pop
