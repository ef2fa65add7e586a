// libsel4vm's x86 thread context and VMCS fields over the KVM vCPU's registers.
#include "sel4vm/arch/guest_x86_context.h"

#include <fmt/format.h>

#include <array>
#include <optional>

#include "capi/capi_internal.hpp"
#include "sel4vm/arch/vmcs_fields.h"

using guestvm::capi::fail;
using guestvm::capi::guarded;
using guestvm::capi::vcpu_of;

namespace {

std::array<std::uint64_t *, 15> context_regs(guestvm::Registers &r) {
    return {&r.rax, &r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rbp, &r.r8,
            &r.r9,  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15};
}

std::uint64_t access_rights(const guestvm::Segment &s) {
    return (s.type & 0xfu) | (s.s ? ACCESS_RIGHTS_S : 0) | (std::uint64_t{s.dpl & 3u} << 5) |
           (s.present ? ACCESS_RIGHTS_P : 0) | (s.avl ? ACCESS_RIGHTS_AVL : 0) |
           (s.l ? ACCESS_RIGHTS_L : 0) | (s.db ? ACCESS_RIGHTS_DB : 0) |
           (s.g ? ACCESS_RIGHTS_G : 0) | (s.unusable ? ACCESS_RIGHTS_UNUSABLE : 0);
}

void set_access_rights(guestvm::Segment &s, std::uint64_t ar) {
    s.type = static_cast<std::uint8_t>(ar & 0xf);
    s.s = (ar & ACCESS_RIGHTS_S) != 0;
    s.dpl = static_cast<std::uint8_t>((ar >> 5) & 3);
    s.present = (ar & ACCESS_RIGHTS_P) != 0;
    s.avl = (ar & ACCESS_RIGHTS_AVL) != 0;
    s.l = (ar & ACCESS_RIGHTS_L) != 0;
    s.db = (ar & ACCESS_RIGHTS_DB) != 0;
    s.g = (ar & ACCESS_RIGHTS_G) != 0;
    s.unusable = (ar & ACCESS_RIGHTS_UNUSABLE) != 0;
}

// The segment a VMCS field belongs to: fields of one kind are consecutive in segment order
// ES, CS, SS, DS, FS, GS, LDTR, TR, two apart.
guestvm::Segment *segment_of(guestvm::SpecialRegisters &s, seL4_Word field, seL4_Word first) {
    std::array<guestvm::Segment *, 8> order{&s.es, &s.cs, &s.ss,  &s.ds,
                                            &s.fs, &s.gs, &s.ldt, &s.tr};
    if (field < first || field > first + 14 || (field - first) % 2 != 0) return nullptr;
    return order[(field - first) / 2];
}

enum class Part { kSelector, kBase, kLimit, kRights };

// Reads or writes (value != nullopt) one guest-state field in regs/sregs; false when the
// field is not one KVM exposes.
bool access_field(seL4_Word field, guestvm::Registers &r, guestvm::SpecialRegisters &s,
                  std::optional<seL4_Word> value, seL4_Word &out) {
    auto rw = [&](auto &slot) {
        using T = std::remove_reference_t<decltype(slot)>;
        if (value) slot = static_cast<T>(*value);
        out = static_cast<seL4_Word>(slot);
        return true;
    };
    switch (field) {
        case VMX_GUEST_RIP:
            return rw(r.rip);
        case VMX_GUEST_RSP:
            return rw(r.rsp);
        case VMX_GUEST_RFLAGS:
            return rw(r.rflags);
        case VMX_GUEST_CR0:
            return rw(s.cr0);
        case VMX_GUEST_CR3:
            return rw(s.cr3);
        case VMX_GUEST_CR4:
            return rw(s.cr4);
        case VMX_GUEST_EFER:
            return rw(s.efer);
        case VMX_GUEST_GDTR_BASE:
            return rw(s.gdt.base);
        case VMX_GUEST_GDTR_LIMIT:
            return rw(s.gdt.limit);
        case VMX_GUEST_IDTR_BASE:
            return rw(s.idt.base);
        case VMX_GUEST_IDTR_LIMIT:
            return rw(s.idt.limit);
        default:
            break;
    }
    for (auto [first, part] :
         {std::pair{VMX_GUEST_ES_SELECTOR, Part::kSelector},
          std::pair{VMX_GUEST_ES_BASE, Part::kBase}, std::pair{VMX_GUEST_ES_LIMIT, Part::kLimit},
          std::pair{VMX_GUEST_ES_ACCESS_RIGHTS, Part::kRights}}) {
        guestvm::Segment *seg = segment_of(s, field, static_cast<seL4_Word>(first));
        if (seg == nullptr) continue;
        switch (part) {
            case Part::kSelector:
                return rw(seg->selector);
            case Part::kBase:
                return rw(seg->base);
            case Part::kLimit:
                return rw(seg->limit);
            case Part::kRights:
                if (value) set_access_rights(*seg, *value);
                out = access_rights(*seg);
                return true;
        }
    }
    return false;
}

int vmcs_field(const char *call, vm_vcpu_t *vcpu, seL4_Word field, std::optional<seL4_Word> value,
               seL4_Word *out) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr) return fail(fmt::format("{}: NULL vcpu", call));
        if (!value && out == nullptr) return fail(fmt::format("{}: NULL value", call));
        auto regs = v->registers();
        if (!regs) return fail(regs.error());
        auto sregs = v->special_registers();
        if (!sregs) return fail(sregs.error());
        seL4_Word result = 0;
        if (!access_field(field, *regs, *sregs, value, result)) {
            return fail(
                fmt::format("{}: VMCS field {:#x} has no KVM equivalent (guest-state "
                            "registers, segments, descriptor tables and EFER do; see "
                            "docs/libsel4vm-mapping.md)",
                            call, field));
        }
        if (value) {
            if (auto ok = v->set_special_registers(*sregs); !ok) return fail(ok.error());
            if (auto ok = v->set_registers(*regs); !ok) return fail(ok.error());
            guestvm::capi::mark_state_written(vcpu);
        } else {
            *out = result;
        }
        return 0;
    });
}

int context(const char *call, vm_vcpu_t *vcpu, int reg, const seL4_Word *in, seL4_Word *out,
            const seL4_VCPUContext *in_all, seL4_VCPUContext *out_all) {
    return guarded(-1, [&] {
        guestvm::Vcpu *v = vcpu_of(vcpu);
        if (v == nullptr) return fail(fmt::format("{}: NULL vcpu", call));
        if (reg < VCPU_CONTEXT_EAX || reg > VCPU_CONTEXT_R15) {
            return fail(fmt::format("{}: unknown register {}", call, reg));
        }
        auto regs = v->registers();
        if (!regs) return fail(regs.error());
        auto slots = context_regs(*regs);
        static_assert(sizeof(seL4_VCPUContext) == 15 * sizeof(seL4_Word));
        if (out_all != nullptr) {
            auto *words = reinterpret_cast<seL4_Word *>(out_all);
            for (std::size_t i = 0; i < slots.size(); ++i) words[i] = *slots[i];
            return 0;
        }
        if (out != nullptr) {
            *out = *slots[static_cast<std::size_t>(reg)];
            return 0;
        }
        if (in_all != nullptr) {
            const auto *words = reinterpret_cast<const seL4_Word *>(in_all);
            for (std::size_t i = 0; i < slots.size(); ++i) *slots[i] = words[i];
        } else {
            *slots[static_cast<std::size_t>(reg)] = *in;
        }
        if (auto ok = v->set_registers(*regs); !ok) return fail(ok.error());
        guestvm::capi::mark_state_written(vcpu);
        return 0;
    });
}

}  // namespace

int vm_set_thread_context(vm_vcpu_t *vcpu, seL4_VCPUContext ctx) {
    return context("vm_set_thread_context", vcpu, VCPU_CONTEXT_EAX, nullptr, nullptr, &ctx,
                   nullptr);
}

int vm_set_thread_context_reg(vm_vcpu_t *vcpu, vcpu_context_reg_t reg, seL4_Word value) {
    return context("vm_set_thread_context_reg", vcpu, static_cast<int>(reg), &value, nullptr,
                   nullptr, nullptr);
}

int vm_get_thread_context(vm_vcpu_t *vcpu, seL4_VCPUContext *ctx) {
    if (ctx == nullptr) return fail("vm_get_thread_context: NULL context");
    return context("vm_get_thread_context", vcpu, VCPU_CONTEXT_EAX, nullptr, nullptr, nullptr, ctx);
}

int vm_get_thread_context_reg(vm_vcpu_t *vcpu, vcpu_context_reg_t reg, seL4_Word *value) {
    if (value == nullptr) return fail("vm_get_thread_context_reg: NULL value");
    return context("vm_get_thread_context_reg", vcpu, static_cast<int>(reg), nullptr, value,
                   nullptr, nullptr);
}

int vm_set_vmcs_field(vm_vcpu_t *vcpu, seL4_Word field, seL4_Word value) {
    return vmcs_field("vm_set_vmcs_field", vcpu, field, value, nullptr);
}

int vm_get_vmcs_field(vm_vcpu_t *vcpu, seL4_Word field, seL4_Word *value) {
    return vmcs_field("vm_get_vmcs_field", vcpu, field, std::nullopt, value);
}
