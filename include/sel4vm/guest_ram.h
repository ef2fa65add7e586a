/*
 * guestvm — libsel4vm's guest_ram.h: guest RAM.
 */
#pragma once

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
 * Registers `bytes` (rounded up to pages) of RAM at the lowest free page-aligned guest-physical
 * address at or above 1 MiB (skipping the MMIO hole at 3-4 GiB).
 * @return the address, or 0 on error (guestvm never places RAM from here at 0)
 */
uintptr_t vm_ram_register(vm_t *vm, size_t bytes);

/**
 * Registers `bytes` of RAM at guest-physical `start`, backed by fresh host memory.
 * @param vm       an initialised VM
 * @param start    page-aligned guest-physical address
 * @param bytes    page-multiple size
 * @param untyped  ignored on guestvm (host memory backs all RAM)
 * @return 0 on success, -1 on error (NULL vm, misaligned, overlapping an existing region,
 *         no KVM memory slot left)
 */
int vm_ram_register_at(vm_t *vm, uintptr_t start, size_t bytes, bool untyped);

#ifdef __cplusplus
}
#endif
