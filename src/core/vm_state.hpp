// guestvm — what a Vm owns beyond its lock-free queries (internal to src/core).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/exit_router.hpp"
#include "core/irq_ack.hpp"
#include "guestvm/vm.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm {

/// The KVM VM, its vCPUs, its exit router and the run/stop machinery.
/// Lock order: turn_mutex_ (the serialized mode's handler turn, held around a handler or
/// task, which may take any lock below) → assign_mutex_ → (a vCPU's mutex) → kvm_vcpus_mutex_;
/// stop_mutex_ and irqchip_mutex_ are leaves; join_mutex_, boot_tables_mutex_ and
/// destroy_hooks_mutex_ are taken alone. A thread holding the turn never waits for a vCPU
/// thread that waits for the turn (Vcpu::with_paused and suspend treat such a vCPU as paused).
struct Vm::State {
    explicit State(std::unique_ptr<kvm::VmFd> fd) : fd_(std::move(fd)) {}

    std::unique_ptr<kvm::VmFd> fd_;  // first: destroyed last
    std::mutex assign_mutex_;        // guards vCPU creation, core assignment and start_core
    std::vector<std::unique_ptr<Vcpu>> owned_;
    std::unique_ptr<ExitRouter> router_;
    std::mutex turn_mutex_;  // the handler turn (VmConfig::serialize_handlers)
    /// KVM vCPU creation and the irqchip decision: KVM refuses KVM_CREATE_IRQCHIP once it has
    /// a vCPU, so the two are decided under one lock.
    std::mutex kvm_vcpus_mutex_;
    int kvm_vcpus_ = 0;  // guarded by kvm_vcpus_mutex_: KVM vCPUs created

    std::mutex irqchip_mutex_;
    std::atomic<int> online_count_{0};
    std::atomic<bool> ever_started_{false};
    std::atomic<bool> running_{false};  // run() has been called: "all vCPUs off" stops the VM
    mutable std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
    std::optional<StopInfo> stop_info_;         // guarded by stop_mutex_
    std::vector<std::function<void()>> tasks_;  // guarded by stop_mutex_
    std::mutex join_mutex_;
    std::mutex boot_tables_mutex_;
    bool boot_tables_ = false;  // guarded by boot_tables_mutex_
    std::mutex destroy_hooks_mutex_;
    std::vector<std::function<void()>> destroy_hooks_;  // guarded by destroy_hooks_mutex_

    /// Holds `vm`'s handler turn for its lifetime when the VM serializes handlers (and the
    /// calling thread does not hold it yet); otherwise does nothing.
    class Turn {
      public:
        explicit Turn(const Vm &vm);
        ~Turn();
        Turn(const Turn &) = delete;
        Turn &operator=(const Turn &) = delete;

      private:
        std::mutex *held_ = nullptr;
        const Vm *outer_ = nullptr;
    };

    std::unique_ptr<IrqAckWatcher> irq_acks_;  // last: its thread stops first; irqchip_mutex_
};

}  // namespace guestvm
