// guestvm::kvm — a KVM_RUN exit as a typed value instead of a raw kvm_run struct.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <variant>

namespace guestvm::kvm {

/// Port I/O. `data` points into the kvm_run page: `count` elements of `size` bytes each.
/// For an IN the handler fills it; KVM completes the instruction on the next KVM_RUN.
struct IoExit {
    std::uint16_t port;
    std::uint8_t size;
    bool is_write;
    std::uint32_t count;
    std::span<std::uint8_t> data;
};

/// MMIO access to guest-physical memory that no slot backs (or a write to a read-only slot).
struct MmioExit {
    std::uint64_t addr;
    std::uint32_t len;
    bool is_write;
    std::span<std::uint8_t> data;  ///< up to 8 bytes, inside kvm_run
};

struct HltExit {};
struct ShutdownExit {};  ///< triple fault
struct FailEntryExit {
    std::uint64_t reason;
};
struct InternalErrorExit {
    std::uint32_t suberror;
    /// KVM_INTERNAL_ERROR_EMULATION with KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES:
    /// the bytes KVM fetched at the failing instruction (insn_len 0: KVM gave none).
    std::uint8_t insn_len = 0;
    std::array<std::uint8_t, 15> insn{};
};
struct SystemEventExit {
    std::uint32_t type;
};
/// KVM_RUN returned EINTR: a kick (signal or immediate_exit) interrupted it.
struct InterruptedExit {};
struct UnknownExit {
    std::uint32_t reason;
};

using Exit = std::variant<IoExit, MmioExit, HltExit, ShutdownExit, FailEntryExit, InternalErrorExit,
                          SystemEventExit, InterruptedExit, UnknownExit>;

}  // namespace guestvm::kvm
