// guestvm — libsel4vm's frame mapping and anonymous memory: vm_map_reservation and its
// variants over guestvm frames (capabilities to shareable host memory), vm_memory_make_anon /
// vm_reserve_anon_memory pools, and the guestvm_frame_* calls that stand in for a vka.
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "capi/capi_internal.hpp"
#include "guestvm/frame.hpp"
#include "guestvm/host.hpp"
#include "sel4vm/guest_memory.h"
#include "sel4vm/guest_memory_helpers.h"
#include "sel4vm/guest_ram.h"

namespace guestvm::capi {

namespace {

Result<std::shared_ptr<Frame>> lookup_frame(seL4_CPtr cap) {
    auto host = Host::process_default();
    if (!host) return std::unexpected(std::move(host).error());
    auto object = (*host)->cspace().lookup(CPtr(cap), ObjectType::kFrame);
    if (!object) return std::unexpected(std::move(object).error());
    return std::static_pointer_cast<Frame>(std::move(*object));
}

vm_memory_reservation_t *find_reservation(vm_t *vm, vm_memory_reservation_t *reservation) {
    for (const auto &r : vm->guestvm->reservations) {
        if (r.get() == reservation) return r.get();
    }
    return nullptr;
}

/// Collects the frames `iterator` gives for reservation `r`'s pages and whether they are
/// writable. As libsel4vm, the iterator is asked at the reservation's address plus the bytes
/// mapped so far (an unaligned address for an unaligned reservation); each frame goes where
/// the pages continue, at the page-aligned address.
Result<std::pair<std::vector<std::shared_ptr<Frame>>, bool>> collect_frames(
    const vm_memory_reservation &r, memory_map_iterator_fn iterator, void *cookie) {
    std::vector<std::shared_ptr<Frame>> frames;
    bool writable = false;
    for (std::uint64_t covered = 0; covered < r.area_size;) {
        const std::uint64_t addr = r.area + covered;
        vm_frame_t f = iterator(static_cast<uintptr_t>(r.addr + covered), cookie);
        if (f.cptr == seL4_CapNull) {
            return make_error(Errc::kNullCapability,
                              fmt::format("the iterator gave no frame for {:#x}", addr));
        }
        auto frame = lookup_frame(f.cptr);
        if (!frame) {
            return make_error(frame.error().code(),
                              fmt::format("frame for {:#x}: {}", addr, frame.error().message()));
        }
        if (f.vaddr != addr || f.size_bits != (*frame)->size_bits()) {
            return make_error(
                Errc::kInvalidArgument,
                fmt::format("frame for {:#x}: vaddr {:#x} and size_bits {} (the frame has {}); "
                            "a frame goes where the iterator was asked, at its own size",
                            addr, f.vaddr, f.size_bits, (*frame)->size_bits()));
        }
        const bool read = seL4_CapRights_get_capAllowRead(f.rights) != 0;
        const bool write = seL4_CapRights_get_capAllowWrite(f.rights) != 0;
        if (!read) {
            return make_error(Errc::kInvalidArgument,
                              fmt::format("frame for {:#x}: without read rights (KVM maps "
                                          "memory readable or not at all)",
                                          addr));
        }
        if (!frames.empty() && write != writable) {
            return make_error(Errc::kInvalidArgument,
                              fmt::format("frame for {:#x}: rights differ from the first "
                                          "frame's (one reservation, one kind of access)",
                                          addr));
        }
        writable = write;
        covered += (*frame)->size();
        frames.push_back(std::move(*frame));
    }
    return std::pair{std::move(frames), writable};
}

Status map_with_iterator(vm_t *vm, vm_memory_reservation_t *r, memory_map_iterator_fn iterator,
                         void *cookie) {
    if (r->mapped) {
        return make_error(Errc::kBadState,
                          fmt::format("reservation at {:#x} is mapped already", r->addr));
    }
    auto frames = collect_frames(*r, iterator, cookie);
    if (!frames) return std::unexpected(std::move(frames).error());
    GUESTVM_TRY(
        vm_of(vm)->vspace().map_frames(GuestPhysAddr(r->area), frames->first, frames->second));
    r->mapped = true;
    return {};
}

}  // namespace

bool overlaps_anon_pool(const vm_t *vm, std::uint64_t addr, std::uint64_t size) {
    return vm->guestvm->anon_pools.first_overlap(addr, size) != nullptr;
}

bool in_anon_pool(const vm_t *vm, std::uint64_t addr, std::uint64_t size, const char *fn) {
    if (!overlaps_anon_pool(vm, addr, size)) return false;
    fail(
        fmt::format("{}: [{:#x}, +{:#x}) is in an anonymous pool (vm_reserve_anon_memory and "
                    "vm_ram_register place memory there)",
                    fn, addr, size));
    return true;
}

Result<std::uint64_t> anon_take(vm_t *vm, std::uint64_t size, std::uint64_t align,
                                const std::function<Status(std::uint64_t)> &place) {
    const GuestVSpace &vspace = vm_of(vm)->vspace();
    std::optional<Error> last_failure;
    for (const auto &pool : vm->guestvm->anon_pools) {
        auto at =
            vspace.find_free(size, align, GuestPhysAddr(pool.base()), GuestPhysAddr(pool.last()));
        if (!at) continue;
        auto placed = place(at->value());
        if (placed) return at->value();
        last_failure = std::move(placed).error();  // e.g. taken meanwhile: try the next pool
    }
    if (last_failure) return std::unexpected(std::move(*last_failure));
    return make_error(
        Errc::kResourceExhausted,
        fmt::format("no anonymous pool has {:#x} free bytes aligned to {:#x}", size, align));
}

Result<PageSpan> page_span(std::uint64_t addr, std::uint64_t size, const char *fn) {
    const std::uint64_t end = addr + size;
    if (size == 0 || end < addr || end > UINT64_MAX - kPage) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("{}: [{:#x}, +{:#x}) is empty or wraps", fn, addr, size));
    }
    const std::uint64_t base = addr & ~(kPage - 1);
    return PageSpan{base, page_round_up(end) - base};
}

Result<vm_memory_reservation_t *> reserve(vm_t *vm, std::uint64_t addr, std::uint64_t size,
                                          memory_fault_callback_fn callback, void *cookie) {
    GUESTVM_TRY_ASSIGN(span, page_span(addr, size, "reservation"));
    // The callback sees accesses that start in its own bytes, as libsel4vm finds a
    // reservation by the faulting address; the rest of its pages go where libsel4vm sends an
    // address no reservation holds: the unhandled-memory callback (kUnhandled).
    auto handler = [vm, addr, size, callback, cookie](ExitContext &ctx, MmioAccess &a) {
        if (a.addr - addr >= size) return ExitAction::kUnhandled;
        return call_fault_callback(vm, ctx, a, callback, cookie);
    };
    GUESTVM_TRY(vm_of(vm)->vspace().reserve(GuestPhysAddr(span.base), span.size,
                                            fmt::format("reservation@{:#x}", addr), handler));
    auto handle = std::make_unique<vm_memory_reservation>(vm_memory_reservation{
        vm, static_cast<uintptr_t>(addr), static_cast<size_t>(size),
        static_cast<uintptr_t>(span.base), static_cast<size_t>(span.size), false});
    vm_memory_reservation_t *raw = handle.get();
    vm->guestvm->reservations.push_back(std::move(handle));
    return raw;
}

}  // namespace guestvm::capi

using guestvm::capi::fail;
using guestvm::capi::guarded;
using guestvm::capi::vm_of;

extern "C" {

int vm_memory_init(vm_t *vm) {
    return guarded(-1, [&] {
        return vm_of(vm) != nullptr ? 0 : fail("vm_memory_init: NULL or uninitialised vm");
    });
}

int vm_memory_make_anon(vm_t *vm, uintptr_t addr, size_t size) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr) return fail("vm_memory_make_anon: NULL or uninitialised vm");
        if (addr % guestvm::capi::kPage != 0 || size % guestvm::capi::kPage != 0) {
            return fail(fmt::format("vm_memory_make_anon: [{:#x}, +{:#x}) is not page-aligned",
                                    addr, size));
        }
        // Refuses an empty pool, one past guest-physical space and one overlapping a pool.
        auto &pools = vm->guestvm->anon_pools;
        if (auto free = pools.check(addr, size, "pool"); !free) {
            return fail(std::move(free).error().context("vm_memory_make_anon"));
        }
        for (const auto &r : v->vspace().regions()) {
            if (addr < r.end() && r.base.value() < addr + size) {
                return fail(fmt::format("vm_memory_make_anon: [{:#x}, +{:#x}) overlaps {}", addr,
                                        size, r.name));
            }
        }
        auto added = pools.insert(addr, size, "pool", {});
        return added ? 0 : fail(added.error());
    });
}

vm_memory_reservation_t *vm_reserve_anon_memory(vm_t *vm, size_t size, size_t align,
                                                memory_fault_callback_fn fault_callback,
                                                void *cookie, uintptr_t *addr) {
    return guarded<vm_memory_reservation_t *>(nullptr, [&]() -> vm_memory_reservation_t * {
        if (vm_of(vm) == nullptr || fault_callback == nullptr || addr == nullptr) {
            return fail("vm_reserve_anon_memory: NULL vm, callback or addr"), nullptr;
        }
        if (align < guestvm::capi::kPage) align = guestvm::capi::kPage;
        if ((align & (align - 1)) != 0 || size == 0 || size > (std::uint64_t{1} << 52)) {
            return fail(fmt::format("vm_reserve_anon_memory: size {:#x}, alignment {:#x}", size,
                                    align)),
                   nullptr;
        }
        const std::uint64_t bytes = guestvm::capi::page_round_up(size);
        vm_memory_reservation_t *r = nullptr;
        auto at =
            guestvm::capi::anon_take(vm, bytes, align, [&](std::uint64_t x) -> guestvm::Status {
                GUESTVM_TRY_ASSIGN(handle,
                                   guestvm::capi::reserve(vm, x, bytes, fault_callback, cookie));
                r = handle;
                return {};
            });
        if (!at) return fail(std::move(at).error().context("vm_reserve_anon_memory")), nullptr;
        *addr = static_cast<uintptr_t>(*at);
        return r;
    });
}

int vm_map_reservation(vm_t *vm, vm_memory_reservation_t *reservation,
                       memory_map_iterator_fn map_iterator, void *cookie) {
    return guarded(-1, [&] {
        if (vm_of(vm) == nullptr || reservation == nullptr || map_iterator == nullptr) {
            return fail("vm_map_reservation: NULL argument");
        }
        auto *r = guestvm::capi::find_reservation(vm, reservation);
        if (r == nullptr) return fail("vm_map_reservation: not a reservation of this VM");
        auto mapped = guestvm::capi::map_with_iterator(vm, r, map_iterator, cookie);
        return mapped ? 0 : fail(mapped.error());
    });
}

namespace {
struct FrameArray {
    std::uint64_t base;
    const seL4_CPtr *frames;
    size_t count;
    size_t size_bits;
};
vm_frame_t frame_array_next(uintptr_t addr, void *cookie) {
    const auto *a = static_cast<const FrameArray *>(cookie);
    const std::uint64_t index = (addr - a->base) >> a->size_bits;
    vm_frame_t f{};
    if (index >= a->count) return f;  // null capability: the frames do not cover it
    f.cptr = a->frames[index];
    f.rights = seL4_ReadWrite;
    f.vaddr = a->base + (index << a->size_bits);
    f.size_bits = a->size_bits;
    return f;
}
}  // namespace

int vm_map_reservation_frames(vm_t *vm, vm_memory_reservation_t *reservation, seL4_CPtr *frames,
                              size_t num_frames, size_t frame_size_bits) {
    return guarded(-1, [&] {
        if (vm_of(vm) == nullptr || reservation == nullptr || frames == nullptr) {
            return fail("vm_map_reservation_frames: NULL argument");
        }
        if (frame_size_bits >= 64) return fail("vm_map_reservation_frames: bad frame size");
        // Checked before the handle is read: it may not be this VM's (or a live one).
        auto *r = guestvm::capi::find_reservation(vm, reservation);
        if (r == nullptr) return fail("vm_map_reservation_frames: not a reservation of this VM");
        FrameArray array{r->area, frames, num_frames, frame_size_bits};
        auto mapped = guestvm::capi::map_with_iterator(vm, r, frame_array_next, &array);
        return mapped ? 0 : fail(mapped.error());
    });
}

int vm_ram_register_at_custom_iterator(vm_t *vm, uintptr_t start, size_t bytes,
                                       memory_map_iterator_fn map_iterator, void *cookie) {
    return guarded(-1, [&] {
        if (vm_of(vm) == nullptr || map_iterator == nullptr) {
            return fail("vm_ram_register_at_custom_iterator: NULL argument");
        }
        if (guestvm::capi::in_anon_pool(vm, start, bytes, "vm_ram_register_at_custom_iterator")) {
            return -1;
        }
        auto reserved =
            guestvm::capi::reserve(vm, start, bytes, default_error_fault_callback, nullptr);
        if (!reserved) return fail(reserved.error());
        vm_memory_reservation_t *r = *reserved;
        auto mapped = guestvm::capi::map_with_iterator(vm, r, map_iterator, cookie);
        if (!mapped) {
            std::string why = mapped.error().message();
            (void)vm_free_reserved_memory(vm, r);
            return fail("vm_ram_register_at_custom_iterator: " + why);
        }
        guestvm::capi::record_ram(vm, start, bytes);
        return 0;
    });
}

seL4_CPtr guestvm_frame_alloc(size_t size_bits) {
    return guarded<seL4_CPtr>(seL4_CapNull, [&]() -> seL4_CPtr {
        auto host = guestvm::Host::process_default();
        if (!host) return fail(host.error()), seL4_CapNull;
        auto frame = guestvm::Frame::create(static_cast<unsigned>(std::min<size_t>(size_bits, 64)));
        if (!frame) return fail(frame.error()), seL4_CapNull;
        auto cap = (*host)->cspace().insert(std::move(*frame));
        if (!cap) return fail(cap.error()), seL4_CapNull;
        return cap->value();
    });
}

void *guestvm_frame_data(seL4_CPtr frame, size_t *size) {
    return guarded<void *>(nullptr, [&]() -> void * {
        auto f = guestvm::capi::lookup_frame(frame);
        if (!f) return fail(f.error()), nullptr;
        if (size != nullptr) *size = (*f)->size();
        return (*f)->bytes().data();
    });
}

int guestvm_frame_free(seL4_CPtr frame) {
    return guarded(-1, [&] {
        if (auto f = guestvm::capi::lookup_frame(frame); !f) return fail(f.error());
        auto host = guestvm::Host::process_default();
        if (!host) return fail(host.error());
        auto removed = (*host)->cspace().remove(guestvm::CPtr(frame));
        return removed ? 0 : fail(removed.error());
    });
}

}  // extern "C"
