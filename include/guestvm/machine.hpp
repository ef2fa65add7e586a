// guestvm — the machine builder: which RAM, vCPUs and devices a VM gets.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <cstdint>
#include <memory>

#include "guestvm/error.hpp"
#include "guestvm/exits.hpp"
#include "guestvm/host.hpp"
#include "guestvm/loader.hpp"
#include "guestvm/serial.hpp"
#include "guestvm/vm.hpp"

namespace guestvm {

/// A whole machine: the core's VmConfig plus RAM, vCPUs and the devices guestvm attaches.
/// The CLI and the C++ API build PCs with a UART and the platform call; a libsel4vm C-API VM
/// can ask for none.
struct MachineConfig : VmConfig {
    /// RAM from guest-physical 0: up to 3 GiB below the MMIO hole, the rest from 4 GiB. A
    /// multiple of 4 KiB, at least 2 MiB, or 0 for none (the caller adds its own).
    std::uint64_t ram_bytes = 64ull << 20;
    int vcpus = 1;
    /// KVM's in-kernel interrupt controllers and timer (Vm::enable_irqchip), created after the
    /// RAM and before the vCPUs.
    bool irqchip = false;
    /// If set, bound to the receive line of the UART below (COM1's input; guestvm/serial.hpp).
    /// One SerialInput serves one machine: a second build with it is refused.
    std::shared_ptr<SerialInput> serial_input;
    /// With the irqchip, KVM's in-kernel 8254 PIT too (ports 0x40-0x43 and 0x61 then never
    /// reach the VM's handlers); false leaves the PIT to a VMM's own model.
    bool kernel_pit = true;
    bool serial = true;          ///< an 8250 UART at 0x3f8 (IRQ 4 once there is an irqchip)
    SerialSink serial_sink;      ///< null: output is discarded
    bool platform_calls = true;  ///< the PSCI-semantics platform call at kPlatformCallPort
};

/// The platform call's port and port count (docs/platform-call.md).
inline constexpr std::uint16_t kPlatformCallPort = 0x0ff0;

/// Builds the VM `config` describes: the KVM VM, its RAM and boot tables, the irqchip, the
/// vCPUs, then the devices. Nothing is returned half-built: any failure is the error.
Result<std::unique_ptr<Vm>> build_machine(std::shared_ptr<Host> host, MachineConfig config);

/// Adds RAM of `bytes` to a VM with the machine's layout (below 3 GiB, the rest from 4 GiB)
/// and writes the boot tables.
Status add_machine_ram(Vm &vm, std::uint64_t bytes);

/// Puts guestvm's 8250 UART on the VM's ports 0x3f8..0x3ff, writing to `sink`, with `input`
/// (if given) bound to its receive line until the VM is destroyed.
Status attach_serial(Vm &vm, SerialSink sink, std::shared_ptr<SerialInput> input = nullptr);

/// Puts the platform call (PSCI semantics) on the VM's port kPlatformCallPort.
Status attach_platform_call(Vm &vm);

/// The hardware-reduced ACPI sleep registers the FADT names: control, then status.
inline constexpr std::uint16_t kAcpiSleepControlPort = 0x604;
inline constexpr std::uint16_t kAcpiSleepStatusPort = 0x605;

/// Puts the ACPI sleep registers on ports kAcpiSleepControlPort and kAcpiSleepStatusPort: a
/// guest that writes SLP_EN with the \_S5 sleep type (what Linux's ACPI power-off does) stops
/// the VM with StopReason::kPowerOff. Other sleep states are ignored (docs/acpi.md).
Status attach_acpi_power(Vm &vm);

/// Writes the ACPI tables `options` describes (the ones plan_linux_* add) into the VM's RAM
/// at 0xe0000 and returns the RSDP's guest-physical address. Refuses tables that would not
/// describe the VM: an IOAPIC without its irqchip, no vCPUs, or no RAM under the tables.
Result<std::uint64_t> install_acpi_tables(Vm &vm, const AcpiOptions &options);

}  // namespace guestvm

#pragma GCC visibility pop
