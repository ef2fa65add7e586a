/*
 * guestvm — libsel4vm's guest_ram.h: guest RAM.
 */
#pragma once

#include <sel4vm/guest_vm.h>

#ifdef __cplusplus
extern "C" {
#endif

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
