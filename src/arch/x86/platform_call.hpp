// guestvm::x86 — the platform call: PSCI's power-management calls over an x86 port.
#pragma once

#include <cstdint>

#include "devices/port_device.hpp"
#include "guestvm/error.hpp"
#include "guestvm/registers.hpp"

namespace guestvm::x86 {

/// Function ids and results as the guest sees them (PSCI 1.0; docs/platform-call.md).
namespace psci {
inline constexpr std::uint32_t kVersion = 0x84000000;
inline constexpr std::uint32_t kCpuOff = 0x84000002;
inline constexpr std::uint32_t kCpuOn32 = 0x84000003;  ///< SMC32 form, for 32-bit guests
inline constexpr std::uint32_t kAffinityInfo32 = 0x84000004;
inline constexpr std::uint32_t kSystemOff = 0x84000008;
inline constexpr std::uint32_t kSystemReset = 0x84000009;
inline constexpr std::uint32_t kCpuOn = 0xC4000003;
inline constexpr std::uint32_t kAffinityInfo = 0xC4000004;
inline constexpr std::int64_t kVersion10 = 0x00010000;
inline constexpr std::int64_t kSuccess = 0;
inline constexpr std::int64_t kNotSupported = -1;
inline constexpr std::int64_t kInvalidParameters = -2;
inline constexpr std::int64_t kAlreadyOn = -4;
inline constexpr std::int64_t kInternalFailure = -6;
inline constexpr std::int64_t kAffinityOn = 0;
inline constexpr std::int64_t kAffinityOff = 1;
/// No PC or ACPI device uses it (docs/platform-call.md says why this one; guests/lib/pcall_port.h).
inline constexpr std::uint16_t kPort = 0x0ff0;
inline constexpr std::uint16_t kPorts = 4;
}  // namespace psci

/// What the platform call needs of the VM it serves; the machine builder implements it over
/// a Vm. Called on the calling vCPU's thread.
class PowerOps {
  public:
    virtual ~PowerOps() = default;
    /// Cores a guest may name: 0 .. core_count() - 1.
    virtual int core_count() const = 0;
    virtual bool in_ram(std::uint64_t guest_phys) const = 0;
    /// True when the VM's registers are 64 bits wide (its boot mode is long mode).
    virtual bool wide_registers() const = 0;
    virtual Result<Registers> registers(int vcpu) = 0;
    virtual Status set_registers(int vcpu, const Registers &regs) = 0;
    /// Claims the core's vCPU and starts it at `entry` with `context` in RDI, atomically
    /// (kAlreadyExists when it is online).
    virtual Status start_core(int core, std::uint64_t entry, std::uint64_t context) = 0;
    virtual bool core_online(int core) const = 0;
    /// Takes the calling vCPU off.
    virtual Status cpu_off(int vcpu) = 0;
    virtual void system_off(int vcpu) = 0;
    virtual void system_reset(int vcpu) = 0;
};

/// The platform-call device: `out dx, eax` to its port with the function id in EAX and the
/// arguments in RBX, RCX, RSI (EBX, ECX, ESI in 32-bit guests); the result comes back in RAX.
/// Reads of the port answer all ones; string I/O (rep outs) runs nothing and answers
/// NOT_SUPPORTED. Stateless apart from `ops`; any vCPU thread.
class PlatformCall {
  public:
    explicit PlatformCall(PowerOps &ops) : ops_(ops) {}
    ExitAction io(PortAccess &access);

  private:
    std::int64_t cpu_on(std::int64_t core, std::uint64_t entry, std::uint64_t context);
    std::int64_t affinity_info(std::int64_t core, std::uint64_t level) const;
    ExitAction set_result(int vcpu, const Registers &regs, PortAccess &access);

    PowerOps &ops_;
};

}  // namespace guestvm::x86
