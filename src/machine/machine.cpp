#include "guestvm/machine.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "arch/x86/boot.hpp"
#include "arch/x86/platform_call.hpp"
#include "devices/acpi_sleep.hpp"
#include "devices/serial8250.hpp"
#include "guestvm/vcpu.hpp"
#include "guestvm/vspace.hpp"
#include "loaders/acpi.hpp"

namespace guestvm {

namespace {

constexpr std::uint64_t kGiB = 1ull << 30;
constexpr std::uint64_t kLowRamLimit = 3 * kGiB;  // [3 GiB, 4 GiB) is the MMIO hole
constexpr std::uint64_t kMinRam = 2ull << 20;
static_assert(kPlatformCallPort == x86::psci::kPort);
// The FADT and the device must agree on the sleep registers.
static_assert(kAcpiSleepControlPort == AcpiSleep::kBase &&
              kAcpiSleepStatusPort == AcpiSleep::kBase + 1 && AcpiSleep::kPorts == 2);
static_assert(kAcpiSleepControlPort == acpi::kSleepControlPort &&
              kAcpiSleepStatusPort == acpi::kSleepStatusPort);

Status check(const MachineConfig &config, int max_vcpus) {
    if (config.vcpus < 0 || config.vcpus > max_vcpus) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("VM {}: {} vCPUs requested; KVM allows 0..{}", config.name,
                                      config.vcpus, max_vcpus));
    }
    if (config.serial_input && !config.serial) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("VM {}: a serial input needs the UART (serial = true)", config.name));
    }
    if ((config.ram_bytes != 0 && config.ram_bytes < kMinRam) || config.ram_bytes % 4096 != 0) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("VM {}: RAM size {:#x} must be a multiple of 4 KiB and at "
                                      "least 2 MiB (or 0: none yet)",
                                      config.name, config.ram_bytes));
    }
    if (config.ram_bytes > x86::kMaxIdentityMapped - kGiB) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("VM {}: RAM size {:#x} above the supported {} GiB", config.name,
                        config.ram_bytes, x86::kMaxIdentityMapped / kGiB - 1));
    }
    return {};
}

/// PowerOps over a Vm: the platform call's view of the VM it serves.
class VmPowerOps final : public x86::PowerOps {
  public:
    explicit VmPowerOps(Vm &vm) : vm_(vm) {}
    int core_count() const override { return vm_.vcpu_count(); }
    bool in_ram(std::uint64_t gpa) const override {
        return vm_.vspace().find(GuestPhysAddr(gpa)).has_value();
    }
    bool wide_registers() const override { return vm_.boot_mode() == BootMode::kLong64; }
    Result<Registers> registers(int vcpu) override {
        GUESTVM_TRY_ASSIGN(v, self(vcpu));
        return v->registers();
    }
    Status set_registers(int vcpu, const Registers &regs) override {
        GUESTVM_TRY_ASSIGN(v, self(vcpu));
        return v->set_registers(regs);
    }
    Status start_core(int core, std::uint64_t entry, std::uint64_t context) override {
        return vm_.start_core(core, entry, context);
    }
    bool core_online(int core) const override {
        const Vcpu *v = vm_.vcpu_for_target(core);
        return v != nullptr && v->online();
    }
    Status cpu_off(int vcpu) override {
        GUESTVM_TRY_ASSIGN(v, self(vcpu));
        return v->cpu_off();
    }
    void system_off(int vcpu) override {
        vm_.stop({StopReason::kPowerOff, "guest called SYSTEM_OFF", vcpu});
    }
    void system_reset(int vcpu) override {
        vm_.stop({StopReason::kReset, "guest called SYSTEM_RESET", vcpu});
    }

  private:
    // The router hands a device the id of the vCPU that exited; anything else is refused.
    Result<Vcpu *> self(int vcpu) const {
        if (Vcpu *v = vm_.vcpu(vcpu)) return v;
        return make_error(Errc::kNotFound,
                          fmt::format("platform call from vCPU {}: no such vCPU", vcpu));
    }
    Vm &vm_;
};

/// The platform call and the PowerOps it stands on, owned together by the port handler.
struct PlatformCallDevice {
    explicit PlatformCallDevice(Vm &vm) : ops(vm), call(ops) {}
    ExitAction io(PortAccess &access) { return call.io(access); }
    VmPowerOps ops;
    x86::PlatformCall call;
};

}  // namespace

Status add_machine_ram(Vm &vm, std::uint64_t bytes) {
    const std::uint64_t low = std::min(bytes, kLowRamLimit);
    GUESTVM_TRY(vm.vspace().add_ram(GuestPhysAddr(0), low, "ram-low"));
    if (bytes > low) {
        GUESTVM_TRY(vm.vspace().add_ram(GuestPhysAddr(4 * kGiB), bytes - low, "ram-high"));
    }
    return vm.ensure_boot_tables();
}

Status attach_serial(Vm &vm, SerialSink sink, std::shared_ptr<SerialInput> input) {
    // The line goes nowhere until the VM has an interrupt controller.
    auto irq = [&vm](bool level) {
        if (vm.has_irqchip()) (void)vm.set_irq_line(Serial8250::kIrq, level);
    };
    auto uart = std::make_shared<Serial8250>(std::move(sink), std::move(irq));
    if (input) GUESTVM_TRY(bind_serial_input(*input, uart));
    if (auto added = vm.add_io_handler(Serial8250::kBase, Serial8250::kPorts, "serial8250",
                                       port_handler(Serial8250::kBase, uart));
        !added) {
        if (input) unbind_serial_input(*input);
        return added;
    }
    // The host's writes raise the UART's interrupt through `vm`: cut them off before it goes.
    if (input) vm.on_destroy([uart] { uart->close_input(); });
    return {};
}

Status attach_platform_call(Vm &vm) {
    return vm.add_io_handler(
        x86::psci::kPort, x86::psci::kPorts, "platform-call",
        port_handler(x86::psci::kPort, std::make_shared<PlatformCallDevice>(vm)));
}

Status attach_acpi_power(Vm &vm) {
    auto power_off = [&vm](int vcpu) {
        vm.stop({StopReason::kPowerOff, "guest entered ACPI S5 (soft-off)", vcpu});
    };
    return vm.add_io_handler(
        AcpiSleep::kBase, AcpiSleep::kPorts, "acpi-sleep",
        port_handler(AcpiSleep::kBase,
                     std::make_shared<AcpiSleep>(std::move(power_off), acpi::kS5SleepType)));
}

Result<std::uint64_t> install_acpi_tables(Vm &vm, const AcpiOptions &options) {
    if (options.ioapic && !vm.has_irqchip()) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("VM {}: ACPI tables with an IOAPIC, but the VM has no "
                                      "irqchip (Vm::enable_irqchip)",
                                      vm.name()));
    }
    LoadPlan plan;
    GUESTVM_TRY_ASSIGN(rsdp, acpi::add_tables(plan, options));
    GUESTVM_TRY(write_plan(vm.vspace(), plan));
    return rsdp;
}

Result<std::unique_ptr<Vm>> build_machine(std::shared_ptr<Host> host, MachineConfig config) {
    if (!host) return make_error(Errc::kInvalidArgument, "build_machine: null host");
    GUESTVM_TRY(check(config, host->max_vcpus()));
    auto vm = Vm::create(std::move(host), config);
    if (!vm) return vm;
    Vm &v = **vm;
    if (config.ram_bytes != 0) GUESTVM_TRY(add_machine_ram(v, config.ram_bytes));
    if (config.irqchip) GUESTVM_TRY(v.enable_irqchip(config.kernel_pit));
    for (int i = 0; i < config.vcpus; ++i) {
        auto added = v.add_vcpu();
        if (!added) return std::unexpected(std::move(added).error());
    }
    if (config.serial) {
        GUESTVM_TRY(attach_serial(v, std::move(config.serial_sink), config.serial_input));
    }
    if (config.platform_calls) GUESTVM_TRY(attach_platform_call(v));
    return vm;
}

}  // namespace guestvm
