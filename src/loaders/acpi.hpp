// guestvm — the ACPI tables the VMM builds for a guest (docs/acpi.md): RSDP, XSDT, FADT
// (hardware-reduced ACPI), MADT and a DSDT. Pure bytes: no VM is touched, so the Linux
// planners and the machine layer (install_acpi_tables) share one path, add_tables.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "guestvm/error.hpp"
#include "guestvm/loader.hpp"

namespace guestvm::acpi {

/// Where the tables go: the PC's BIOS area, which the memory map marks reserved and where an
/// OS that is given no RSDP address scans for one (16-byte aligned, in [0xe0000, 1 MiB)).
inline constexpr std::uint64_t kTablesAddr = 0xe0000;
inline constexpr std::uint64_t kBiosAreaEnd = 0x100000;

/// KVM's in-kernel interrupt controllers, as the MADT describes them.
inline constexpr std::uint32_t kLocalApicAddr = 0xfee00000;
inline constexpr std::uint32_t kIoApicAddr = 0xfec00000;
inline constexpr std::uint8_t kIoApicId = 0;  // what KVM's IOAPIC ID register reads after reset
inline constexpr unsigned kIoApicPins = 24;

/// The hardware-reduced sleep registers (FADT SLEEP_CONTROL_REG / SLEEP_STATUS_REG), one byte
/// each in I/O space. Why these ports: docs/acpi.md and devices/acpi_sleep.hpp.
inline constexpr std::uint16_t kSleepControlPort = 0x604;
inline constexpr std::uint16_t kSleepStatusPort = 0x605;
/// The SLP_TYP value the DSDT's \_S5 package gives for soft-off.
inline constexpr std::uint8_t kS5SleepType = 5;

/// COM1 as the DSDT describes it.
inline constexpr std::uint16_t kCom1Port = 0x3f8;
inline constexpr unsigned kCom1Irq = 4;

/// The OEM id every table (and the RSDP) carries.
inline constexpr char kOemId[7] = "GSTVM ";

/// Tables laid out for guest-physical `base`: `bytes` go to [base, base + bytes.size()).
struct Tables {
    std::uint64_t base = 0;
    std::uint64_t rsdp = 0;  ///< guest-physical address of the RSDP (== base)
    std::vector<std::uint8_t> bytes;
};

/// Builds the tables for `options` at `base` (16-byte aligned). Refuses no vCPUs, more than
/// fit in the BIOS area when `base` lies in it, and a range that wraps.
Result<Tables> build_tables(const AcpiOptions &options, std::uint64_t base = kTablesAddr);

/// Builds the tables at kTablesAddr and adds them to `plan` as the piece "ACPI tables" (the plan
/// owns the bytes). Returns the RSDP's guest-physical address.
Result<std::uint64_t> add_tables(LoadPlan &plan, const AcpiOptions &options);

/// The byte that makes `bytes` sum to zero modulo 256, when it is added to them.
std::uint8_t checksum_byte(std::span<const std::uint8_t> bytes) noexcept;

}  // namespace guestvm::acpi
