// guestvm — the CPU modes a vCPU can be started in.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <cstdint>

namespace guestvm {

/// The CPU mode a vCPU starts in.
enum class BootMode : std::uint8_t {
    kLong64,       ///< 64-bit long mode, identity paging, flat segments (ELF64 guests)
    kProtected32,  ///< 32-bit protected mode, paging off, flat segments (libsel4vm's x86 start)
    kReal16,       ///< real mode at CS:IP (flat binaries)
};

}  // namespace guestvm

#pragma GCC visibility pop
