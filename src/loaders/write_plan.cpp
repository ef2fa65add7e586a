// The VM-facing half of the loaders: RAM layout in, plan out to guest memory.

#include <algorithm>
#include <cstring>

#include "guestvm/loader.hpp"
#include "guestvm/vspace.hpp"

namespace guestvm {

std::vector<RamRange> ram_ranges(const GuestVSpace &memory) {
    std::vector<RamRange> out;
    for (const GuestRegion &r : memory.regions()) {
        if (r.kind == AreaKind::kRam) out.push_back({r.base.value(), r.size});
    }
    return out;
}

Status write_plan(GuestVSpace &memory, const LoadPlan &plan) {
    // Translate every piece first: nothing is written unless all of it can be.
    std::vector<std::uint8_t *> hosts;
    for (const LoadPlan::Piece &p : plan.pieces) {
        if (p.memsz == 0) {
            hosts.push_back(nullptr);
            continue;
        }
        auto host = memory.translate(GuestPhysAddr(p.gpa), p.memsz);
        if (!host) return std::unexpected(std::move(host).error().context(p.what));
        hosts.push_back(*host);
    }
    for (std::size_t i = 0; i < plan.pieces.size(); ++i) {
        const LoadPlan::Piece &p = plan.pieces[i];
        if (hosts[i] == nullptr) continue;
        std::memcpy(hosts[i], p.bytes.data(), p.bytes.size());
        // Fresh guest RAM is zero already: clear only pages that are not, so an untouched BSS
        // costs no host memory.
        std::uint8_t *rest = hosts[i] + p.bytes.size();
        const std::uint64_t n = p.memsz - p.bytes.size();
        for (std::uint64_t off = 0; off < n;) {
            std::uint64_t chunk = std::min<std::uint64_t>(
                4096 - (reinterpret_cast<std::uintptr_t>(rest + off) & 4095), n - off);
            if (std::any_of(rest + off, rest + off + chunk,
                            [](std::uint8_t b) { return b != 0; })) {
                std::memset(rest + off, 0, chunk);
            }
            off += chunk;
        }
    }
    return {};
}

Result<LoadPlan> load_elf(GuestVSpace &memory, std::span<const std::uint8_t> image) {
    auto ram = ram_ranges(memory);
    GUESTVM_TRY_ASSIGN(plan, plan_elf(image, ram));
    GUESTVM_TRY(write_plan(memory, plan));
    return plan;
}

}  // namespace guestvm
