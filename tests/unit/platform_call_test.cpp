// The platform call (PSCI semantics) over a fake PowerOps: no KVM.
#include "arch/x86/platform_call.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

namespace guestvm::x86 {
namespace {

/// A VM of `cores` cores as the platform call sees it: registers per vCPU, online cores, RAM
/// below `ram_top`, and a log of what was asked.
struct FakeVm final : PowerOps {
    int cores = 4;
    bool wide = true;
    std::uint64_t ram_top = 1 << 20;
    std::map<int, Registers> regs;
    std::map<int, bool> online;
    std::vector<std::string> log;
    Status start_answer;

    int core_count() const override { return cores; }
    bool in_ram(std::uint64_t gpa) const override { return gpa < ram_top; }
    bool wide_registers() const override { return wide; }
    Result<Registers> registers(int vcpu) override { return regs[vcpu]; }
    Status set_registers(int vcpu, const Registers &r) override {
        regs[vcpu] = r;
        return {};
    }
    Status start_core(int core, std::uint64_t entry, std::uint64_t context) override {
        log.push_back(fmt::format("start {} {:#x} {:#x}", core, entry, context));
        if (start_answer) online[core] = true;
        return start_answer;
    }
    bool core_online(int core) const override {
        auto it = online.find(core);
        return it != online.end() && it->second;
    }
    Status cpu_off(int vcpu) override {
        log.push_back(fmt::format("off {}", vcpu));
        return {};
    }
    void system_off(int vcpu) override { log.push_back(fmt::format("system_off {}", vcpu)); }
    void system_reset(int vcpu) override { log.push_back(fmt::format("reset {}", vcpu)); }
};

struct PlatformCallTest : ::testing::Test {
    FakeVm vm;
    PlatformCall call{vm};

    /// `out dx, eax` with the function in RAX and arguments in RBX, RCX, RSI from vCPU 0.
    ExitAction invoke(std::uint64_t fn, std::uint64_t a = 0, std::uint64_t b = 0,
                      std::uint64_t c = 0, std::uint32_t elements = 1) {
        Registers &r = vm.regs[0];
        r.rax = fn;
        r.rbx = a;
        r.rcx = b;
        r.rsi = c;
        std::uint32_t eax = static_cast<std::uint32_t>(fn);
        PortAccess access{
            0,       std::span(reinterpret_cast<std::uint8_t *>(&eax), 4), true, 0, std::nullopt,
            elements};
        return call.io(access);
    }
    std::int64_t rax() { return static_cast<std::int64_t>(vm.regs[0].rax); }
};

TEST_F(PlatformCallTest, VersionAndUnknownFunctions) {
    EXPECT_EQ(invoke(psci::kVersion), ExitAction::kContinue);
    EXPECT_EQ(rax(), psci::kVersion10);
    EXPECT_EQ(invoke(0x84000077), ExitAction::kContinue);
    EXPECT_EQ(rax(), psci::kNotSupported);
}

TEST_F(PlatformCallTest, CpuOnChecksCoreAndEntryThenMapsTheStart) {
    invoke(psci::kCpuOn, 1, 0x8000, 0xC0DE);
    EXPECT_EQ(rax(), psci::kSuccess);
    EXPECT_EQ(vm.log, std::vector<std::string>{"start 1 0x8000 0xc0de"});
    invoke(psci::kCpuOn, 4, 0x8000, 0);  // core outside 0..3
    EXPECT_EQ(rax(), psci::kInvalidParameters);
    invoke(psci::kCpuOn, static_cast<std::uint64_t>(-1), 0x8000, 0);
    EXPECT_EQ(rax(), psci::kInvalidParameters);
    invoke(psci::kCpuOn, 2, 1 << 20, 0);  // entry outside RAM
    EXPECT_EQ(rax(), psci::kInvalidParameters);
    EXPECT_EQ(vm.log.size(), 1u);  // none of those reached the VM
    vm.start_answer = make_error(Errc::kAlreadyExists, "online");
    invoke(psci::kCpuOn, 1, 0x8000, 0);
    EXPECT_EQ(rax(), psci::kAlreadyOn);
    vm.start_answer = make_error(Errc::kResourceExhausted, "no vCPU left");
    invoke(psci::kCpuOn, 3, 0x8000, 0);
    EXPECT_EQ(rax(), psci::kInternalFailure);
}

TEST_F(PlatformCallTest, AffinityInfoAnswersPerCoreAtLevelZeroOnly) {
    vm.online[2] = true;
    invoke(psci::kAffinityInfo, 2, 0);
    EXPECT_EQ(rax(), psci::kAffinityOn);
    invoke(psci::kAffinityInfo, 1, 0);
    EXPECT_EQ(rax(), psci::kAffinityOff);
    invoke(psci::kAffinityInfo, 2, 1);
    EXPECT_EQ(rax(), psci::kInvalidParameters);
    invoke(psci::kAffinityInfo, 9, 0);
    EXPECT_EQ(rax(), psci::kInvalidParameters);
}

TEST_F(PlatformCallTest, ThirtyTwoBitGuestsGetSignExtendedCoresAndTruncatedResults) {
    vm.wide = false;
    invoke(psci::kCpuOn32, 0xffffffff, 0x8000, 0);          // core -1 in 32 bits
    EXPECT_EQ(vm.regs[0].rax, 0xfffffffeu);                 // -2 as a 32-bit value
    invoke(psci::kCpuOn32, 0x1'00000001, 0x1'00008000, 0);  // upper halves are ignored
    EXPECT_EQ(vm.regs[0].rax, 0u);
    EXPECT_EQ(vm.log.back(), "start 1 0x8000 0x0");
}

TEST_F(PlatformCallTest, PowerCallsStopTheCallerAndReadsAnswerAllOnes) {
    EXPECT_EQ(invoke(psci::kCpuOff), ExitAction::kStopVcpu);
    EXPECT_EQ(invoke(psci::kSystemOff), ExitAction::kStopVcpu);
    EXPECT_EQ(invoke(psci::kSystemReset), ExitAction::kStopVcpu);
    EXPECT_EQ(vm.log, (std::vector<std::string>{"off 0", "system_off 0", "reset 0"}));
    std::uint32_t in = 0;
    PortAccess read{0, std::span(reinterpret_cast<std::uint8_t *>(&in), 4), false, 0, std::nullopt,
                    1};
    EXPECT_EQ(call.io(read), ExitAction::kContinue);
    EXPECT_EQ(in, 0xffffffffu);
}

TEST_F(PlatformCallTest, StringIoIsNotACall) {
    // rep outsd of CPU_ON: nothing starts, and RAX says NOT_SUPPORTED for every element.
    for (int element = 0; element < 3; ++element) {
        EXPECT_EQ(invoke(psci::kCpuOn, 1, 0x8000, 0, 3), ExitAction::kContinue);
        EXPECT_EQ(rax(), psci::kNotSupported);
    }
    EXPECT_TRUE(vm.log.empty());
}

}  // namespace
}  // namespace guestvm::x86
