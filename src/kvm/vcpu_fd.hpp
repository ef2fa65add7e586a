// guestvm::kvm — a KVM vCPU descriptor and its kvm_run mapping.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/registers.hpp"
#include "kvm/exits.hpp"
#include "kvm/mapping.hpp"
#include "kvm/unique_fd.hpp"

namespace guestvm::kvm {

/// KVM_TRANSLATE's answer for one linear address.
struct Translation {
    std::uint64_t physical = 0;
    bool valid = false;
    bool writeable = false;
    bool usermode = false;
};

/// Owns one vCPU descriptor and its kvm_run area. run() must be called from one thread at a
/// time (the vCPU's thread); register access only while no thread is inside run().
class VcpuFd {
  public:
    /// `sync_regs`: KVM_CAP_SYNC_REGS is available, so exits carry the registers in kvm_run.
    /// `xsave_size`: KVM_CAP_XSAVE2's answer (0: only KVM_GET_XSAVE's 4 KiB).
    VcpuFd(UniqueFd fd, Mapping run, int id, bool sync_regs, std::size_t xsave_size = 0);
    VcpuFd(VcpuFd &&) noexcept = default;
    VcpuFd &operator=(VcpuFd &&) noexcept = default;

    int id() const noexcept { return id_; }
    /// The vCPU's descriptor, its kvm_run area unmapped (for VmFd::give_back).
    UniqueFd release_fd() &&noexcept {
        run_map_.reset();
        return std::move(fd_);
    }

    /// KVM_RUN once and decode why it returned. EINTR becomes InterruptedExit.
    Result<Exit> run();

    Result<Registers> get_regs() const;                 ///< KVM_GET_REGS
    Status set_regs(const Registers &regs) const;       ///< KVM_SET_REGS
    Result<SpecialRegisters> get_sregs() const;         ///< KVM_GET_SREGS
    Status set_sregs(const SpecialRegisters &s) const;  ///< KVM_SET_SREGS
    /// The registers at the exit being handled, and writing them back for the next entry.
    /// From kvm_run's sync area when KVM offers it (no ioctl), else KVM_GET/SET_REGS. Only the
    /// vCPU's thread, between run() returning and the next run().
    Result<Registers> exit_regs() const;
    Status set_exit_regs(const Registers &regs);

    /// KVM_SET_MP_STATE to RUNNABLE: with an in-kernel local APIC, a vCPU other than the
    /// bootstrap one otherwise waits for INIT/SIPI inside KVM_RUN.
    Status make_runnable() const;

    /// KVM_GET_MP_STATE (KVM_MP_STATE_*).
    Result<std::uint32_t> mp_state() const;
    /// KVM_GET_FPU / KVM_SET_FPU (x87 and SSE state).
    Result<kvm_fpu> get_fpu() const;
    Status set_fpu(const kvm_fpu &fpu) const;
    /// KVM_GET_XSAVE(2) / KVM_SET_XSAVE: the XSAVE area, as large as KVM says it is (its legacy
    /// region holds FSW and MXCSR; some hosts' KVM_GET_FPU reports MXCSR as 0 and KVM_SET_FPU
    /// ignores it).
    Result<std::vector<std::uint8_t>> get_xsave() const;
    Status set_xsave(std::span<const std::uint8_t> area) const;
    /// KVM_TRANSLATE: the guest's page tables as this vCPU sees them now.
    Result<Translation> translate(std::uint64_t linear) const;
    /// KVM_SET_VCPU_EVENTS: an exception delivered on the next entry (replacing any that KVM
    /// had queued).
    Status inject_exception(std::uint8_t vector, std::optional<std::uint32_t> error_code) const;
    /// Drops an exception KVM queued but has not delivered (a failed emulation's #UD).
    Status clear_pending_exception() const;

    /// KVM_SET_CPUID2 with these entries (must precede long-mode KVM_SET_SREGS).
    Status set_cpuid(std::span<const kvm_cpuid_entry2> entries) const;

    /// Makes the next run() return InterruptedExit before entering the guest, after KVM has
    /// completed any pending I/O (api.rst: immediate_exit). Call from the vCPU's thread.
    void request_immediate_exit() noexcept;
    void clear_immediate_exit() noexcept;

    /// Arms the kick signal for the calling thread: when `signo` arrives, this vCPU's
    /// immediate_exit is set so KVM_RUN returns (or never enters). Call on the vCPU thread.
    void arm_kick_on_this_thread() noexcept;
    static void disarm_kick_on_this_thread() noexcept;
    /// Installs the process-wide handler for `signo` (idempotent). Not async-signal-safe.
    static Status install_kick_handler(int signo);

  private:
    kvm_run *run_struct() const noexcept { return reinterpret_cast<kvm_run *>(run_map_.data()); }
    Exit decode_exit() noexcept;
    /// KVM_SET_VCPU_EVENTS with `vector` injected, or none (nullopt) pending or injected.
    Status set_exception(std::optional<std::uint8_t> vector,
                         std::optional<std::uint32_t> error_code) const;

    UniqueFd fd_;
    Mapping run_map_;
    int id_;
    bool sync_regs_;
    std::size_t xsave_size_;
};

}  // namespace guestvm::kvm
