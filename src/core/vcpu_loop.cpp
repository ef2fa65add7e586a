// The vCPU's run loop: KVM_RUN, count the exit, route it, apply the route.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "arch/x86/insn_assist.hpp"
#include "core/exit_router.hpp"
#include "core/vcpu_state.hpp"
#include "core/vm_state.hpp"
#include "guestvm/vcpu.hpp"
#include "guestvm/vm.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm {

namespace {

/// The vCPU an emulation failure stopped, as the instruction assist sees it: KVM's registers,
/// FPU, page-table walk and event injection, and guest RAM.
class KvmAssistCpu final : public x86::AssistCpu {
  public:
    KvmAssistCpu(kvm::VcpuFd &fd, GuestVSpace &memory) : fd_(fd), memory_(memory) {}
    Result<Registers> regs() override { return fd_.exit_regs(); }
    Status set_regs(const Registers &r) override { return fd_.set_exit_regs(r); }
    Result<SpecialRegisters> sregs() override { return fd_.get_sregs(); }
    Status set_cr2(std::uint64_t cr2) override {
        GUESTVM_TRY_ASSIGN(s, fd_.get_sregs());
        s.cr2 = cr2;
        return fd_.set_sregs(s);
    }
    // The XSAVE area's legacy region: FSW at byte 2, MXCSR at byte 24 (SDM vol. 1, 13.4.1).
    Result<std::uint16_t> fpu_status() override {
        GUESTVM_TRY_ASSIGN(area, fd_.get_xsave());
        std::uint16_t fsw;
        std::memcpy(&fsw, area.data() + 2, 2);
        return fsw;
    }
    Result<std::uint32_t> mxcsr() override {
        GUESTVM_TRY_ASSIGN(area, fd_.get_xsave());
        std::uint32_t value;
        std::memcpy(&value, area.data() + 24, 4);
        return value;
    }
    Status set_mxcsr(std::uint32_t value) override {
        GUESTVM_TRY_ASSIGN(area, fd_.get_xsave());
        std::memcpy(area.data() + 24, &value, 4);
        return fd_.set_xsave(area);
    }
    Result<Mapping> translate(std::uint64_t linear) override {
        GUESTVM_TRY_ASSIGN(t, fd_.translate(linear));
        return Mapping{t.physical, t.valid, t.writeable};
    }
    Status read(std::uint64_t gpa, std::span<std::uint8_t> out) override {
        return memory_.read(GuestPhysAddr(gpa), out);
    }
    Status write(std::uint64_t gpa, std::span<const std::uint8_t> in) override {
        return memory_.write(GuestPhysAddr(gpa), in);
    }
    Status inject(std::uint8_t vector, std::optional<std::uint32_t> code) override {
        return fd_.inject_exception(vector, code);
    }

  private:
    kvm::VcpuFd &fd_;
    GuestVSpace &memory_;
};

/// Completes an instruction the host's emulator refused (VmConfig::emulation_assist).
/// kInvalidArgument: the assist does not know it (the exit is then routed as usual, with its
/// bytes filled in); any other error: completing it failed.
Result<x86::AssistedInsn> complete_refused(kvm::VcpuFd &fd, GuestVSpace &memory,
                                           kvm::InternalErrorExit &e) {
    KvmAssistCpu cpu(fd, memory);
    if (e.insn_len == 0) {
        // An older KVM: read the bytes at RIP ourselves (also for the stop message).
        GUESTVM_TRY_ASSIGN(fetched, x86::fetch_instruction(cpu));
        e.insn_len = static_cast<std::uint8_t>(std::min<std::size_t>(fetched.size(), 15));
        std::copy_n(fetched.begin(), e.insn_len, e.insn.begin());
    }
    GUESTVM_TRY_ASSIGN(done, x86::complete_instruction(std::span(e.insn.data(), e.insn_len), cpu));
    if (!done.exception) GUESTVM_TRY(fd.clear_pending_exception());
    return done.insn;
}

}  // namespace

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
        if (state_.load(std::memory_order_acquire) == VcpuState::kWaiting) note_started_by_sipi();
        if (std::holds_alternative<kvm::InterruptedExit>(*exit)) {
            s_->fd_->clear_immediate_exit();
            if (s_->sample_requested_.exchange(false, std::memory_order_acq_rel)) {
                if (auto regs = s_->fd_->exit_regs()) {
                    std::lock_guard lock(s_->samples_mutex_);
                    ++s_->samples_[regs->rip];
                }
            }
            if (s_->leave_guest_.load(std::memory_order_acquire)) return;
            continue;
        }
        if (auto *failed = std::get_if<kvm::InternalErrorExit>(&*exit);
            failed != nullptr && failed->suberror == KVM_INTERNAL_ERROR_EMULATION &&
            vm_.emulation_assist()) {
            auto assisted = complete_refused(*s_->fd_, vm_.vspace(), *failed);
            if (assisted) {
                s_->assisted_[static_cast<std::size_t>(*assisted)].fetch_add(
                    1, std::memory_order_relaxed);
                continue;
            }
            // An instruction the assist does not know is routed (its bytes in the stop message);
            // anything else (a failed ioctl, an operand outside RAM) stops the VM with the cause.
            if (assisted.error().code() != Errc::kInvalidArgument) {
                vm_.stop(
                    {StopReason::kError,
                     fmt::format("completing instruction {} for the host's emulator: {} on {}",
                                 x86::hex_bytes(std::span(failed->insn.data(), failed->insn_len)),
                                 assisted.error().message(), where()),
                     id_.value()});
                flush_pending_exit();
                return;
            }
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
