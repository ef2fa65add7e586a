// The ACPI tables seen from a guest. The acpi_probe guest finds the RSDP by scanning the BIOS
// area, walks XSDT -> MADT and FADT -> DSDT, reports the local APICs and the IOAPIC, checks that
// the PIT's ISA IRQ 0 arrives where the MADT says, and powers off through the FADT's sleep
// control register with the DSDT's \_S5 value: the VM must stop as a power-off from that
// register, not from the platform call. The Linux planners' RSDP reaches a PVH guest, through
// the library and through the CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

struct Ran {
    StopInfo stop;
    std::string serial;
    std::uint64_t rsdp = 0;
};

// Builds a VM with `vcpus` vCPUs and the irqchip, loads the ELF `guest`, lets `prepare` add
// what the test is about, starts core 0 and runs it (at most 60 s).
Ran run_guest(std::shared_ptr<Host> host, int vcpus, const std::string &guest,
              const std::function<void(Vm &)> &prepare) {
    test::Capture capture;
    MachineConfig config = test::config("acpi", 64ull << 20, vcpus);
    config.irqchip = true;
    config.serial_sink = capture.sink();
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return {};
    auto image = read_file(test::guest_path(guest));
    EXPECT_TRUE(image);
    if (!image) return {};
    auto plan = plan_elf(*image, ram_ranges((*vm)->vspace()));
    EXPECT_TRUE(plan) << (plan ? "" : plan.error().message());
    if (!plan || !write_plan((*vm)->vspace(), *plan)) return {};
    prepare(**vm);
    EXPECT_TRUE((*vm)->start_core(0, plan->entry));
    std::jthread watchdog([&](std::stop_token stop) {
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, stop, std::chrono::seconds(60), [] { return false; })) {
            (*vm)->stop({StopReason::kError, "watchdog: the guest did not stop in 60 s"});
        }
    });
    Ran ran;
    ran.stop = (*vm)->run();
    watchdog = {};
    ran.serial = capture.text();
    return ran;
}

Ran run_probe(std::shared_ptr<Host> host, int vcpus) {
    Ran ran;
    auto r = run_guest(std::move(host), vcpus, "acpi_probe", [&](Vm &vm) {
        auto rsdp = install_acpi_tables(vm, {.vcpus = vcpus, .ioapic = true});
        EXPECT_TRUE(rsdp) << (rsdp ? "" : rsdp.error().message());
        if (rsdp) ran.rsdp = *rsdp;
        EXPECT_TRUE(attach_acpi_power(vm));
    });
    r.rsdp = ran.rsdp;
    return r;
}

TEST(Acpi, GuestCountsItsCoresAndPowersOffThroughTheSleepRegister) {
    GUESTVM_REQUIRE_KVM(host);
    for (int vcpus : {1, 4}) {
        SCOPED_TRACE(vcpus);
        Ran r = run_probe(host, vcpus);
        EXPECT_EQ(r.rsdp, 0xe0000u);
        EXPECT_EQ(r.serial.find("FAIL"), std::string::npos) << r.serial;
        for (const std::string &line :
             {std::string("acpi_probe: rsdp 0x000e0000 oem GSTVM"),
              "acpi_probe: lapics " + std::to_string(vcpus) + " enabled, 0 disabled",
              std::string("acpi_probe: ioapics 1 at 0xfec00000 gsi base 0 pins 24"),
              std::string("acpi_probe: isa irq 0 -> gsi 0: pit tick arrived"),
              std::string("acpi_probe: s5 type 5 via port 0x0604")}) {
            EXPECT_NE(r.serial.find(line), std::string::npos) << line << " in\n" << r.serial;
        }
        EXPECT_EQ(r.stop.reason, StopReason::kPowerOff) << r.stop.message;
        EXPECT_NE(r.stop.message.find("S5"), std::string::npos) << r.stop.message;
        EXPECT_EQ(r.stop.vcpu, 0);
    }
}

TEST(Acpi, WithoutTheSleepRegistersTheProbeCannotPowerOff) {
    GUESTVM_REQUIRE_KVM(host);
    // Tables but no device behind the FADT's register: the write goes to an unclaimed port,
    // which stops the VM as unhandled, never as a power-off.
    Ran r = run_guest(host, 1, "acpi_probe", [](Vm &vm) {
        EXPECT_TRUE(install_acpi_tables(vm, {.vcpus = 1, .ioapic = true}));
    });
    EXPECT_NE(r.serial.find("acpi_probe: s5 type 5 via port 0x0604"), std::string::npos)
        << r.serial;
    EXPECT_EQ(r.stop.reason, StopReason::kUnhandledExit) << r.stop.message;
    EXPECT_NE(r.stop.message.find("0x604"), std::string::npos) << r.stop.message;
}

TEST(Acpi, InstallRefusesTablesThatWouldNotDescribeTheVm) {
    GUESTVM_REQUIRE_KVM(host);
    auto plain = build_machine(host, test::config("acpi-no-irqchip", 4 << 20, 1));
    ASSERT_TRUE(plain) << plain.error().message();
    auto with_ioapic = install_acpi_tables(**plain, {.vcpus = 1, .ioapic = true});
    ASSERT_FALSE(with_ioapic);
    EXPECT_EQ(with_ioapic.error().code(), Errc::kInvalidArgument);
    EXPECT_NE(with_ioapic.error().message().find("irqchip"), std::string::npos);
    EXPECT_FALSE(install_acpi_tables(**plain, {.vcpus = 0}));
    EXPECT_TRUE(install_acpi_tables(**plain, {.vcpus = 1, .ioapic = false}));

    auto no_ram = build_machine(host, test::config("acpi-no-ram", 0, 1));
    ASSERT_TRUE(no_ram) << no_ram.error().message();
    auto nowhere = install_acpi_tables(**no_ram, {.vcpus = 1});
    ASSERT_FALSE(nowhere);
    EXPECT_NE(nowhere.error().message().find("ACPI tables"), std::string::npos)
        << nowhere.error().message();
}

TEST(Acpi, PvhKernelIsGivenTheRsdp) {
    GUESTVM_REQUIRE_KVM(host);
    auto image = read_file(std::string(GUESTVM_GUEST_DIR) + "/probe32.elf");
    ASSERT_TRUE(image);
    test::Capture capture;
    MachineConfig config = test::config("acpi-pvh", 64ull << 20, 2);
    config.irqchip = true;
    config.serial_sink = capture.sink();
    auto vm = build_machine(host, std::move(config));
    ASSERT_TRUE(vm) << vm.error().message();
    LinuxBootOptions options{};
    options.acpi = {.vcpus = 2, .ioapic = true};
    auto plan = plan_linux_pvh(*image, options, ram_ranges((*vm)->vspace()));
    ASSERT_TRUE(plan) << plan.error().message();
    ASSERT_TRUE(write_plan((*vm)->vspace(), *plan));
    (*vm)->set_boot_mode(plan->entry.mode);
    ASSERT_TRUE((*vm)->start_core(0, plan->entry));
    StopInfo stop = (*vm)->run();
    EXPECT_EQ(stop.reason, StopReason::kPowerOff) << stop.message;
    EXPECT_TRUE(capture.contains("rsdp=0x00000000000e0000")) << capture.text();
    // The tables the guest was pointed at are in its memory.
    auto host_view = (*vm)->vspace().translate(GuestPhysAddr(0xe0000), 8);
    ASSERT_TRUE(host_view);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(*host_view), 8), "RSD PTR ");
}

TEST(Acpi, CliKernelPathBuildsTablesForItsVcpus) {
    GUESTVM_REQUIRE_KVM(host);
    const std::string cmd = std::string(GUESTVM_CLI) + " run --vcpus 3 --kernel " +
                            GUESTVM_GUEST_DIR + "/probe32.elf 2>&1";
    std::string out;
    FILE *p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    const int status = ::pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_NE(out.find("rsdp=0x00000000000e0000"), std::string::npos) << out;
}

}  // namespace
}  // namespace guestvm
