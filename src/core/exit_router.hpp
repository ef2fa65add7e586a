// guestvm — the exit router: one typed KVM exit in, the handler it belongs to called, and what
// the vCPU does next out. A function of (exit, router); unit-tested without KVM.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/range_map.hpp"
#include "guestvm/exits.hpp"
#include "kvm/exits.hpp"

namespace guestvm {

/// What the router decided: the vCPU's next step and, when the VM must stop, why. A stop whose
/// `locate` is set gets the exiting vCPU and its RIP appended by the run loop.
struct Route {
    ExitAction action = ExitAction::kContinue;
    std::optional<StopInfo> stop;
    bool locate = false;
};

/// Which ExitKind an exit is counted under (InterruptedExit: kInterrupted).
ExitKind exit_kind(const kvm::Exit &exit) noexcept;

/// The VM's handlers — port ranges, the memory-fault dispatcher, the unhandled-port and
/// unhandled-memory handlers, one handler per non-access event — and the routing of exits to
/// them. Handlers are added or replaced under an exclusive lock (refused from inside a
/// handler); route() takes it shared, so vCPU threads route concurrently. Any thread.
class ExitRouter {
  public:
    /// `memory` receives every MMIO exit first (the guest address space's reservations);
    /// kUnhandled from it falls to the unhandled-memory handler.
    ExitRouter(UnhandledIoPolicy policy, MmioHandler memory);

    Status add_port_range(std::uint16_t base, std::uint32_t count, std::string name,
                          IoHandler handler);
    Status set_unhandled_io_handler(IoHandler handler);
    Status set_unhandled_memory_handler(MmioHandler handler);
    Status set_event_handler(ExitEvent::Kind kind, EventHandler handler);

    /// Port exits each range has taken, by range name, in port order.
    std::vector<std::pair<std::string, std::uint64_t>> port_exits() const;

    /// Calls the handler `exit` belongs to, with `ctx` (the caller counts the exit).
    Route route(ExitContext &ctx, kvm::Exit &exit) const;

  private:
    struct PortRoute {
        IoHandler handler;
        std::unique_ptr<std::atomic<std::uint64_t>> exits;
    };
    static constexpr std::size_t kEventKinds = 6;

    Route on_io(ExitContext &ctx, const kvm::IoExit &io) const;
    Route on_mmio(ExitContext &ctx, const kvm::MmioExit &mmio) const;
    Route on_hlt(ExitContext &ctx) const;
    Route on_shutdown(ExitContext &ctx) const;
    Route on_fail_entry(ExitContext &ctx, const kvm::FailEntryExit &e) const;
    Route on_internal_error(ExitContext &ctx, const kvm::InternalErrorExit &e) const;
    Route on_system_event(ExitContext &ctx, const kvm::SystemEventExit &e) const;
    Route on_unknown(ExitContext &ctx, const kvm::UnknownExit &e) const;

    /// One port access (one element of a string I/O exit).
    ExitAction port_access(ExitContext &ctx, IoAccess &access) const;
    /// The event's handler if one is set, else (or on kUnhandled) `fallback`.
    template <typename Fallback>
    Route event(ExitContext &ctx, const ExitEvent &ev, Fallback &&fallback) const;
    template <typename Slot, typename Handler>
    Status replace(Slot &slot, Handler handler);

    const UnhandledIoPolicy policy_;
    const MmioHandler memory_;
    mutable std::shared_mutex mutex_;  // guards everything below
    RangeMap<PortRoute> ports_{0xffff};
    IoHandler unhandled_io_;
    MmioHandler unhandled_memory_;
    std::array<EventHandler, kEventKinds> events_;
};

}  // namespace guestvm
