// guestvm — the hardware-reduced ACPI sleep registers: how a guest powers the machine off.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "devices/port_device.hpp"
#include "guestvm/exits.hpp"

namespace guestvm {

/// The FADT's SLEEP_CONTROL_REG (port kBase) and SLEEP_STATUS_REG (kBase + 1), one byte each
/// (ACPI 6.x section 4.8.3.7). Writing SLP_EN with the \_S5 sleep type calls `power_off` with
/// the writing vCPU's id (the machine layer stops the VM with StopReason::kPowerOff). Other
/// sleep states (S1-S4) are not implemented: such a request is ignored, counted, and answered
/// as an immediate wake (WAK_STS set), so an OS that waits for the wake goes on instead of
/// spinning forever. The control register reads 0 (its bits are write-only); the status
/// register reads WAK_STS, which writing 1 clears.
///
/// Ports 0x604/0x605: no PC or KVM device decodes them, they lie in the 0x600 block where PC
/// chipsets keep their ACPI power-management registers, and they leave 0x600..0x603 free (the
/// PM1a event block there in libsel4vmmplatsupport's layout, per DESIGN.md); docs/acpi.md.
/// Thread-safe.
class AcpiSleep {
  public:
    static constexpr std::uint16_t kBase = 0x604;
    static constexpr std::uint16_t kPorts = 2;
    /// SLEEP_CONTROL_REG: SLP_TYPx in bits 2..4, SLP_EN in bit 5.
    static constexpr std::uint8_t kSleepTypeShift = 2, kSleepTypeMask = 0x1c, kSleepEnable = 0x20;
    /// SLEEP_STATUS_REG: WAK_STS in bit 7.
    static constexpr std::uint8_t kWakeStatus = 0x80;

    using PowerOff = std::function<void(int vcpu)>;

    /// `s5_type` is the SLP_TYP value the DSDT's \_S5 package names.
    AcpiSleep(PowerOff power_off, std::uint8_t s5_type)
        : power_off_(std::move(power_off)), s5_type_(s5_type) {}

    /// An access at offset 0 (control) or 1 (status); wider accesses touch consecutive
    /// registers, bytes past them read 0xff and are not written.
    ExitAction io(PortAccess &access);

    /// Sleep requests for states other than S5 that were ignored (for tests and reports).
    std::uint64_t ignored_requests() const;

  private:
    void write_control(std::uint8_t value, int vcpu);

    PowerOff power_off_;
    const std::uint8_t s5_type_;
    mutable std::mutex mutex_;
    std::uint8_t status_ = 0;
    std::uint64_t ignored_ = 0;
};

}  // namespace guestvm
