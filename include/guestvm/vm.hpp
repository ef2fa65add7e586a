// guestvm — a virtual machine: guest memory, vCPUs, exit routing and its lifecycle.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/exits.hpp"
#include "guestvm/host.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/vcpu.hpp"
#include "guestvm/vspace.hpp"

namespace guestvm {

/// Told of every vCPU state change, on the thread that made it, with the vCPU's lock held:
/// keep it short and do not call back into the vCPU.
using VcpuStateObserver = std::function<void(Vcpu &vcpu, VcpuState state)>;

/// How to create a Vm: what the core itself needs. Which RAM, vCPUs and devices a VM gets is
/// the machine builder's business (guestvm/machine.hpp: MachineConfig, build_machine).
/// Completing, in the VMM, the instructions a host's KVM refuses to emulate (docs/linux.md).
enum class EmulationAssist : std::uint8_t {
    kAuto,  ///< on where the host's KVM emulates guest kernel code (no VMX/SVM on the host)
    kOn,
    kOff,
};

struct VmConfig {
    std::string name = "vm";
    /// The mode vCPUs started by core id (start_core) begin in (Vm::set_boot_mode changes it).
    BootMode boot_mode = BootMode::kLong64;
    UnhandledIoPolicy unhandled_io = UnhandledIoPolicy::kStopVm;
    VcpuStateObserver vcpu_state_observer;  ///< optional
    /// How long run() waits for each vCPU thread to leave its exit handler once the VM stops;
    /// past it run() answers kError naming the vCPU (the destructor still waits for it).
    std::chrono::milliseconds stop_timeout{5000};
    /// Told when a vCPU is assigned a core, or -1 when a failed start_core undoes its claim
    /// (under the VM's assignment lock). Optional.
    std::function<void(Vcpu &vcpu, int core)> vcpu_assign_observer;
    /// On: vCPUs see a CPUID without the features whose instructions the host's emulator
    /// refuses, and the few refused instructions a kernel still runs (int3, fwait, ldmxcsr,
    /// stmxcsr, clac, stac) are completed by the VMM on KVM's emulation-failure exit. Any other
    /// refused instruction stops the VM with its bytes in the message.
    EmulationAssist emulation_assist = EmulationAssist::kAuto;
    /// Creates each vCPU's KVM vCPU when it is first needed (its first start, prepare or
    /// register access) instead of in add_vcpu. KVM takes the irqchip only before its first
    /// vCPU, so this lets enable_irqchip come after add_vcpu, as libsel4vm's call order has it
    /// (the C API sets it). A failure to create the KVM vCPU is then that call's error.
    bool defer_kvm_vcpus = false;
    /// Runs every exit handler of the VM and every task posted to run() one at a time, under
    /// one VM-wide lock (libsel4vm's semantics: its VMM runs all of them on one thread, so
    /// device models have no locks). Otherwise handlers run concurrently on the vCPU threads
    /// and tasks on run()'s thread. The C API sets it unless the VMM opts out.
    bool serialize_handlers = false;
};

/// One VM. Created from a Host; owns its KVM VM, guest memory, vCPUs and their capabilities,
/// and the exit router its vCPUs route exits through. A new Vm has no RAM, vCPU or device.
/// The util queries (vcpu_cap, vcpu_for_target, free_unassigned_vcpu, vcpu) are O(1), lock-free
/// and callable from any thread while vCPUs run. Everything else is thread-safe unless noted.
class Vm {
  public:
    /// A VM with no RAM, vCPU or device (build_machine adds them).
    static Result<std::unique_ptr<Vm>> create(std::shared_ptr<Host> host, VmConfig config);
    ~Vm();
    Vm(const Vm &) = delete;
    Vm &operator=(const Vm &) = delete;

    const std::string &name() const noexcept { return config_.name; }
    const VmConfig &config() const noexcept { return config_; }
    Host &host() const noexcept { return *host_; }
    BootMode boot_mode() const noexcept { return boot_mode_.load(std::memory_order_acquire); }
    /// Changes the mode start_core starts cores in (and 32- vs 64-bit platform-call registers).
    void set_boot_mode(BootMode mode) noexcept {
        boot_mode_.store(mode, std::memory_order_release);
    }

    // ---- vCPUs and the util interface ----
    int vcpu_count() const noexcept { return vcpu_count_.load(std::memory_order_acquire); }
    int vcpu_capacity() const noexcept { return capacity_; }
    /// Creates one more vCPU with the next logical id. `user_data` is stored in the vCPU, and
    /// `initial` (if not null) loaded into its registers, before it becomes visible to any
    /// query (Vcpu::user_data()). `on_configured` (if set; it must not fail) runs on the new
    /// vCPU, with its id and capabilities, before any query or CPU_ON can see it: the place to
    /// fill a handle that exit handlers will be given. On error no vCPU is added and the id
    /// stays free.
    Result<Vcpu *> add_vcpu(void *user_data = nullptr, const EntryState *initial = nullptr,
                            const std::function<void(Vcpu &)> &on_configured = {});
    /// The vCPU with logical id `id`, or null (negative and out-of-range ids included).
    Vcpu *vcpu(int id) const noexcept {
        if (id < 0 || id >= vcpu_count()) return nullptr;
        return vcpus_[static_cast<std::size_t>(id)].load(std::memory_order_acquire);
    }
    /// Capability to vCPU `id`'s VCPU object, or the null cap.
    CPtr vcpu_cap(int id) const noexcept {
        Vcpu *v = vcpu(id);
        return v == nullptr ? kNullCap : v->cap();
    }
    /// The vCPU assigned to guest core `core`, or null.
    Vcpu *vcpu_for_target(int core) const noexcept {
        if (core < 0 || core >= capacity_) return nullptr;
        return cores_[static_cast<std::size_t>(core)].load(std::memory_order_acquire);
    }
    /// The lowest-id vCPU with no target core, or null.
    Vcpu *free_unassigned_vcpu() const noexcept {
        return vcpu(first_unassigned_.load(std::memory_order_acquire));
    }
    /// Assigns `core` to `vcpu`. Refuses a core outside 0..capacity-1, a core already taken,
    /// or a vCPU that already has a core.
    Status assign_target(Vcpu &vcpu, int core);
    /// The vCPU for `core`, claiming and assigning the lowest free one if none is: one atomic
    /// step, so concurrent callers never claim the same vCPU.
    Result<Vcpu *> claim_vcpu_for_core(int core);
    /// Claims the vCPU for `core` as claim_vcpu_for_core does and starts it at `entry` in the
    /// VM's boot mode with `arg` in RDI, as one atomic step (PSCI's CPU_ON is built on it).
    /// kInvalidArgument: core outside 0..capacity-1; kResourceExhausted: no vCPU left to claim;
    /// kAlreadyExists: the core's vCPU is online. A vCPU claimed by this call whose start fails
    /// is unassigned again.
    Status start_core(int core, std::uint64_t entry, std::uint64_t arg);
    /// The same, starting in `state` (a LoadPlan's entry, for instance).
    Status start_core(int core, const EntryState &state);
    /// Assigns a vCPU to `core` and leaves it waiting, inside KVM_RUN, for the INIT/SIPI
    /// sequence another vCPU sends through its local APIC (how an OS such as Linux starts its
    /// application processors from the ACPI MADT). The vCPU is in kWaiting, not online, until
    /// the INIT arrives; then kRunning and online. Needs the irqchip.
    Status await_sipi(int core);

    // ---- interrupts ----
    bool has_irqchip() const noexcept { return irqchip_.load(std::memory_order_acquire); }
    /// Creates KVM's in-kernel interrupt controllers (8259 PICs, IOAPIC, local APICs) and, with
    /// `kernel_pit`, its 8254 timer (ports 0x40-0x43, speaker port 0x61); without it those
    /// ports reach the VM's port handlers, for a VMM with its own PIT (an irqchip without the
    /// PIT is what libsel4vm VMMs get). Needed to raise guest IRQs and by Linux; with it HLT
    /// waits in the kernel. The first successful call decides the PIT. KVM
    /// allows it only before its first vCPU: kBadState once one exists (with
    /// VmConfig::defer_kvm_vcpus, once a vCPU was started or its registers used); idempotent.
    /// Memory-slot changes after it are slower (~7.5 ms each here): add RAM first.
    Status enable_irqchip(bool kernel_pit = true);
    /// Drives guest interrupt line `irq` (GSI 0..23: the 8259 PIC pin for 0..15 and the IOAPIC
    /// pin) high or low. kBadState without the irqchip; kInvalidArgument for another line.
    Status set_irq_line(int irq, bool level);
    /// An edge: the line high, then low.
    Status pulse_irq(int irq);
    /// Calls `h(irq)` when the guest acknowledges interrupt line `irq` (an EOI at the PIC or the
    /// IOAPIC; KVM's resample irqfd), on the VM's interrupt thread: at most once per wake however
    /// many EOIs the guest wrote meanwhile, and only for a line raised through set_irq_line /
    /// pulse_irq since the last acknowledgement (or still held high). An EOI for a line nobody
    /// raised is dropped, so a guest cannot make the VMM run `h` at will. A null handler
    /// removes it. kBadState without the irqchip; kInvalidArgument for another line.
    Status set_irq_ack_handler(int irq, std::function<void(int irq)> h);
    static constexpr int kIrqLines = 24;

    // ---- memory ----
    GuestVSpace &vspace() noexcept { return *guest_vspace_; }
    /// Writes the boot GDTs and page tables (done once; at create when RAM was given, else at
    /// the first vCPU start). Needs RAM over [0, 0x10000).
    Status ensure_boot_tables();
    VmmVSpace &vmm_vspace() noexcept { return vmm_vspace_; }

    // ---- exits ----
    Status add_io_handler(std::uint16_t port, std::uint32_t count, std::string name, IoHandler h);
    /// Port exits each handler's range has taken, by handler name, in port order.
    std::vector<std::pair<std::string, std::uint64_t>> port_exits() const;
    /// Port exits taken by the handler named `name` (0 when there is none).
    std::uint64_t port_exits(std::string_view name) const;
    /// Whether VmConfig::emulation_assist resolved to on for this VM.
    bool emulation_assist() const noexcept { return assist_; }
    /// Arguments a Linux guest's command line needs on this VM: with the emulation assist on,
    /// the features it hides also hidden through Linux's `clearcpuid=` / `noxsave` (some hosts'
    /// KVM shows the guest the host's CPUID whatever KVM_SET_CPUID2 says); else empty.
    std::string linux_kernel_args() const;
    /// Instructions the VMM completed for the host's emulator, by mnemonic, over all vCPUs
    /// (only those completed at least once).
    std::vector<std::pair<std::string, std::uint64_t>> assisted_instructions() const;
    /// Reserves guest-physical [addr, addr+size) for `h` (GuestVSpace::reserve).
    Status add_mmio_handler(std::uint64_t addr, std::uint64_t size, std::string name,
                            MmioHandler h);
    /// Receives accesses to guest-physical memory nobody owns (libsel4vm's unhandled memory
    /// fault callback). Without one, such an access stops the VM naming the address; a handler
    /// answering kUnhandled does the same. Null restores that default.
    Status set_unhandled_memory_handler(MmioHandler h);
    /// Receives port accesses no port handler claims (libsel4vm's unhandled ioport callback).
    /// Answering kUnhandled (or no handler) applies VmConfig::unhandled_io. Null removes it.
    Status set_unhandled_io_handler(IoHandler h);
    /// Handles one kind of non-access exit, replacing (or, by answering kUnhandled, deferring
    /// to) the default: HLT resumes the guest; shutdown, failed entry and internal error stop
    /// the VM with kGuestFault; a system event stops it as power-off, reset or fault; an
    /// unknown exit stops it with kUnhandledExit. kError stops the VM with kError; kStopVcpu
    /// takes the vCPU out of its run loop (the handler must have changed its state). A null
    /// handler restores the default.
    Status set_event_handler(ExitEvent::Kind kind, EventHandler h);

    // ---- handler concurrency ----
    bool handlers_serialized() const noexcept {
        return serialized_.load(std::memory_order_acquire);
    }
    /// Changes VmConfig::serialize_handlers: kBadState once a vCPU has started.
    Status set_serialize_handlers(bool serialized);
    /// Whether the calling thread runs a handler or task of this VM in the serialized mode
    /// (it holds the VM's handler turn).
    bool holds_handler_turn() const noexcept;

    // ---- lifecycle ----
    /// Blocks until the VM stops, then joins every vCPU thread and returns why it stopped
    /// (kError naming the vCPU when one is still in an exit handler after stop_timeout).
    /// From the call on, the VM also stops when no vCPU is online (kAllVcpusOff), at once if
    /// none is online when it is called; before it, vCPUs may go off while others are started.
    StopInfo run();
    /// Interrupts every vCPU running guest code once (the kick signal, without parking it) and
    /// records the guest RIP it left at (Vcpu::rip_samples): call it periodically from a
    /// thread of the VMM's to see where a guest spends its time. Any thread.
    void sample_rips();
    /// Every vCPU's samples, summed by RIP, most frequent first.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> rip_samples() const;
    /// Runs `task` on the thread blocked in run() (at once if it is there, else when run() is
    /// called), in posting order; the way to hand the VMM's main loop work from other threads.
    /// kBadState once the VM has stopped (tasks not yet run when it stops are dropped).
    Status post(std::function<void()> task);
    /// Asks the VM to stop (first reason wins); returns at once. Any thread, any time.
    void stop(StopInfo info = {});
    bool stopped() const noexcept { return stopping_.load(std::memory_order_acquire); }
    /// Runs `hook` first thing when the VM is destroyed, while the VM is still whole (vCPUs
    /// may still run), hooks in the reverse order of their registration: where a device cuts
    /// off a handle that other threads hold (SerialInput). Keep it short; it must not call
    /// back into this VM's lifecycle. A null hook is ignored.
    void on_destroy(std::function<void()> hook);
    std::optional<StopInfo> stop_info() const;

    ExitCounts exit_counts() const;

    /// The KVM VM and what runs it (internal: src/core/vm_state.hpp).
    struct State;

  private:
    struct PrivateTag {};

  public:
    /// Only create() makes one (PrivateTag); public so that make_unique can reach it.
    Vm(PrivateTag, std::shared_ptr<Host> host, VmConfig config, std::unique_ptr<State> state,
       int capacity);

  private:
    friend class Vcpu;

    Status setup();
    Status join_all(std::optional<std::chrono::steady_clock::time_point> deadline);
    void notify_vcpu_state(Vcpu &vcpu, VcpuState state) {
        if (config_.vcpu_state_observer) config_.vcpu_state_observer(vcpu, state);
    }
    Status assign_locked(Vcpu &vcpu, int core);
    void unassign_locked(Vcpu &vcpu, int core);
    Result<Vcpu *> claim_locked(int core, bool &claimed);
    template <typename Start>
    Status claim_and_start(int core, Start &&start);
    void on_vcpu_online();
    void on_vcpu_offline(Vcpu &vcpu);
    /// Creates `vcpu`'s KVM vCPU (deferred vCPUs): the vCPU's lock is held by the caller.
    Status create_kvm_vcpu(Vcpu &vcpu, const EntryState *initial);

    std::shared_ptr<Host> host_;
    VmConfig config_;
    const int capacity_;
    // The KVM VM, the vCPUs it owns, the router, the locks and the run/stop machinery
    // (src/core/vm_state.hpp). Declared before the address spaces: the KVM VM outlives them.
    std::unique_ptr<State> s_;
    VmmVSpace vmm_vspace_;
    std::unique_ptr<GuestVSpace> guest_vspace_;

    // What the lock-free queries read. The vCPU tables have a fixed capacity so readers never
    // see a reallocation.
    std::unique_ptr<std::atomic<Vcpu *>[]> vcpus_;
    std::unique_ptr<std::atomic<Vcpu *>[]> cores_;
    std::atomic<int> vcpu_count_{0};
    std::atomic<int> first_unassigned_{0};
    std::atomic<BootMode> boot_mode_;
    std::atomic<bool> irqchip_{false};
    std::atomic<bool> serialized_{false};
    std::atomic<bool> stopping_{false};
    bool assist_ = false;  // set in setup(), before any vCPU exists
};

}  // namespace guestvm

#pragma GCC visibility pop
