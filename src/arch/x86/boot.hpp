// guestvm::x86 — the CPU state a vCPU boots in, and the tables it needs in guest memory.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/registers.hpp"

namespace guestvm {
class GuestVSpace;
namespace kvm {
class VcpuFd;
}
}  // namespace guestvm

namespace guestvm::x86 {

/// Guest-physical layout of the VMM's boot area (guest images must not overlap it). Three
/// GDTs of four entries: long mode (null, code64 0x08, data 0x10, code32 0x18), protected mode
/// (null, code32 0x08, data 0x10, code32 0x18) and Linux's boot protocol (null, null,
/// code64 0x10, data 0x18).
inline constexpr std::uint64_t kGdtAddr = 0x500;
inline constexpr std::uint64_t kGdt32Addr = 0x520;
inline constexpr std::uint64_t kGdtLinuxAddr = 0x540;
inline constexpr std::uint64_t kPml4Addr = 0x1000;
inline constexpr std::uint64_t kPdptAddr = 0x2000;
inline constexpr std::uint64_t kPdAddr = 0x3000;  ///< first page directory; one per GiB
static_assert(guestvm::kBootAreaEnd == 0x10000);
inline constexpr std::uint64_t kMaxIdentityMapped =
    (guestvm::kBootAreaEnd - kPdAddr) / 4096 * (1ull << 30);
/// KVM's own pages on Intel hosts (TSS, real-mode identity map), in the hole below 4 GiB.
inline constexpr std::uint64_t kTssAddr = 0xfffbd000;
inline constexpr std::uint64_t kIdentityMapAddr = 0xfffbc000;

inline constexpr std::uint16_t kCodeSelector = 0x08;
inline constexpr std::uint16_t kDataSelector = 0x10;

/// Writes the three GDTs and identity page tables (2 MiB pages: 1 GiB pages triple-fault in
/// nested KVM) covering [0, cover) into guest memory.
Status install_boot_tables(GuestVSpace &memory, std::uint64_t cover);

/// The CPUID leaves a vCPU sees: KVM's supported set with this vCPU's APIC id.
std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported, int apic_id);

/// Puts a stopped vCPU into `state` (interrupts off; registers not named in it are zero).
Status apply_entry_state(const kvm::VcpuFd &vcpu, const EntryState &state);

}  // namespace guestvm::x86
