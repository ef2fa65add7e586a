/*
 * guestvm — libsel4vm's guest_vm_exits.h: values of vm->run.exit_reason.
 */
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

typedef enum vm_exit_codes {
    VM_GUEST_MMIO_EXIT,
    VM_GUEST_IO_EXIT,
    VM_GUEST_NOTIFICATION_EXIT,
    VM_GUEST_UNKNOWN_EXIT
} vm_exit_codes_t;

#define VM_GUEST_ERROR_EXIT -1

#pragma GCC visibility pop
