#include "core/vcpu_loop.hpp"

#include <fmt/format.h>
#include <linux/kvm.h>

#include <mutex>

#include "common/handler_scope.hpp"
#include "guestvm/vm.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm {

namespace {

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};

std::string where(Vcpu &vcpu, kvm::VcpuFd &fd) {
    auto regs = fd.exit_regs();
    return regs ? fmt::format("vCPU {} at RIP {:#x}", vcpu.id().value(), regs->rip)
                : fmt::format("vCPU {}", vcpu.id().value());
}

}  // namespace

void VcpuLoop::run_guest(Vcpu &v) {
    for (;;) {
        auto exit = v.fd_->run();
        if (!exit) {
            v.vm_.stop({StopReason::kError, exit.error().message(), v.id_.value()});
            return;
        }
        if (std::holds_alternative<kvm::InterruptedExit>(*exit)) {
            v.fd_->clear_immediate_exit();
            if (v.leave_guest_.load(std::memory_order_acquire)) return;
            v.count(ExitKind::kInterrupted);
            continue;
        }
        ExitAction action = dispatch(v, *exit);
        if (action != ExitAction::kContinue) {
            v.flush_pending_exit();
            return;
        }
    }
}

ExitAction VcpuLoop::dispatch(Vcpu &v, kvm::Exit &exit) {
    Vm &vm = v.vm_;
    const int id = v.id_.value();
    auto fatal = [&](StopReason reason, std::string what) {
        vm.stop({reason, fmt::format("{} on {}", what, where(v, *v.fd_)), id});
        return ExitAction::kStopVcpu;
    };
    // A registered handler first; kUnhandled (or none) falls back to the default.
    auto event = [&](const ExitEvent &ev, auto &&fallback) {
        ExitAction action = ExitAction::kUnhandled;
        {
            std::shared_lock lock(vm.bus_mutex_);
            const auto &handler = vm.event_handlers_[static_cast<std::size_t>(ev.kind)];
            if (handler) {
                ExitContext ctx{&vm, &v};
                HandlerScope scope;
                action = handler(ctx, ev);
            }
        }
        if (action == ExitAction::kUnhandled) return fallback();
        if (action == ExitAction::kError) {
            return fatal(StopReason::kError, "exit event handler failed");
        }
        return action;
    };
    return std::visit(
        Overloaded{
            [&](kvm::IoExit &io) {
                v.count(ExitKind::kIo);
                if (io.port == psci::kPort) v.count(ExitKind::kPlatformCall);
                ExitContext ctx{&vm, &v};
                for (std::uint32_t i = 0; i < io.count; ++i) {
                    IoAccess access{io.port, io.size, io.is_write,
                                    io.data.subspan(std::size_t{i} * io.size, io.size)};
                    ExitAction action;
                    {
                        std::shared_lock lock(vm.bus_mutex_);
                        HandlerScope scope;
                        action = dispatch_io(vm.io_bus_, ctx, access);
                        if (action == ExitAction::kUnhandled && vm.unhandled_io_handler_) {
                            action = vm.unhandled_io_handler_(ctx, access);
                        }
                    }
                    if (action == ExitAction::kUnhandled) action = vm.unhandled_io(v, access);
                    if (action == ExitAction::kError) {
                        return fatal(StopReason::kError,
                                     fmt::format("handler for port {:#x} failed", io.port));
                    }
                    if (action != ExitAction::kContinue) return action;
                }
                return ExitAction::kContinue;
            },
            [&](kvm::MmioExit &mmio) {
                v.count(ExitKind::kMmio);
                ExitContext ctx{&vm, &v};
                MmioAccess access{mmio.addr, static_cast<std::uint8_t>(mmio.len), mmio.is_write,
                                  mmio.data};
                ExitAction action;
                {
                    HandlerScope scope;
                    action = vm.guest_vspace_->dispatch_fault(ctx, access);
                }
                if (action == ExitAction::kUnhandled) {
                    std::shared_lock lock(vm.bus_mutex_);
                    if (vm.unhandled_memory_) {
                        HandlerScope scope;
                        action = vm.unhandled_memory_(ctx, access);
                    }
                }
                if (action == ExitAction::kUnhandled) {
                    return fatal(
                        StopReason::kUnhandledExit,
                        fmt::format("unhandled MMIO {} of {} bytes at {:#x}",
                                    mmio.is_write ? "write" : "read", mmio.len, mmio.addr));
                }
                if (action == ExitAction::kError) {
                    return fatal(StopReason::kError,
                                 fmt::format("memory fault handler for {:#x} failed", mmio.addr));
                }
                return action;
            },
            [&](kvm::HltExit &) {
                v.count(ExitKind::kHlt);
                return event({ExitEvent::Kind::kHlt, 0}, [] {
                    // No in-kernel irqchip: HLT returns to us. Resume after it (a spurious
                    // wake, which guests must tolerate); the exit count shows a guest spinning.
                    return ExitAction::kContinue;
                });
            },
            [&](kvm::ShutdownExit &) {
                v.count(ExitKind::kShutdown);
                return event({ExitEvent::Kind::kShutdown, 0}, [&] {
                    return fatal(StopReason::kGuestFault, "triple fault (KVM_EXIT_SHUTDOWN)");
                });
            },
            [&](kvm::FailEntryExit &e) {
                v.count(ExitKind::kFailEntry);
                return event({ExitEvent::Kind::kFailEntry, e.reason}, [&] {
                    return fatal(StopReason::kGuestFault,
                                 fmt::format("VM entry failed (KVM_EXIT_FAIL_ENTRY, reason {:#x})",
                                             e.reason));
                });
            },
            [&](kvm::InternalErrorExit &e) {
                v.count(ExitKind::kInternalError);
                return event({ExitEvent::Kind::kInternalError, e.suberror}, [&] {
                    return fatal(StopReason::kGuestFault,
                                 fmt::format("KVM internal error, suberror {}{}", e.suberror,
                                             e.suberror == KVM_INTERNAL_ERROR_EMULATION
                                                 ? " (emulation failure: likely a triple fault)"
                                                 : ""));
                });
            },
            [&](kvm::SystemEventExit &e) {
                v.count(ExitKind::kSystemEvent);
                return event({ExitEvent::Kind::kSystemEvent, e.type}, [&] {
                    if (e.type == KVM_SYSTEM_EVENT_SHUTDOWN) {
                        vm.stop({StopReason::kPowerOff, "system event: shutdown", id});
                        return ExitAction::kStopVcpu;
                    }
                    if (e.type == KVM_SYSTEM_EVENT_RESET) {
                        vm.stop({StopReason::kReset, "system event: reset", id});
                        return ExitAction::kStopVcpu;
                    }
                    return fatal(StopReason::kGuestFault, fmt::format("system event {}", e.type));
                });
            },
            [&](kvm::InterruptedExit &) { return ExitAction::kContinue; },
            [&](kvm::UnknownExit &e) {
                v.count(ExitKind::kUnknown);
                return event({ExitEvent::Kind::kUnknown, e.reason}, [&] {
                    return fatal(StopReason::kUnhandledExit,
                                 fmt::format("unhandled KVM exit reason {}", e.reason));
                });
            },
        },
        exit);
}

}  // namespace guestvm
