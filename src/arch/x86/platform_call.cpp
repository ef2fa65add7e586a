#include "arch/x86/platform_call.hpp"

#include <cstring>

namespace guestvm::x86 {

std::int64_t PlatformCall::cpu_on(std::int64_t core, std::uint64_t entry, std::uint64_t context) {
    if (core < 0 || core >= ops_.core_count() || !ops_.in_ram(entry)) {
        return psci::kInvalidParameters;
    }
    auto started = ops_.start_core(static_cast<int>(core), entry, context);
    if (started) return psci::kSuccess;
    return started.error().code() == Errc::kAlreadyExists ? psci::kAlreadyOn
                                                          : psci::kInternalFailure;
}

std::int64_t PlatformCall::affinity_info(std::int64_t core, std::uint64_t level) const {
    // Only affinity level 0 (a single core) is meaningful here.
    if (level != 0 || core < 0 || core >= ops_.core_count()) return psci::kInvalidParameters;
    return ops_.core_online(static_cast<int>(core)) ? psci::kAffinityOn : psci::kAffinityOff;
}

ExitAction PlatformCall::io(PortAccess &access) {
    if (!access.is_write) {
        std::memset(access.data.data(), 0xff, access.data.size());
        return ExitAction::kContinue;
    }
    const int vcpu = access.vcpu;
    auto regs = ops_.registers(vcpu);
    if (!regs) return access.fail(std::move(regs).error().context("platform call"));
    const bool wide = ops_.wide_registers();
    if (access.elements != 1) {
        // rep outs is not a platform call: run nothing (each element would otherwise read the
        // previous element's result as its function id) and say so in RAX.
        regs->rax = wide ? static_cast<std::uint64_t>(psci::kNotSupported)
                         : static_cast<std::uint32_t>(psci::kNotSupported);
        return set_result(vcpu, *regs, access);
    }
    auto word = [&](std::uint64_t r) { return wide ? r : (r & 0xffffffffu); };
    auto core = [&](std::uint64_t r) {
        return wide ? static_cast<std::int64_t>(r)
                    : static_cast<std::int64_t>(static_cast<std::int32_t>(r));
    };
    std::int64_t result = psci::kNotSupported;
    switch (static_cast<std::uint32_t>(regs->rax)) {
        case psci::kVersion:
            result = psci::kVersion10;
            break;
        case psci::kCpuOn:
        case psci::kCpuOn32:
            result = cpu_on(core(regs->rbx), word(regs->rcx), word(regs->rsi));
            break;
        case psci::kAffinityInfo:
        case psci::kAffinityInfo32:
            result = affinity_info(core(regs->rbx), word(regs->rcx));
            break;
        case psci::kCpuOff:
            if (auto off = ops_.cpu_off(vcpu); !off) return access.fail(std::move(off).error());
            return ExitAction::kStopVcpu;
        case psci::kSystemOff:
            ops_.system_off(vcpu);
            return ExitAction::kStopVcpu;
        case psci::kSystemReset:
            ops_.system_reset(vcpu);
            return ExitAction::kStopVcpu;
        default:
            break;
    }
    regs->rax = wide ? static_cast<std::uint64_t>(result)
                     : static_cast<std::uint32_t>(static_cast<std::int32_t>(result));
    return set_result(vcpu, *regs, access);
}

ExitAction PlatformCall::set_result(int vcpu, const Registers &regs, PortAccess &access) {
    if (auto set = ops_.set_registers(vcpu, regs); !set) {
        return access.fail(std::move(set).error().context("platform call result"));
    }
    return ExitAction::kContinue;
}

}  // namespace guestvm::x86
