// guestvm — what the C layer's translation units share (internal).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/range_map.hpp"
#include "guestvm/error.hpp"
#include "guestvm/vm.hpp"
#include "sel4vm/arch/ioports.h"
#include "sel4vm/guest_irq_controller.h"
#include "sel4vm/guest_memory.h"
#include "sel4vm/guest_vm.h"
#include "sel4vm/guestvm.h"

/// A reservation made through vm_reserve_memory_at or vm_reserve_anon_memory: [addr, addr+size)
/// as the VMM asked (any alignment, as libsel4vm takes it), inside the whole pages
/// [area, area+area_size) it holds in the guest vspace. Threads: the VMM's (the thread that
/// calls the C API for this VM), as libsel4vm's VMM is one thread; the fault handler on a vCPU
/// thread reads only the immutable addresses and sizes.
struct vm_memory_reservation {
    vm_t *vm;
    uintptr_t addr;
    size_t size;
    uintptr_t area;
    size_t area_size;
    bool mapped = false;  ///< backed by frames (vm_map_reservation)
};

namespace guestvm::capi {
constexpr std::uint64_t kPage = 4096;
/// `bytes` rounded up to whole pages.
constexpr std::uint64_t page_round_up(std::uint64_t bytes) {
    return (bytes + kPage - 1) & ~(kPage - 1);
}

/// The whole pages that guest-physical [addr, addr+size) touches: libsel4vm accepts any
/// alignment and its vspace takes the pages (seL4 maps nothing smaller).
struct PageSpan {
    std::uint64_t base = 0;
    std::uint64_t size = 0;
};
/// kInvalidArgument for an empty range or one that wraps.
Result<PageSpan> page_span(std::uint64_t addr, std::uint64_t size, const char *fn);

/// The anonymous pools (vm_memory_make_anon), inside guest-physical space. What is free in a
/// pool is what the guest vspace has no area in.
using AnonPools = RangeMap<std::monostate>;
/// Registered RAM by address (vm->mem.ram_regions is published from it): allocated or not.
using RamRegions = RangeMap<bool>;
}  // namespace guestvm::capi

/// Everything a vm_t owns on the C side; the C++ Vm is the truth, the rest are mirrors/handles.
/// Threads: the VMM's calls into the C API for this VM (libsel4vm's VMM is one thread; calls for
/// one VM must not race) change the containers; vCPU threads touch only a mirror's atomically
/// written fields (vcpu_online, target_cpu, through the observers) and state_written's atomics;
/// the C++ Vm is thread-safe in itself.
struct guestvm_vm_state {
    std::string name;
    std::vector<std::unique_ptr<vm_vcpu_t>> vcpus;  // mirrors, index = vCPU id
    /// Per vCPU (index = id): the VMM wrote registers or VMCS fields since it was created, so
    /// vcpu_start starts it with that state instead of at vm->entry.
    std::vector<std::unique_ptr<std::atomic<bool>>> state_written;
    guestvm::capi::RamRegions ram{guestvm::GuestVSpace::kAddressLimit - 1};
    std::vector<vm_ram_region> ram_regions;  // published from `ram`; vm->mem.ram_regions
    std::list<std::unique_ptr<vm_memory_reservation>> reservations;  // handles given out
    guestvm::capi::AnonPools anon_pools{guestvm::GuestVSpace::kAddressLimit - 1};
    std::vector<vm_ioport_entry_t> ioports;  // vm->arch.ioport_list points here, by start
    /// vm_register_irq calls made before the VM has an interrupt controller, by line: they
    /// take effect when vm_create_default_irq_controller makes it (libsel4vm's order).
    struct PendingIrq {
        vm_vcpu_t *vcpu = nullptr;
        irq_ack_fn_t ack = nullptr;
        void *cookie = nullptr;
    };
    std::mutex irq_mutex;  // guards pending_irqs and the controller's creation
    std::array<std::optional<PendingIrq>, guestvm::Vm::kIrqLines> pending_irqs;
    /// vm_create_vcpu may be called from several threads at once: it holds this around the
    /// limit check and the vectors above.
    std::mutex create_mutex;
    /// vm_run calls in progress and whether vm_destroy has begun (it waits for none to run).
    std::mutex run_mutex;
    std::condition_variable run_cv;
    int runners = 0;                  // guarded by run_mutex
    bool destroying = false;          // guarded by run_mutex
    std::unique_ptr<guestvm::Vm> vm;  // last: destroyed (threads joined) first
};

namespace guestvm::capi {

/// This thread's last error message (guestvm_last_error()).
std::string &last_error();

inline int fail(const Error &e) {
    last_error() = e.message();
    return -1;
}
inline int fail(std::string message) {
    last_error() = std::move(message);
    return -1;
}

/// Runs fn, turning any exception into `on_error` and a last-error message. Every C entry point
/// that calls fallible C++ or allocates runs its body through this; the few that only read
/// fields, copy bytes or call noexcept queries (the util interface, the fault accessors) cannot
/// throw and are left bare.
template <typename R, typename F>
R guarded(R on_error, F &&fn) noexcept {
    try {
        return fn();
    } catch (const std::exception &e) {
        last_error() = std::string("internal error: ") + e.what();
    } catch (...) {
        last_error() = "internal error";
    }
    return on_error;
}

inline Vm *vm_of(vm_t *vm) noexcept {
    return vm != nullptr && vm->guestvm != nullptr ? vm->guestvm->vm.get() : nullptr;
}
inline Vcpu *vcpu_of(vm_vcpu_t *vcpu) noexcept {
    return vcpu != nullptr ? static_cast<Vcpu *>(vcpu->guestvm) : nullptr;
}
inline vm_vcpu_t *mirror_of(Vcpu *vcpu) noexcept {
    return vcpu != nullptr ? static_cast<vm_vcpu_t *>(vcpu->user_data()) : nullptr;
}

/// Calls a libsel4vm memory fault callback for `access`, making the access visible to the
/// get_vcpu_fault_* accessors on this thread while it runs, and maps its answer.
ExitAction call_fault_callback(vm_t *vm, ExitContext &ctx, MmioAccess &access,
                               memory_fault_callback_fn callback, void *cookie);

/// Reserves guest-physical [addr, addr+size) for a libsel4vm fault callback and hands out
/// the handle (vm_reserve_memory_at, vm_reserve_anon_memory).
Result<vm_memory_reservation_t *> reserve(vm_t *vm, std::uint64_t addr, std::uint64_t size,
                                          memory_fault_callback_fn callback, void *cookie);
/// Whether [addr, addr+size) touches an anonymous pool of `vm`.
bool overlaps_anon_pool(const vm_t *vm, std::uint64_t addr, std::uint64_t size);
/// True, with `fn`'s error message set, when [addr, addr+size) touches an anonymous pool
/// (only vm_reserve_anon_memory and vm_ram_register place things there).
bool in_anon_pool(const vm_t *vm, std::uint64_t addr, std::uint64_t size, const char *fn);
/// Places `size` bytes in an anonymous pool: at the lowest free `align`-aligned address of
/// each pool in turn, `place(x)` puts [x, x+size) into the guest vspace, until it succeeds.
/// Returns x; the last error when `place` failed in every pool with room, kResourceExhausted
/// when none had room.
Result<std::uint64_t> anon_take(vm_t *vm, std::uint64_t size, std::uint64_t align,
                                const std::function<Status(std::uint64_t)> &place);

/// Records registered RAM [start, start+size) as unallocated in vm->mem.ram_regions.
void record_ram(vm_t *vm, std::uint64_t start, std::uint64_t size);

/// Marks `vcpu`'s state as written by the VMM (see guestvm_vm_state::state_written).
inline void mark_state_written(vm_vcpu_t *vcpu) noexcept {
    if (vcpu == nullptr || vcpu->vm == nullptr || vcpu->vm->guestvm == nullptr) return;
    auto &flags = vcpu->vm->guestvm->state_written;
    if (vcpu->vcpu_id < flags.size()) flags[vcpu->vcpu_id]->store(true, std::memory_order_release);
}

}  // namespace guestvm::capi
