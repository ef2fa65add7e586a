// The emulation assist on a real VM: guests of our own run, at CPL 0, the instructions the
// VMM completes for a host emulator that refuses them, one it does not complete, and CPUID.
// On a host whose KVM runs kernel code natively the guests' checks hold too; the assertions on
// what the VMM completed apply where the assist is on.
#include "arch/x86/insn_assist.hpp"

#include <gtest/gtest.h>

#include <map>

#include "kvm_fixture.hpp"

namespace guestvm {
namespace {

struct Ran {
    StopInfo stop;
    std::string serial;
    std::map<std::string, std::uint64_t> assisted;
    bool assist = false;
};

Ran run_guest(std::shared_ptr<Host> host, const std::string &guest, EmulationAssist assist) {
    test::Capture capture;
    MachineConfig config = test::config(guest, 8 << 20);
    config.serial_sink = capture.sink();
    config.emulation_assist = assist;
    auto vm = build_machine(std::move(host), std::move(config));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return {};
    auto image = read_file(test::guest_path(guest));
    EXPECT_TRUE(image);
    if (!image) return {};
    auto loaded = load_elf((*vm)->vspace(), *image);
    EXPECT_TRUE(loaded);
    if (!loaded) return {};
    EXPECT_TRUE((*vm)->start_core(0, loaded->entry));
    Ran out;
    out.stop = (*vm)->run();
    out.serial = capture.text();
    for (auto &[name, n] : (*vm)->assisted_instructions()) out.assisted[name] = n;
    out.assist = (*vm)->emulation_assist();
    return out;
}

TEST(EmulationAssist, AutoFollowsTheHostAndTheFlagWins) {
    GUESTVM_REQUIRE_KVM(host);
    auto make = [&](EmulationAssist a) {
        VmConfig c;
        c.emulation_assist = a;
        return Vm::create(host, c);
    };
    auto automatic = make(EmulationAssist::kAuto);
    auto on = make(EmulationAssist::kOn);
    auto off = make(EmulationAssist::kOff);
    ASSERT_TRUE(automatic && on && off);
    EXPECT_EQ((*automatic)->emulation_assist(), x86::host_emulates_guest_kernel());
    EXPECT_TRUE((*on)->emulation_assist());
    EXPECT_FALSE((*off)->emulation_assist());
    EXPECT_FALSE((*on)->linux_kernel_args().empty());
    EXPECT_TRUE((*off)->linux_kernel_args().empty());
}

TEST(EmulationAssist, CompletesEachRefusedInstructionAsTheCpu) {
    GUESTVM_REQUIRE_KVM(host);
    Ran ran = run_guest(host, "insn_assist", EmulationAssist::kAuto);
    EXPECT_EQ(ran.stop.reason, StopReason::kPowerOff) << ran.stop.message << "\n" << ran.serial;
    EXPECT_NE(ran.serial.find("insn_assist: 19 of 19 checks passed"), std::string::npos)
        << ran.serial;
    if (!ran.assist) GTEST_SKIP() << "this host's KVM runs kernel code natively: nothing to assist";
    // What this host's emulator refused and the VMM completed (docs/linux.md): the guest runs
    // int3 once, fwait twice, ldmxcsr 9 times and stmxcsr 7 times, stac and clac once each.
    EXPECT_EQ(ran.assisted["int3"], 1u);
    EXPECT_EQ(ran.assisted["fwait"], 2u);
    EXPECT_EQ(ran.assisted["ldmxcsr"], 9u);
    EXPECT_GE(ran.assisted["stmxcsr"], 7u);
    EXPECT_EQ(ran.assisted["stac"], 1u);
    EXPECT_EQ(ran.assisted["clac"], 1u);
}

TEST(EmulationAssist, OffLeavesTheRefusalToStopTheVmWithItsBytes) {
    GUESTVM_REQUIRE_KVM(host);
    if (!x86::host_emulates_guest_kernel()) GTEST_SKIP() << "the host's KVM refuses nothing";
    Ran ran = run_guest(host, "insn_assist", EmulationAssist::kOff);
    EXPECT_EQ(ran.stop.reason, StopReason::kGuestFault);
    EXPECT_NE(ran.stop.message.find("refused instruction bytes cc"), std::string::npos)
        << ran.stop.message;
    EXPECT_TRUE(ran.assisted.empty());
}

TEST(EmulationAssist, AnUnknownRefusedInstructionStopsTheVmNamingItsBytes) {
    GUESTVM_REQUIRE_KVM(host);
    Ran ran = run_guest(host, "refused_insn", EmulationAssist::kAuto);
    if (!ran.assist) {
        EXPECT_EQ(ran.stop.reason, StopReason::kPowerOff) << ran.stop.message;
        return;
    }
    EXPECT_EQ(ran.stop.reason, StopReason::kGuestFault) << ran.stop.message;
    EXPECT_NE(ran.stop.message.find("f0 48 0f c7 0f"), std::string::npos) << ran.stop.message;
    EXPECT_NE(ran.stop.message.find("vCPU 0 at RIP"), std::string::npos) << ran.stop.message;
}

// A Linux guest must not see the features the host refuses: either KVM applies the CPUID mask
// to the guest's CPUID instruction, or the VM hands Linux the same mask on its command line.
TEST(EmulationAssist, AGuestSeesTheMaskOrLinuxIsToldIt) {
    GUESTVM_REQUIRE_KVM(host);
    Ran ran = run_guest(host, "cpuid_probe", EmulationAssist::kOn);
    ASSERT_EQ(ran.stop.reason, StopReason::kPowerOff) << ran.stop.message;
    const auto at = ran.serial.find("cpuid 1 ecx=0x");
    ASSERT_NE(at, std::string::npos) << ran.serial;
    const std::uint32_t ecx = std::stoul(ran.serial.substr(at + 14, 8), nullptr, 16);
    const bool masked = (ecx & (1u << 26)) == 0 && (ecx & (1u << 13)) == 0;
    VmConfig c;
    c.emulation_assist = EmulationAssist::kOn;
    auto vm = Vm::create(host, c);
    ASSERT_TRUE(vm);
    const std::string args = (*vm)->linux_kernel_args();
    EXPECT_TRUE(masked || (args.find("noxsave") != std::string::npos &&
                           args.find("141") != std::string::npos))
        << "guest CPUID 1 ECX " << std::hex << ecx << ", kernel args: " << args;
    std::printf("[ figures  ] guest CPUID 1 ECX %#x with the mask set: KVM %s it\n", ecx,
                masked ? "applies" : "does not apply");
}

}  // namespace
}  // namespace guestvm
