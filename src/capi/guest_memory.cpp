// guestvm — the C memory interface with libsel4vm's names: RAM, touching guest memory,
// reservations with fault callbacks, and the fault accessors those callbacks use.
#include "sel4vm/guest_memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "capi/capi_internal.hpp"
#include "sel4vm/guest_memory_helpers.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guest_vcpu_fault.h"

namespace guestvm::capi {

namespace {

// The access being handled by a C fault callback on this thread, and the vCPU it belongs to.
struct CurrentFault {
    vm_vcpu_t *vcpu = nullptr;
    MmioAccess *access = nullptr;
};
thread_local CurrentFault tls_fault;

MmioAccess *fault_of(vm_vcpu_t *vcpu) {
    return vcpu != nullptr && tls_fault.vcpu == vcpu ? tls_fault.access : nullptr;
}

std::uint64_t load(const MmioAccess &a) {
    std::uint64_t v = 0;
    std::memcpy(&v, a.data.data(), std::min<std::size_t>(a.data.size(), sizeof v));
    return v;
}

std::uint64_t mask_of(const MmioAccess &a) {
    return a.size >= 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * a.size)) - 1;
}

}  // namespace

std::string &last_error() {
    thread_local std::string message;
    return message;
}

ExitAction call_fault_callback(vm_t *vm, ExitContext &ctx, MmioAccess &access,
                               memory_fault_callback_fn callback, void *cookie) {
    vm_vcpu_t *vcpu = mirror_of(ctx.vcpu);
    if (!access.is_write) std::fill(access.data.begin(), access.data.end(), std::uint8_t{0});
    CurrentFault saved = tls_fault;
    tls_fault = {vcpu, &access};
    memory_fault_result_t r = callback(vm, vcpu, access.addr, access.size, cookie);
    tls_fault = saved;
    switch (r) {
        case FAULT_HANDLED:
        case FAULT_IGNORE:
        case FAULT_RESTART:
            return ExitAction::kContinue;
        case FAULT_UNHANDLED:
            return ExitAction::kUnhandled;
        case FAULT_ERROR:
            break;
    }
    return ctx.fail(
        Error(Errc::kBadState,
              fmt::format("the VMM's memory fault callback answered {} for a {}-byte "
                          "{} at {:#x}",
                          r == FAULT_ERROR ? "FAULT_ERROR" : "an unknown result", access.size,
                          access.is_write ? "write" : "read", access.addr)));
}

}  // namespace guestvm::capi

using guestvm::capi::fail;
using guestvm::capi::fault_of;
using guestvm::capi::guarded;
using guestvm::capi::vm_of;

extern "C" {

uintptr_t vm_ram_register(vm_t *vm, size_t bytes) {
    return guarded<uintptr_t>(0, [&]() -> uintptr_t {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr || bytes == 0) return fail("vm_ram_register: NULL vm or 0 bytes"), 0;
        const std::uint64_t size = guestvm::capi::page_round_up(bytes);
        if (!vm->guestvm->anon_pools.empty()) {
            // As libsel4vm: RAM comes from the anonymous pools once there are any.
            auto at =
                guestvm::capi::anon_take(vm, size, guestvm::capi::kPage, [&](std::uint64_t x) {
                    return v->vspace().add_ram(guestvm::GuestPhysAddr(x), size, "ram");
                });
            if (!at) return fail(std::move(at).error().context("vm_ram_register")), 0;
            guestvm::capi::record_ram(vm, *at, size);
            return static_cast<uintptr_t>(*at);
        }
        auto at = v->vspace().add_ram_anywhere(size, "ram");
        if (!at) return fail(at.error()), 0;
        guestvm::capi::record_ram(vm, at->value(), size);
        return static_cast<uintptr_t>(at->value());
    });
}

int vm_guest_ram_read_callback(vm_t *, uintptr_t, void *vaddr, size_t size, size_t offset,
                               void *buf) {
    if (vaddr == nullptr || buf == nullptr) return -1;
    std::memcpy(static_cast<char *>(buf) + offset, vaddr, size);
    return 0;
}

int vm_guest_ram_write_callback(vm_t *, uintptr_t, void *vaddr, size_t size, size_t offset,
                                void *buf) {
    if (vaddr == nullptr || buf == nullptr) return -1;
    std::memcpy(vaddr, static_cast<const char *>(buf) + offset, size);
    return 0;
}

int vm_ram_touch(vm_t *vm, uintptr_t addr, size_t size, ram_touch_callback_fn touch_callback,
                 void *cookie) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr || touch_callback == nullptr) return fail("vm_ram_touch: NULL argument");
        if (size == 0) return 0;
        if (addr + size < addr) return fail("vm_ram_touch: range wraps");
        struct Piece {
            uintptr_t gpa;
            std::uint8_t *host;
            size_t size;
        };
        std::vector<Piece> pieces;
        for (uintptr_t cur = addr; cur < addr + size;) {
            uintptr_t next =
                std::min<uintptr_t>((cur | (guestvm::capi::kPage - 1)) + 1, addr + size);
            auto host = v->vspace().translate(guestvm::GuestPhysAddr(cur), next - cur);
            if (!host) return fail(host.error());
            pieces.push_back({cur, *host, next - cur});
            cur = next;
        }
        for (const Piece &p : pieces) {
            if (touch_callback(vm, p.gpa, p.host, p.size, p.gpa - addr, cookie) != 0) {
                return fail(fmt::format("vm_ram_touch: callback failed at {:#x}", p.gpa));
            }
        }
        return 0;
    });
}

vm_memory_reservation_t *vm_reserve_memory_at(vm_t *vm, uintptr_t addr, size_t size,
                                              memory_fault_callback_fn fault_callback,
                                              void *cookie) {
    return guarded<vm_memory_reservation_t *>(nullptr, [&]() -> vm_memory_reservation_t * {
        if (vm_of(vm) == nullptr || fault_callback == nullptr) {
            return fail("vm_reserve_memory_at: NULL vm or callback"), nullptr;
        }
        if (guestvm::capi::in_anon_pool(vm, addr, size, "vm_reserve_memory_at")) return nullptr;
        auto r = guestvm::capi::reserve(vm, addr, size, fault_callback, cookie);
        return r ? *r : (fail(r.error()), nullptr);
    });
}

int vm_free_reserved_memory(vm_t *vm, vm_memory_reservation_t *reservation) {
    return guarded(-1, [&] {
        guestvm::Vm *v = vm_of(vm);
        if (v == nullptr || reservation == nullptr)
            return fail("vm_free_reserved_memory: NULL argument");
        auto &list = vm->guestvm->reservations;
        auto it = std::find_if(list.begin(), list.end(),
                               [&](const auto &r) { return r.get() == reservation; });
        if (it == list.end()) return fail("vm_free_reserved_memory: not a reservation of this VM");
        auto removed = v->vspace().remove(guestvm::GuestPhysAddr(reservation->area));
        if (!removed) return fail(removed.error());
        list.erase(it);
        return 0;
    });
}

void vm_get_reservation_memory_region(vm_memory_reservation_t *reservation, uintptr_t *addr,
                                      size_t *size) {
    if (addr != nullptr) *addr = reservation != nullptr ? reservation->addr : 0;
    if (size != nullptr) *size = reservation != nullptr ? reservation->size : 0;
}

memory_fault_result_t default_error_fault_callback(vm_t *, vm_vcpu_t *, uintptr_t fault_addr,
                                                   size_t fault_length, void *) {
    return guarded(FAULT_ERROR, [&] {
        fail(fmt::format("memory fault at {:#x} ({} bytes): default_error_fault_callback",
                         fault_addr, fault_length));
        return FAULT_ERROR;
    });
}

// ---- fault accessors ----

seL4_Word get_vcpu_fault_address(vm_vcpu_t *vcpu) {
    auto *a = fault_of(vcpu);
    return a != nullptr ? a->addr : 0;
}

seL4_Word get_vcpu_fault_ip(vm_vcpu_t *vcpu) {
    return guarded(seL4_Word{0}, [&]() -> seL4_Word {
        if (fault_of(vcpu) == nullptr) return 0;
        auto regs = guestvm::capi::vcpu_of(vcpu)->registers();  // the exit's own registers
        return regs ? regs->rip : 0;
    });
}

seL4_Word get_vcpu_fault_data(vm_vcpu_t *vcpu) {
    auto *a = fault_of(vcpu);
    return a != nullptr ? guestvm::capi::load(*a) : 0;
}

seL4_Word get_vcpu_fault_data_mask(vm_vcpu_t *vcpu) {
    auto *a = fault_of(vcpu);
    return a != nullptr ? guestvm::capi::mask_of(*a) : 0;
}

size_t get_vcpu_fault_size(vm_vcpu_t *vcpu) {
    auto *a = fault_of(vcpu);
    return a != nullptr ? a->size : 0;
}

bool is_vcpu_read_fault(vm_vcpu_t *vcpu) {
    auto *a = fault_of(vcpu);
    return a != nullptr && !a->is_write;
}

int set_vcpu_fault_data(vm_vcpu_t *vcpu, seL4_Word data) {
    auto *a = fault_of(vcpu);
    if (a == nullptr) return -1;
    if (a->is_write) return -1;  // a write's data is the guest's
    std::memcpy(a->data.data(), &data, std::min<std::size_t>(a->data.size(), sizeof data));
    return 0;
}

seL4_Word emulate_vcpu_fault(vm_vcpu_t *vcpu, seL4_Word data) {
    auto *a = fault_of(vcpu);
    if (a == nullptr) return 0;
    const std::uint64_t mask = guestvm::capi::mask_of(*a);
    if (a->is_write) return (data & ~mask) | (guestvm::capi::load(*a) & mask);
    set_vcpu_fault_data(vcpu, data & mask);
    return data & mask;
}

void advance_vcpu_fault(vm_vcpu_t *) {}
void restart_vcpu_fault(vm_vcpu_t *) {}

}  // extern "C"
