// guestvm::kvm — the kvm_cpuid2 and kvm_xsave layouts, spelled out for C++.
//
// <asm/kvm.h> declares kvm_cpuid2's trailing array with __DECLARE_FLEX_ARRAY, whose empty
// struct is 0 bytes in C but 1 byte in C++: there sizeof(kvm_cpuid2) is 12, not 8, which moves
// `entries` and changes the ioctl numbers that encode the size (the kernel answers EINVAL).
// The kernel's layout is an 8-byte header followed by the entries.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace guestvm::kvm {

struct CpuidHeader {
    std::uint32_t nent;
    std::uint32_t padding;
};
static_assert(sizeof(CpuidHeader) == 8);
inline constexpr std::size_t kCpuidEntriesOffset = sizeof(CpuidHeader);
static_assert(sizeof(kvm_cpuid_entry2) == 40);

inline constexpr unsigned long kIoctlGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kIoctlSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);

// kvm_xsave has the same trailing array: its kernel size is the 4 KiB region alone.
struct XsaveRegion {
    std::uint32_t region[1024];
};
static_assert(sizeof(XsaveRegion) == 4096);
inline constexpr unsigned long kIoctlGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
inline constexpr unsigned long kIoctlSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
inline constexpr unsigned long kIoctlGetXsave2 = _IOR(KVMIO, 0xcf, XsaveRegion);

}  // namespace guestvm::kvm
