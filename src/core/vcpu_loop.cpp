// The vCPU's run loop: KVM_RUN, count the exit, route it, apply the route.
#include <fmt/format.h>

#include "core/exit_router.hpp"
#include "core/vcpu_state.hpp"
#include "core/vm_state.hpp"
#include "guestvm/vcpu.hpp"
#include "guestvm/vm.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm {

std::string Vcpu::where() const {
    auto regs = s_->fd_->exit_regs();
    return regs ? fmt::format("vCPU {} at RIP {:#x}", id_.value(), regs->rip)
                : fmt::format("vCPU {}", id_.value());
}

namespace {
/// Routes one exit, under the VM's handler turn in the serialized mode. Out of KVM_RUN while it
/// waits for the turn (`awaiting` says so): a handler holding the turn may pause this vCPU.
Route route_exit(const ExitRouter &router, const Vm &vm, std::atomic<bool> &awaiting,
                 ExitContext &ctx, kvm::Exit &exit) {
    if (!vm.handlers_serialized()) return router.route(ctx, exit);
    awaiting.store(true, std::memory_order_release);
    Vm::State::Turn turn(vm);
    awaiting.store(false, std::memory_order_release);
    return router.route(ctx, exit);
}
}  // namespace

bool Vcpu::waits_for_callers_turn() const noexcept {
    return vm_.holds_handler_turn() && s_->awaiting_turn_.load(std::memory_order_acquire);
}

void Vcpu::run_guest() {
    for (;;) {
        auto exit = s_->fd_->run();
        if (!exit) {
            vm_.stop({StopReason::kError, exit.error().message(), id_.value()});
            return;
        }
        count(exit_kind(*exit));
        if (std::holds_alternative<kvm::InterruptedExit>(*exit)) {
            s_->fd_->clear_immediate_exit();
            if (s_->leave_guest_.load(std::memory_order_acquire)) return;
            continue;
        }
        ExitContext ctx{&vm_, this, id_.value(), std::nullopt};
        Route route = route_exit(s_->router_, vm_, s_->awaiting_turn_, ctx, *exit);
        if (route.stop) {
            if (route.locate) route.stop->message += fmt::format(" on {}", where());
            vm_.stop(std::move(*route.stop));
        }
        if (route.action != ExitAction::kContinue) {
            flush_pending_exit();
            return;
        }
    }
}

}  // namespace guestvm
