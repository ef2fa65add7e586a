// seL4_TCB_* on guestvm's TCB capabilities, with seL4's error codes.
#include <array>
#include <cstring>

#include "capi/capi_internal.hpp"
#include "guestvm/invoke.hpp"
#include "sel4vm/sel4_compat.h"

namespace {

constexpr seL4_Word kContextWords = sizeof(seL4_UserContext) / sizeof(seL4_Word);

seL4_Error to_sel4(const guestvm::Error &e) {
    guestvm::capi::last_error() = e.message();
    switch (e.code()) {
        case guestvm::Errc::kNullCapability:
        case guestvm::Errc::kStaleCapability:
        case guestvm::Errc::kNotFound:
            return seL4_InvalidCapability;
        case guestvm::Errc::kWrongCapType:
        case guestvm::Errc::kBadState:
            return seL4_IllegalOperation;
        case guestvm::Errc::kInvalidArgument:
            return seL4_RangeError;
        default:
            return seL4_IllegalOperation;
    }
}

// Runs fn(cspace) against the C API's capability space; exceptions become an error code.
template <typename F>
seL4_Error invoke(F &&fn) noexcept {
    return guestvm::capi::guarded(seL4_IllegalOperation, [&]() -> seL4_Error {
        auto host = guestvm::Host::process_default();
        if (!host) return to_sel4(host.error());
        return fn((*host)->cspace());
    });
}

seL4_Error status(const guestvm::Status &s) { return s ? seL4_NoError : to_sel4(s.error()); }

// seL4_UserContext order ↔ guestvm::Registers.
std::array<std::uint64_t *, 18> frame(guestvm::Registers &r) {
    return {&r.rip, &r.rsp, &r.rflags, &r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi,
            &r.rbp, &r.r8,  &r.r9,     &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15};
}

}  // namespace

seL4_Error seL4_TCB_Suspend(seL4_CPtr service) {
    return invoke([&](const guestvm::CSpace &cs) {
        return status(guestvm::tcb::suspend(cs, guestvm::CPtr(service)));
    });
}

seL4_Error seL4_TCB_Resume(seL4_CPtr service) {
    return invoke([&](const guestvm::CSpace &cs) {
        return status(guestvm::tcb::resume(cs, guestvm::CPtr(service)));
    });
}

seL4_Error seL4_TCB_ReadRegisters(seL4_CPtr service, seL4_Bool suspend_source, seL4_Uint8,
                                  seL4_Word count, seL4_UserContext *regs) {
    return invoke([&](const guestvm::CSpace &cs) -> seL4_Error {
        if (regs == nullptr) return seL4_InvalidArgument;
        if (count > kContextWords) return seL4_RangeError;
        if (suspend_source) {
            if (auto s = guestvm::tcb::suspend(cs, guestvm::CPtr(service)); !s) {
                return to_sel4(s.error());
            }
        }
        auto r = guestvm::tcb::read_registers(cs, guestvm::CPtr(service));
        if (!r) return to_sel4(r.error());
        std::array<seL4_Word, kContextWords> words{};
        auto f = frame(*r);
        for (std::size_t i = 0; i < f.size(); ++i) words[i] = *f[i];
        std::memcpy(regs, words.data(), count * sizeof(seL4_Word));
        return seL4_NoError;
    });
}

seL4_Error seL4_TCB_WriteRegisters(seL4_CPtr service, seL4_Bool resume_target, seL4_Uint8,
                                   seL4_Word count, seL4_UserContext *regs) {
    return invoke([&](const guestvm::CSpace &cs) -> seL4_Error {
        if (regs == nullptr) return seL4_InvalidArgument;
        if (count > kContextWords) return seL4_RangeError;
        auto r = guestvm::tcb::read_registers(cs, guestvm::CPtr(service));
        if (!r) return to_sel4(r.error());
        std::array<seL4_Word, kContextWords> words{};
        std::memcpy(words.data(), regs, count * sizeof(seL4_Word));
        auto f = frame(*r);
        for (std::size_t i = 0; i < f.size() && i < count; ++i) *f[i] = words[i];
        if (auto s = guestvm::tcb::write_registers(cs, guestvm::CPtr(service), *r); !s) {
            return to_sel4(s.error());
        }
        return resume_target ? status(guestvm::tcb::resume(cs, guestvm::CPtr(service)))
                             : seL4_NoError;
    });
}

seL4_Error seL4_TCB_SetPriority(seL4_CPtr service, seL4_CPtr, seL4_Word priority) {
    return invoke([&](const guestvm::CSpace &cs) -> seL4_Error {
        if (priority > 255) {
            guestvm::capi::last_error() = "seL4_TCB_SetPriority: priority above 255";
            return seL4_RangeError;
        }
        return status(
            guestvm::tcb::set_priority(cs, guestvm::CPtr(service), static_cast<int>(priority)));
    });
}
