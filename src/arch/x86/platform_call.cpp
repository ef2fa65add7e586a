#include "arch/x86/platform_call.hpp"

#include <cstring>

#include "guestvm/vm.hpp"

namespace guestvm::x86 {

namespace {
// PSCI's SMC32 ids for the calls that also have an SMC64 form; 32-bit guests may use either.
constexpr std::uint32_t kCpuOn32 = 0x84000003;
constexpr std::uint32_t kAffinityInfo32 = 0x84000004;
}  // namespace

ExitAction platform_call_handler(ExitContext &ctx, IoAccess &access) {
    if (!access.is_write) {
        std::memset(access.data.data(), 0xff, access.data.size());
        return ExitAction::kContinue;
    }
    Vm &vm = *ctx.vm;
    Vcpu &vcpu = *ctx.vcpu;
    auto regs = vcpu.registers();
    if (!regs) return ExitAction::kError;
    const bool wide = vm.boot_mode() == BootMode::kLong64;
    auto word = [&](std::uint64_t r) { return wide ? r : (r & 0xffffffffu); };
    auto core = [&](std::uint64_t r) {
        return wide ? static_cast<std::int64_t>(r)
                    : static_cast<std::int64_t>(static_cast<std::int32_t>(r));
    };
    const auto function = static_cast<std::uint32_t>(regs->rax);
    std::int64_t result = psci::kNotSupported;
    switch (function) {
        case psci::kVersion:
            result = 0x00010000;
            break;
        case psci::kCpuOn:
        case kCpuOn32:
            result = vm.cpu_on(core(regs->rbx), word(regs->rcx), word(regs->rsi));
            break;
        case psci::kAffinityInfo:
        case kAffinityInfo32:
            // Only affinity level 0 (a single core) is meaningful here.
            result =
                word(regs->rcx) != 0 ? psci::kInvalidParameters : vm.affinity_info(core(regs->rbx));
            break;
        case psci::kCpuOff:
            return vm.cpu_off(vcpu);
        case psci::kSystemOff:
            vm.stop({StopReason::kPowerOff, "guest called SYSTEM_OFF", vcpu.id().value()});
            return ExitAction::kStopVcpu;
        case psci::kSystemReset:
            vm.stop({StopReason::kReset, "guest called SYSTEM_RESET", vcpu.id().value()});
            return ExitAction::kStopVcpu;
        default:
            break;
    }
    regs->rax = wide ? static_cast<std::uint64_t>(result)
                     : static_cast<std::uint32_t>(static_cast<std::int32_t>(result));
    return vcpu.set_registers(*regs) ? ExitAction::kContinue : ExitAction::kError;
}

}  // namespace guestvm::x86
