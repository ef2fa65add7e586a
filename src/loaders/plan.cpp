#include <fmt/format.h>

#include <algorithm>

#include "loaders/loader_util.hpp"

namespace guestvm {

std::uint64_t ram_total(std::span<const RamRange> ram) noexcept {
    std::uint64_t total = 0;
    for (const RamRange &r : ram) {
        total = r.size > ~std::uint64_t{0} - total ? ~std::uint64_t{0} : total + r.size;
    }
    return total;
}

}  // namespace guestvm

namespace guestvm::loaders {

std::unexpected<Error> malformed(std::string_view kind, std::string what) {
    return make_error(Errc::kMalformedImage, fmt::format("{}: {}", kind, what));
}

const RamRange *ram_holding(std::span<const RamRange> ram, std::uint64_t gpa,
                            std::uint64_t size) noexcept {
    for (const RamRange &r : ram) {
        if (gpa >= r.base && gpa - r.base <= r.size && size <= r.size - (gpa - r.base)) return &r;
    }
    return nullptr;
}

Status check_placement(const LoadPlan &plan, std::span<const RamRange> ram,
                       std::uint64_t reserved_below, std::string_view kind) {
    std::vector<const LoadPlan::Piece *> sorted;
    for (const LoadPlan::Piece &p : plan.pieces) {
        if (p.bytes.size() > p.memsz) {
            return malformed(kind, fmt::format("{}: {:#x} bytes of data in {:#x} bytes of memory",
                                               p.what, p.bytes.size(), p.memsz));
        }
        if (p.memsz == 0) continue;
        if (p.gpa + p.memsz < p.gpa) {
            return malformed(
                kind, fmt::format("{}: [{:#x}, +{:#x}) wraps around", p.what, p.gpa, p.memsz));
        }
        if (p.gpa < reserved_below) {
            return malformed(kind, fmt::format("{}: [{:#x}, +{:#x}) overlaps the VMM's boot area "
                                               "[0, {:#x})",
                                               p.what, p.gpa, p.memsz, reserved_below));
        }
        if (ram_holding(ram, p.gpa, p.memsz) == nullptr) {
            return malformed(kind, fmt::format("{}: [{:#x}, +{:#x}) is not inside guest RAM",
                                               p.what, p.gpa, p.memsz));
        }
        sorted.push_back(&p);
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const LoadPlan::Piece *a, const LoadPlan::Piece *b) { return a->gpa < b->gpa; });
    for (std::size_t i = 1; i < sorted.size(); ++i) {
        const LoadPlan::Piece &a = *sorted[i - 1];
        const LoadPlan::Piece &b = *sorted[i];
        if (b.gpa < a.gpa + a.memsz) {
            return malformed(kind, fmt::format("{} [{:#x}, +{:#x}) and {} [{:#x}, +{:#x}) overlap",
                                               a.what, a.gpa, a.memsz, b.what, b.gpa, b.memsz));
        }
    }
    return {};
}

std::vector<MemoryMapEntry> pc_memory_map(std::span<const RamRange> ram) {
    constexpr std::uint64_t kEbda = 0x9fc00, kHighMem = 0x100000;
    std::vector<RamRange> sorted(ram.begin(), ram.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const RamRange &a, const RamRange &b) { return a.base < b.base; });
    std::vector<MemoryMapEntry> map;
    for (const RamRange &r : sorted) {
        if (r.size == 0) continue;
        if (r.base < kHighMem) {
            if (r.base < kEbda) {
                map.push_back({r.base, std::min(r.end(), kEbda) - r.base, MemoryMapEntry::kUsable});
            }
            if (r.end() > kEbda) {
                std::uint64_t from = std::max(r.base, kEbda);
                map.push_back(
                    {from, std::min(r.end(), kHighMem) - from, MemoryMapEntry::kReserved});
            }
            if (r.end() > kHighMem) {
                map.push_back({kHighMem, r.end() - kHighMem, MemoryMapEntry::kUsable});
            }
        } else {
            map.push_back({r.base, r.size, MemoryMapEntry::kUsable});
        }
    }
    return map;
}

std::optional<std::uint64_t> place_high(std::span<const RamRange> ram, std::uint64_t size,
                                        std::uint64_t floor, std::uint64_t limit) {
    std::optional<std::uint64_t> best;
    for (const RamRange &r : ram) {
        std::uint64_t top = std::min(r.end(), limit);
        if (top < r.base || top - r.base < size) continue;
        std::uint64_t at = (top - size) & ~std::uint64_t{0xfff};
        if (at < r.base || at < floor) continue;
        if (!best || at > *best) best = at;
    }
    return best;
}

}  // namespace guestvm::loaders
