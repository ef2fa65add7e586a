// libsel4vm's RAM bookkeeping (vm->mem.ram_regions): registered RAM and what the VMM allocated.
#include <algorithm>

#include "capi/capi_internal.hpp"
#include "sel4vm/guest_ram.h"

using guestvm::capi::fail;
using guestvm::capi::guarded;
using guestvm::capi::vm_of;

namespace {

// Merges neighbours in the same state and points vm->mem at a copy of the result.
void publish(vm_t *vm) {
    guestvm::capi::RamRegions &ram = vm->guestvm->ram;
    std::vector<vm_ram_region> merged;
    for (const auto &r : ram) {
        if (!merged.empty() && merged.back().start + merged.back().size == r.base() &&
            (merged.back().allocated != 0) == r.value) {
            merged.back().size += r.size();
        } else {
            merged.push_back(
                {static_cast<uintptr_t>(r.base()), static_cast<size_t>(r.size()), r.value ? 1 : 0});
        }
    }
    if (merged.size() != ram.size()) {
        ram.clear();
        for (const vm_ram_region &r : merged) (void)ram.insert(r.start, r.size, {}, r.allocated);
    }
    vm->guestvm->ram_regions = std::move(merged);
    vm->mem.ram_regions = vm->guestvm->ram_regions.data();
    vm->mem.num_ram_regions = static_cast<int>(vm->guestvm->ram_regions.size());
}

// Sets [start, start+bytes) (inside guest-physical space) to `allocated` where it overlaps
// registered RAM.
void set_state(vm_t *vm, std::uint64_t start, std::uint64_t bytes, bool allocated) {
    guestvm::capi::RamRegions &ram = vm->guestvm->ram;
    const std::uint64_t last = start + (bytes - 1);
    struct Piece {
        std::uint64_t base, last;
        bool allocated;
    };
    std::vector<Piece> pieces;
    std::vector<std::uint64_t> doomed;
    for (const auto &r : ram.overlapping(start, bytes)) {
        doomed.push_back(r.base());
        const std::uint64_t ms = std::max(r.base(), start), ml = std::min(r.last(), last);
        if (r.base() < ms) pieces.push_back({r.base(), ms - 1, r.value});
        pieces.push_back({ms, ml, allocated});
        if (ml < r.last()) pieces.push_back({ml + 1, r.last(), r.value});
    }
    for (std::uint64_t base : doomed) (void)ram.erase(base);
    for (const Piece &p : pieces) (void)ram.insert(p.base, p.last - p.base + 1, {}, p.allocated);
    publish(vm);
}

// Whether non-empty [start, start+bytes) lies inside guest-physical space; sets the
// last error for `fn` when not.
bool valid_range(std::uint64_t start, std::uint64_t bytes, const char *fn) {
    if (start < guestvm::GuestVSpace::kAddressLimit &&
        bytes <= guestvm::GuestVSpace::kAddressLimit - start) {
        return true;
    }
    fail(std::string(fn) + ": " + guestvm::describe_range("", start, bytes) +
         " wraps or passes guest-physical space");
    return false;
}

}  // namespace

namespace guestvm::capi {

void record_ram(vm_t *vm, std::uint64_t start, std::uint64_t size) {
    (void)vm->guestvm->ram.insert(start, size, {}, false);  // the vspace refused overlap already
    publish(vm);
}

}  // namespace guestvm::capi

int vm_ram_find_largest_free_region(vm_t *vm, uintptr_t *addr, size_t *size) {
    return guarded(-1, [&] {
        if (vm_of(vm) == nullptr || addr == nullptr || size == nullptr) {
            return fail("vm_ram_find_largest_free_region: NULL argument or uninitialised vm");
        }
        const vm_ram_region *best = nullptr;
        auto better = [&](const vm_ram_region &r) {
            if (best == nullptr) return true;
            const bool low = r.start + r.size <= (1ull << 32);
            const bool best_low = best->start + best->size <= (1ull << 32);
            return low != best_low ? low : r.size > best->size;
        };
        for (const vm_ram_region &r : vm->guestvm->ram_regions) {
            if (r.allocated == 0 && better(r)) best = &r;
        }
        if (best == nullptr) return fail("vm_ram_find_largest_free_region: no free RAM");
        *addr = best->start;
        *size = best->size;
        return 0;
    });
}

void vm_ram_mark_allocated(vm_t *vm, uintptr_t start, size_t bytes) {
    (void)guarded(0, [&] {
        if (vm_of(vm) == nullptr || bytes == 0) return 0;
        const auto *r = vm->guestvm->ram.find_covering(start, bytes);
        if (r != nullptr && !r->value) set_state(vm, start, bytes, true);
        return 0;
    });
}

uintptr_t vm_ram_allocate(vm_t *vm, size_t bytes) {
    return guarded<uintptr_t>(0, [&]() -> uintptr_t {
        if (vm_of(vm) == nullptr || bytes == 0) {
            return fail("vm_ram_allocate: NULL vm or 0 bytes"), 0;
        }
        for (const auto &r : vm->guestvm->ram) {
            if (!r.value && r.size() >= bytes) {
                const std::uint64_t at = r.base();
                set_state(vm, at, bytes, true);
                return static_cast<uintptr_t>(at);
            }
        }
        return fail("vm_ram_allocate: no free region is large enough"), 0;
    });
}

void vm_ram_free(vm_t *vm, uintptr_t start, size_t bytes) {
    (void)guarded(0, [&] {
        if (vm_of(vm) == nullptr) return fail("vm_ram_free: NULL or uninitialised vm");
        if (bytes == 0) return 0;
        if (!valid_range(start, bytes, "vm_ram_free")) return -1;
        set_state(vm, start, bytes, false);
        return 0;
    });
}
