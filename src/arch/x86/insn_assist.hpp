// guestvm::x86 — completing, in the VMM, instructions that the host's KVM refused to emulate.
//
// On a host whose KVM runs guest kernel code through its instruction emulator (nested KVM
// without VMX/SVM), a few instructions a kernel uses come back as KVM_EXIT_INTERNAL_ERROR
// (emulation failure) with their bytes. The VMM hides the CPUID features whose instructions the
// emulator refuses (assist_cpuid) and completes the rest here, from the bytes, the vCPU's
// registers and guest memory, exactly as the CPU would have (faults included).
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/registers.hpp"

namespace guestvm::x86 {

/// What completing an instruction needs of the vCPU it stopped on: implemented over KVM by the
/// core, and by a fake in unit tests.
class AssistCpu {
  public:
    virtual ~AssistCpu() = default;
    virtual Result<Registers> regs() = 0;
    virtual Status set_regs(const Registers &regs) = 0;
    virtual Result<SpecialRegisters> sregs() = 0;
    virtual Status set_cr2(std::uint64_t cr2) = 0;
    /// The x87 status word and MXCSR.
    virtual Result<std::uint16_t> fpu_status() = 0;
    virtual Result<std::uint32_t> mxcsr() = 0;
    virtual Status set_mxcsr(std::uint32_t value) = 0;
    /// Linear to guest-physical through the guest's page tables; `valid` false: not mapped.
    struct Mapping {
        std::uint64_t physical = 0;
        bool valid = false;
        bool writeable = false;
    };
    virtual Result<Mapping> translate(std::uint64_t linear) = 0;
    /// Guest RAM by guest-physical address (an error outside RAM).
    virtual Status read(std::uint64_t gpa, std::span<std::uint8_t> out) = 0;
    virtual Status write(std::uint64_t gpa, std::span<const std::uint8_t> in) = 0;
    /// Delivers exception `vector` on the next entry, replacing any KVM queued.
    virtual Status inject(std::uint8_t vector, std::optional<std::uint32_t> error_code) = 0;
};

/// The instructions the assist completes.
enum class AssistedInsn : std::uint8_t {
    kInt3,     ///< CC at CPL 0: #BP delivered with RIP after the int3
    kFwait,    ///< 9B: waits for nothing (no x87 exception pending); #NM/#MF as the CPU
    kLdmxcsr,  ///< 0F AE /2
    kStmxcsr,  ///< 0F AE /3
    kClac,     ///< 0F 01 CA
    kStac,     ///< 0F 01 CB
    kCount,
};
const char *assisted_insn_name(AssistedInsn insn) noexcept;

/// One completed instruction: which, and the exception it raised instead of completing (the
/// CPU's own fault: a #PF on its memory operand, #GP on reserved MXCSR bits, #NM, #UD).
struct AssistOutcome {
    AssistedInsn insn;
    std::optional<std::uint8_t> exception;
};

/// Completes the instruction whose bytes are `bytes` (at least its full length; more is
/// ignored) at the vCPU's RIP. An instruction the assist does not know is an error of kind
/// kInvalidArgument whose message names the bytes; nothing is changed then.
Result<AssistOutcome> complete_instruction(std::span<const std::uint8_t> bytes, AssistCpu &cpu);

/// The instruction bytes at the vCPU's RIP, read through its page tables (for a KVM that did not
/// report them): up to 15, fewer where the next page is not mapped.
Result<std::vector<std::uint8_t>> fetch_instruction(AssistCpu &cpu);

/// "0f c7 0e" for an error message.
std::string hex_bytes(std::span<const std::uint8_t> bytes);

/// True when this host's KVM runs guest kernel code in its instruction emulator: the host CPU
/// offers neither VMX nor SVM (KVM on such a host is nested and emulates CPL 0).
bool host_emulates_guest_kernel() noexcept;

/// Kernel command-line arguments that hide the same features from a Linux guest, for hosts
/// whose KVM does not apply KVM_SET_CPUID2 to the CPUID instruction its guests execute (the
/// host this was measured on shows its own CPUID to the guest).
std::string linux_args_for_emulating_host();

/// CPUID as a vCPU on such a host sees it: the features whose instructions the host emulator
/// refuses, or that steer a kernel to instructions it refuses, hidden (docs/linux.md lists
/// them); everything else as KVM supports it.
void mask_cpuid_for_emulating_host(std::vector<kvm_cpuid_entry2> &entries);

}  // namespace guestvm::x86
