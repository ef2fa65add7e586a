// guestvm — a virtual CPU: a KVM vCPU run by its own host thread.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "guestvm/boot_mode.hpp"
#include "guestvm/error.hpp"
#include "guestvm/exits.hpp"
#include "guestvm/registers.hpp"
#include "guestvm/types.hpp"

namespace guestvm {

class Vm;
struct EntryState;

/// A vCPU's lifecycle. The legal transitions live in one place (Vcpu.cpp):
///   kCreated/kOff --start--> kRunning <--suspend/resume--> kSuspended
///   kRunning/kSuspended --CPU_OFF--> kOff      any --VM stop / fatal exit--> kStopped
/// kWaiting: the vCPU's thread sits in KVM_RUN while the vCPU waits for INIT/SIPI from another
/// vCPU's local APIC (Vm::await_sipi); it is assigned but not online until the INIT arrives.
enum class VcpuState : std::uint8_t { kCreated, kRunning, kSuspended, kOff, kStopped, kWaiting };

const char *vcpu_state_name(VcpuState state) noexcept;

/// One vCPU of a Vm. Owns its KVM vCPU descriptor and, once started, one host thread that runs
/// KVM_RUN and dispatches exits. Queries (id, target_core, online, caps) are lock-free and may
/// be called from any thread; register access and suspend/resume pause the thread safely.
class Vcpu {
  public:
    Vcpu(const Vcpu &) = delete;
    Vcpu &operator=(const Vcpu &) = delete;

    VcpuId id() const noexcept { return id_; }
    Vm &vm() const noexcept { return vm_; }
    /// The guest core this vCPU is assigned to, or -1.
    int target_core() const noexcept { return target_core_.load(std::memory_order_acquire); }
    /// True from a successful start until CPU_OFF, a fatal exit or VM stop (suspended counts).
    bool online() const noexcept {
        auto s = state_.load(std::memory_order_acquire);
        return s == VcpuState::kRunning || s == VcpuState::kSuspended;
    }
    VcpuState state() const noexcept { return state_.load(std::memory_order_acquire); }
    /// Capability to this vCPU's TCB object (its host thread).
    CPtr tcb() const noexcept { return tcb_cap_; }
    /// Capability to this vCPU's VCPU object (its KVM vCPU).
    CPtr cap() const noexcept { return vcpu_cap_; }

    /// Starts the vCPU at `entry` in `mode` with `arg` in RDI (EDI in 32-bit modes).
    /// kAlreadyExists if it is online; kBadState once the VM has stopped.
    Status start(std::uint64_t entry, BootMode mode, std::uint64_t arg);
    /// Starts the vCPU in `state` (a loader's LoadPlan::entry, for instance).
    Status start(const EntryState &state);
    /// Puts a vCPU that is not online into `state` without starting it (kAlreadyExists when
    /// it is online).
    Status prepare(const EntryState &state);
    /// Starts the vCPU with the registers it holds now (as set with set_registers and
    /// set_special_registers before the start, or where it went off).
    Status start_current();

    /// Takes this vCPU off (PSCI CPU_OFF): only from an exit handler on its own thread, which
    /// then answers ExitAction::kStopVcpu. kBadState from any other thread.
    Status cpu_off();

    /// Pauses an online vCPU's guest execution; returns once it is out of KVM_RUN, or kTimeout
    /// after 5 s (a VMM exit handler that does not return; the vCPU parks when it does).
    Status suspend();
    /// Continues a suspended vCPU where it stopped.
    Status resume();

    Result<Registers> registers();
    Status set_registers(const Registers &regs);
    Result<SpecialRegisters> special_registers();
    Status set_special_registers(const SpecialRegisters &sregs);

    /// Host-thread attributes: applied now if the thread exists (the error names the call that
    /// refused, e.g. setpriority without CAP_SYS_NICE), else when it starts.
    Status set_name(std::string name);
    Status set_priority(int priority);  ///< seL4 priority 0..255 → host nice 19..-20
    Status set_affinity(int host_cpu);  ///< -1 clears
    int priority() const;
    /// What applying the thread attributes last gave (at a set_* call or at thread start).
    Status thread_attributes() const;

    ExitCounts exit_counts() const noexcept;
    /// Where the guest was each time Vm::sample_rips() interrupted it: RIP → samples.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> rip_samples() const;
    /// What the creator attached with Vm::add_vcpu (immutable).
    void *user_data() const noexcept { return user_data_; }

    /// The vCPU's KVM descriptor, kernel objects and thread (internal: src/core/vcpu_state.hpp).
    struct State;
    ~Vcpu();

  private:
    struct PrivateTag {};
    friend class Vm;

  public:
    /// Only Vm can make one (PrivateTag); public so that make_unique can reach it.
    Vcpu(PrivateTag, Vm &vm, VcpuId id, void *user_data, std::unique_ptr<State> state);

  private:
    void thread_main();
    /// Creates the KVM vCPU if it does not exist yet (VmConfig::defer_kvm_vcpus); the _locked
    /// form with the vCPU's lock held.
    Status ensure_kvm();
    Status ensure_kvm_locked();
    /// start() and start_current(): `state` null keeps the registers as they are.
    Status start_impl(const EntryState *state);
    /// Runs the guest until kicked, parked or stopped, routing each exit through the VM's
    /// router (src/core/vcpu_loop.cpp). Returns when it should park.
    void run_guest();
    /// Whether this vCPU waits for the handler turn that the calling thread holds: it is out of
    /// KVM_RUN and stays there until the caller lets the turn go.
    bool waits_for_callers_turn() const noexcept;
    /// "vCPU n at RIP x" for stop messages (the RIP of the last exit, when readable).
    std::string where() const;
    /// Leaves KVM_RUN cleanly: completes pending I/O without running guest code.
    void flush_pending_exit();
    /// Runs fn() while the vCPU's thread is out of KVM_RUN (directly if called from it).
    template <typename F>
    auto with_paused(F &&fn) -> decltype(fn());
    void kick_locked();
    bool on_own_thread() const;
    Status apply_thread_attributes_locked();
    /// VM stop: mark stopped and make the thread leave (returns at once).
    void request_stop();
    /// Like request_stop(), then waits for the thread and joins it; kTimeout (thread not joined)
    /// if it is still in an exit handler at `deadline`. No deadline: waits as long as it takes.
    Status stop_and_join(std::optional<std::chrono::steady_clock::time_point> deadline);
    /// Called by the run loop on CPU_OFF from the guest (state → kOff).
    void go_off();
    void count(ExitKind kind) noexcept;
    /// Vm::sample_rips for this vCPU.
    void sample_rip();
    /// Vm::await_sipi for this vCPU: its thread enters KVM_RUN with the vCPU uninitialised.
    Status await_sipi();
    /// Called by the run loop of a kWaiting vCPU after KVM_RUN returned: kRunning (online) once
    /// KVM no longer holds it uninitialised.
    void note_started_by_sipi();
    Status start_thread_locked();
    bool set_state_locked(VcpuState to);

    Vm &vm_;
    const VcpuId id_;
    void *const user_data_;
    // What the lock-free queries read.
    std::atomic<int> target_core_{-1};
    std::atomic<VcpuState> state_{VcpuState::kCreated};
    CPtr tcb_cap_;
    CPtr vcpu_cap_;
    // Everything else: the KVM vCPU, its kernel objects, exit counts and the thread that runs
    // it (src/core/vcpu_state.hpp). Destroyed after stop_and_join() has joined the thread.
    std::unique_ptr<State> s_;
};

}  // namespace guestvm

#pragma GCC visibility pop
