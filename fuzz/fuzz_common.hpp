// What the fuzz targets share: the guest RAM they plan against, and a plan "written" into a
// buffer exactly that size so any out-of-RAM piece is a heap overflow ASan reports.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "guestvm/loader.hpp"

namespace guestvm::fuzz {

inline constexpr std::uint64_t kRamBytes = 48ull << 20;
inline constexpr std::uint64_t kMaxOutput = 16ull << 20;

inline std::span<const RamRange> ram() {
    static const RamRange range{0, kRamBytes};
    return {&range, 1};
}

inline void apply(const LoadPlan &plan) {
    static std::vector<std::uint8_t> memory(kRamBytes);
    for (const auto &p : plan.pieces) {
        if (p.memsz == 0) continue;
        if (p.bytes.size() > p.memsz) __builtin_trap();
        std::memcpy(memory.data() + p.gpa, p.bytes.data(), p.bytes.size());
        // Touch the piece's last byte: it must be inside RAM too.
        memory[p.gpa + p.memsz - 1] = 0;
    }
}

}  // namespace guestvm::fuzz
