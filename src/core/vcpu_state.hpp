// guestvm — what a Vcpu owns beyond its lock-free queries (internal to src/core).
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "arch/x86/insn_assist.hpp"
#include "core/objects.hpp"
#include "guestvm/exits.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/vcpu.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm {

class ExitRouter;

/// The KVM vCPU, its kernel objects, its exit counts and the host thread that runs it. The
/// thread-control fields are guarded by mutex_; the thread is joined before this is destroyed.
struct Vcpu::State {
    State(const ExitRouter &router, std::unique_ptr<kvm::VcpuFd> fd)
        : router_(router), fd_(std::move(fd)) {}

    const ExitRouter &router_;
    /// Null until the KVM vCPU exists (VmConfig::defer_kvm_vcpus); set once, under mutex_.
    std::unique_ptr<kvm::VcpuFd> fd_;
    /// A deferred vCPU's initial state, applied when its KVM vCPU is created (guarded by mutex_).
    std::unique_ptr<EntryState> pending_entry_;
    std::shared_ptr<TcbObject> tcb_object_;
    std::shared_ptr<VcpuObject> vcpu_object_;
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(ExitKind::kCount)> exits_{};
    // Instructions completed for the host's emulator (x86::AssistedInsn order).
    std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(x86::AssistedInsn::kCount)>
        assisted_{};

    // RIP samples (Vm::sample_rips): asked for by sample_requested_, taken by the run loop.
    std::atomic<bool> sample_requested_{false};
    mutable std::mutex samples_mutex_;
    std::unordered_map<std::uint64_t, std::uint64_t> samples_;

    // Thread control, guarded by mutex_.
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool in_guest_ = false;     // the thread is between its park point and the next park
    bool exit_thread_ = false;  // the thread must return
    bool thread_done_ = false;
    int pause_requests_ = 0;
    std::atomic<bool> leave_guest_{false};  // read by the run loop after a kick
    /// Out of KVM_RUN, waiting for the VM's handler turn (VmConfig::serialize_handlers).
    std::atomic<bool> awaiting_turn_{false};
    std::string thread_name_;
    int priority_ = 0;
    int affinity_ = -1;
    Status attributes_;  // what applying name, priority and affinity last gave
    std::atomic<pid_t> tid_{0};
    std::atomic<std::thread::id> running_thread_{};  // the vCPU's thread while it runs
    std::jthread thread_;  // last: joined before anything above is destroyed
};

}  // namespace guestvm
