// The vCPU's run loop: KVM_RUN, count the exit, route it, apply the route.
#include <fmt/format.h>

#include "core/exit_router.hpp"
#include "core/vcpu_state.hpp"
#include "guestvm/vcpu.hpp"
#include "guestvm/vm.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm {

std::string Vcpu::where() const {
    auto regs = s_->fd_->exit_regs();
    return regs ? fmt::format("vCPU {} at RIP {:#x}", id_.value(), regs->rip)
                : fmt::format("vCPU {}", id_.value());
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
        Route route = s_->router_.route(ctx, *exit);
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
