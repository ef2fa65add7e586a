/* The guests built into the guestvm binary (ELF64 images). */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

extern const unsigned char guestvm_guest_demo_start[];
extern const unsigned char guestvm_guest_demo_end[];
extern const unsigned char guestvm_guest_tiny_start[];
extern const unsigned char guestvm_guest_tiny_end[];

#ifdef __cplusplus
}
#endif
