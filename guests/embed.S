/* The built-in guests, embedded in the guestvm binary. */
    .section .rodata.guestvm_guests, "a"
    .balign 16
    .globl guestvm_guest_demo_start, guestvm_guest_demo_end
guestvm_guest_demo_start:
    .incbin GUEST_DEMO_ELF
guestvm_guest_demo_end:
    .balign 16
    .globl guestvm_guest_tiny_start, guestvm_guest_tiny_end
guestvm_guest_tiny_start:
    .incbin GUEST_TINY_ELF
guestvm_guest_tiny_end:
    .section .note.GNU-stack, "", @progbits
