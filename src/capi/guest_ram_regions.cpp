// libsel4vm's RAM bookkeeping (vm->mem.ram_regions): registered RAM and what the VMM allocated.
#include <algorithm>

#include "capi/capi_internal.hpp"
#include "sel4vm/guest_ram.h"

using guestvm::capi::fail;
using guestvm::capi::guarded;
using guestvm::capi::vm_of;

namespace {

// Sorts, merges neighbours in the same state, and points vm->mem at the result.
void publish(vm_t *vm) {
    auto &regions = vm->guestvm->ram_regions;
    std::sort(regions.begin(), regions.end(),
              [](const vm_ram_region &a, const vm_ram_region &b) { return a.start < b.start; });
    std::vector<vm_ram_region> merged;
    for (const vm_ram_region &r : regions) {
        if (r.size == 0) continue;
        if (!merged.empty() && merged.back().start + merged.back().size == r.start &&
            merged.back().allocated == r.allocated) {
            merged.back().size += r.size;
        } else {
            merged.push_back(r);
        }
    }
    regions = std::move(merged);
    vm->mem.ram_regions = regions.data();
    vm->mem.num_ram_regions = static_cast<int>(regions.size());
}

// Sets [start, start+bytes) to `allocated` where it overlaps registered RAM.
void set_state(vm_t *vm, std::uint64_t start, std::uint64_t bytes, int allocated) {
    const std::uint64_t end = start + bytes;
    std::vector<vm_ram_region> out;
    for (const vm_ram_region &r : vm->guestvm->ram_regions) {
        const std::uint64_t rs = r.start, re = r.start + r.size;
        if (end <= rs || start >= re) {
            out.push_back(r);
            continue;
        }
        const std::uint64_t ms = std::max(rs, start), me = std::min(re, end);
        out.push_back({static_cast<uintptr_t>(rs), static_cast<size_t>(ms - rs), r.allocated});
        out.push_back({static_cast<uintptr_t>(ms), static_cast<size_t>(me - ms), allocated});
        out.push_back({static_cast<uintptr_t>(me), static_cast<size_t>(re - me), r.allocated});
    }
    vm->guestvm->ram_regions = std::move(out);
    publish(vm);
}

}  // namespace

namespace guestvm::capi {

void record_ram(vm_t *vm, std::uint64_t start, std::uint64_t size) {
    vm->guestvm->ram_regions.push_back(
        {static_cast<uintptr_t>(start), static_cast<size_t>(size), 0});
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
        for (const vm_ram_region &r : vm->guestvm->ram_regions) {
            if (r.allocated == 0 && start >= r.start && start - r.start <= r.size &&
                bytes <= r.size - (start - r.start)) {
                set_state(vm, start, bytes, 1);
                break;
            }
        }
        return 0;
    });
}

uintptr_t vm_ram_allocate(vm_t *vm, size_t bytes) {
    return guarded<uintptr_t>(0, [&]() -> uintptr_t {
        if (vm_of(vm) == nullptr || bytes == 0) {
            return fail("vm_ram_allocate: NULL vm or 0 bytes"), 0;
        }
        for (const vm_ram_region &r : vm->guestvm->ram_regions) {
            if (r.allocated == 0 && r.size >= bytes) {
                const uintptr_t at = r.start;
                set_state(vm, at, bytes, 1);
                return at;
            }
        }
        return fail("vm_ram_allocate: no free region is large enough"), 0;
    });
}

void vm_ram_free(vm_t *vm, uintptr_t start, size_t bytes) {
    (void)guarded(0, [&] {
        if (vm_of(vm) != nullptr && bytes != 0) set_state(vm, start, bytes, 0);
        return 0;
    });
}
