#include "core/exit_router.hpp"

#include <fmt/format.h>
#include <linux/kvm.h>

#include <cstring>
#include <mutex>

#include "arch/x86/insn_assist.hpp"
#include "common/handler_scope.hpp"

namespace guestvm {

namespace {

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};

Route proceed(ExitAction action) { return {action, std::nullopt, false}; }

Route stop_vm(StopReason reason, std::string message, int vcpu, bool locate = true) {
    return {ExitAction::kStopVcpu, StopInfo{reason, std::move(message), vcpu}, locate};
}

/// A handler answered kError: the stop says which and, when it said so, why.
Route handler_failed(ExitContext &ctx, std::string what) {
    if (ctx.error) what += fmt::format(": {}", ctx.error->message());
    return stop_vm(StopReason::kError, std::move(what), ctx.vcpu_id);
}

}  // namespace

ExitKind exit_kind(const kvm::Exit &exit) noexcept {
    return std::visit(Overloaded{
                          [](const kvm::IoExit &) { return ExitKind::kIo; },
                          [](const kvm::MmioExit &) { return ExitKind::kMmio; },
                          [](const kvm::HltExit &) { return ExitKind::kHlt; },
                          [](const kvm::ShutdownExit &) { return ExitKind::kShutdown; },
                          [](const kvm::FailEntryExit &) { return ExitKind::kFailEntry; },
                          [](const kvm::InternalErrorExit &) { return ExitKind::kInternalError; },
                          [](const kvm::SystemEventExit &) { return ExitKind::kSystemEvent; },
                          [](const kvm::InterruptedExit &) { return ExitKind::kInterrupted; },
                          [](const kvm::UnknownExit &) { return ExitKind::kUnknown; },
                      },
                      exit);
}

ExitRouter::ExitRouter(UnhandledIoPolicy policy, MmioHandler memory)
    : policy_(policy), memory_(std::move(memory)) {}

Status ExitRouter::add_port_range(std::uint16_t base, std::uint32_t count, std::string name,
                                  IoHandler handler) {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot add handlers");
    }
    if (!handler) return make_error(Errc::kInvalidArgument, fmt::format("{}: null handler", name));
    std::unique_lock lock(mutex_);
    return ports_.insert(
        base, count, std::move(name),
        PortRoute{std::move(handler), std::make_unique<std::atomic<std::uint64_t>>(0)});
}

template <typename Slot, typename Handler>
Status ExitRouter::replace(Slot &slot, Handler handler) {
    if (in_exit_handler()) {
        return make_error(Errc::kBadState, "exit handlers cannot change handlers");
    }
    std::unique_lock lock(mutex_);
    slot = std::move(handler);
    return {};
}

Status ExitRouter::set_unhandled_io_handler(IoHandler handler) {
    return replace(unhandled_io_, std::move(handler));
}

Status ExitRouter::set_unhandled_memory_handler(MmioHandler handler) {
    return replace(unhandled_memory_, std::move(handler));
}

Status ExitRouter::set_event_handler(ExitEvent::Kind kind, EventHandler handler) {
    const auto index = static_cast<std::size_t>(kind);
    if (index >= events_.size()) {
        return make_error(Errc::kInvalidArgument, "unknown exit event kind");
    }
    return replace(events_[index], std::move(handler));
}

std::vector<std::pair<std::string, std::uint64_t>> ExitRouter::port_exits() const {
    std::shared_lock lock(mutex_);
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (const auto &e : ports_.entries()) {
        out.emplace_back(std::string(e.name()), e.value.exits->load(std::memory_order_relaxed));
    }
    return out;
}

Route ExitRouter::route(ExitContext &ctx, kvm::Exit &exit) const {
    return std::visit(Overloaded{
                          [&](kvm::IoExit &e) { return on_io(ctx, e); },
                          [&](kvm::MmioExit &e) { return on_mmio(ctx, e); },
                          [&](kvm::HltExit &) { return on_hlt(ctx); },
                          [&](kvm::ShutdownExit &) { return on_shutdown(ctx); },
                          [&](kvm::FailEntryExit &e) { return on_fail_entry(ctx, e); },
                          [&](kvm::InternalErrorExit &e) { return on_internal_error(ctx, e); },
                          [&](kvm::SystemEventExit &e) { return on_system_event(ctx, e); },
                          [&](kvm::InterruptedExit &) { return proceed(ExitAction::kContinue); },
                          [&](kvm::UnknownExit &e) { return on_unknown(ctx, e); },
                      },
                      exit);
}

ExitAction ExitRouter::port_access(ExitContext &ctx, IoAccess &access) const {
    std::shared_lock lock(mutex_);
    HandlerScope scope;
    if (const auto *entry = ports_.find(access.port)) {
        entry->value.exits->fetch_add(1, std::memory_order_relaxed);
        return entry->value.handler(ctx, access);
    }
    return unhandled_io_ ? unhandled_io_(ctx, access) : ExitAction::kUnhandled;
}

Route ExitRouter::on_io(ExitContext &ctx, const kvm::IoExit &io) const {
    // String I/O: one access per element, each with its own slice of the data.
    for (std::uint32_t i = 0; i < io.count; ++i) {
        IoAccess access{io.port, io.size, io.is_write,
                        io.data.subspan(std::size_t{i} * io.size, io.size), io.count};
        ExitAction action = port_access(ctx, access);
        if (action == ExitAction::kUnhandled) {
            if (policy_ == UnhandledIoPolicy::kAllOnes) {
                if (!access.is_write) std::memset(access.data.data(), 0xff, access.data.size());
                continue;
            }
            return stop_vm(StopReason::kUnhandledExit,
                           fmt::format("unhandled port I/O: {} port {:#x} ({} byte{})",
                                       io.is_write ? "out to" : "in from", io.port, io.size,
                                       io.size == 1 ? "" : "s"),
                           ctx.vcpu_id);
        }
        if (action == ExitAction::kError) {
            return handler_failed(ctx, fmt::format("handler for port {:#x} failed", io.port));
        }
        if (action != ExitAction::kContinue) return proceed(action);
    }
    return proceed(ExitAction::kContinue);
}

Route ExitRouter::on_mmio(ExitContext &ctx, const kvm::MmioExit &mmio) const {
    MmioAccess access{mmio.addr, static_cast<std::uint8_t>(mmio.len), mmio.is_write, mmio.data};
    ExitAction action = ExitAction::kUnhandled;
    {
        HandlerScope scope;
        if (memory_) action = memory_(ctx, access);
    }
    if (action == ExitAction::kUnhandled) {
        std::shared_lock lock(mutex_);
        if (unhandled_memory_) {
            HandlerScope scope;
            action = unhandled_memory_(ctx, access);
        }
    }
    if (action == ExitAction::kUnhandled) {
        return stop_vm(StopReason::kUnhandledExit,
                       fmt::format("unhandled MMIO {} of {} bytes at {:#x}",
                                   mmio.is_write ? "write" : "read", mmio.len, mmio.addr),
                       ctx.vcpu_id);
    }
    if (action == ExitAction::kError) {
        return handler_failed(ctx, fmt::format("memory fault handler for {:#x} failed", mmio.addr));
    }
    return proceed(action);
}

template <typename Fallback>
Route ExitRouter::event(ExitContext &ctx, const ExitEvent &ev, Fallback &&fallback) const {
    ExitAction action = ExitAction::kUnhandled;
    {
        std::shared_lock lock(mutex_);
        if (const auto &handler = events_[static_cast<std::size_t>(ev.kind)]) {
            HandlerScope scope;
            action = handler(ctx, ev);
        }
    }
    if (action == ExitAction::kUnhandled) return fallback();
    if (action == ExitAction::kError) return handler_failed(ctx, "exit event handler failed");
    return proceed(action);
}

Route ExitRouter::on_hlt(ExitContext &ctx) const {
    // No in-kernel irqchip: HLT returns to us. Resume after it (a spurious wake, which guests
    // must tolerate); the exit count shows a guest spinning.
    return event(ctx, {ExitEvent::Kind::kHlt, 0}, [] { return proceed(ExitAction::kContinue); });
}

Route ExitRouter::on_shutdown(ExitContext &ctx) const {
    return event(ctx, {ExitEvent::Kind::kShutdown, 0}, [&] {
        return stop_vm(StopReason::kGuestFault, "triple fault (KVM_EXIT_SHUTDOWN)", ctx.vcpu_id);
    });
}

Route ExitRouter::on_fail_entry(ExitContext &ctx, const kvm::FailEntryExit &e) const {
    return event(ctx, {ExitEvent::Kind::kFailEntry, e.reason}, [&] {
        return stop_vm(StopReason::kGuestFault,
                       fmt::format("VM entry failed (KVM_EXIT_FAIL_ENTRY, reason {:#x})", e.reason),
                       ctx.vcpu_id);
    });
}

Route ExitRouter::on_internal_error(ExitContext &ctx, const kvm::InternalErrorExit &e) const {
    return event(ctx, {ExitEvent::Kind::kInternalError, e.suberror}, [&] {
        return stop_vm(StopReason::kGuestFault,
                       e.suberror == KVM_INTERNAL_ERROR_EMULATION
                           ? fmt::format("KVM internal error, suberror 1 (emulation failure: "
                                         "the host's KVM refused instruction bytes {}, or a "
                                         "triple fault)",
                                         x86::hex_bytes(std::span(e.insn.data(), e.insn_len)))
                           : fmt::format("KVM internal error, suberror {}", e.suberror),
                       ctx.vcpu_id);
    });
}

Route ExitRouter::on_system_event(ExitContext &ctx, const kvm::SystemEventExit &e) const {
    return event(ctx, {ExitEvent::Kind::kSystemEvent, e.type}, [&] {
        if (e.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
            return stop_vm(StopReason::kPowerOff, "system event: shutdown", ctx.vcpu_id, false);
        }
        if (e.type == KVM_SYSTEM_EVENT_RESET) {
            return stop_vm(StopReason::kReset, "system event: reset", ctx.vcpu_id, false);
        }
        return stop_vm(StopReason::kGuestFault, fmt::format("system event {}", e.type),
                       ctx.vcpu_id);
    });
}

Route ExitRouter::on_unknown(ExitContext &ctx, const kvm::UnknownExit &e) const {
    return event(ctx, {ExitEvent::Kind::kUnknown, e.reason}, [&] {
        return stop_vm(StopReason::kUnhandledExit,
                       fmt::format("unhandled KVM exit reason {}", e.reason), ctx.vcpu_id);
    });
}

}  // namespace guestvm
