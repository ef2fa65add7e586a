#include "arch/x86/boot.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "guestvm/vspace.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm::x86 {

namespace {

constexpr std::uint64_t kCr0Pe = 1ull << 0, kCr0Mp = 1ull << 1, kCr0Et = 1ull << 4,
                        kCr0Ne = 1ull << 5, kCr0Wp = 1ull << 16, kCr0Pg = 1ull << 31;
constexpr std::uint64_t kCr4Pae = 1ull << 5;
constexpr std::uint64_t kEferLme = 1ull << 8, kEferLma = 1ull << 10;
constexpr std::uint64_t kPtePresent = 1, kPteWrite = 2, kPteLarge = 1ull << 7;

// GDT descriptors: flat 4 GiB, granularity 4 KiB.
constexpr std::uint64_t kGdtCode64 = 0x00af9a000000ffffull;
constexpr std::uint64_t kGdtCode32 = 0x00cf9a000000ffffull;
constexpr std::uint64_t kGdtData = 0x00cf92000000ffffull;

Segment flat_segment(std::uint16_t selector, bool code, bool long_mode) {
    Segment s;
    s.base = 0;
    s.limit = 0xffffffff;
    s.selector = selector;
    s.type = code ? 0xb : 0x3;  // execute/read accessed, read/write accessed
    s.present = true;
    s.dpl = 0;
    s.s = true;
    s.g = true;
    s.l = code && long_mode;
    s.db = !(code && long_mode);
    return s;
}

Segment real_segment(std::uint16_t selector, bool code) {
    Segment s;
    s.base = std::uint64_t{selector} << 4;
    s.limit = 0xffff;
    s.selector = selector;
    s.type = code ? 0xb : 0x3;
    s.present = true;
    s.s = true;
    return s;
}

}  // namespace

Status install_boot_tables(GuestVSpace &memory, std::uint64_t cover) {
    const std::array<std::uint64_t, 12> gdts{0, kGdtCode64, kGdtData,   kGdtCode32,  // long
                                             0, kGdtCode32, kGdtData,   kGdtCode32,  // 32-bit
                                             0, 0,          kGdtCode64, kGdtData};   // Linux
    static_assert(kGdt32Addr == kGdtAddr + 32 && kGdtLinuxAddr == kGdtAddr + 64);
    GUESTVM_TRY(
        memory.write(GuestPhysAddr(kGdtAddr),
                     std::span(reinterpret_cast<const std::uint8_t *>(gdts.data()), sizeof(gdts))));
    std::uint64_t gib = (cover + (1ull << 30) - 1) >> 30;
    if (gib * 4096 > kBootAreaEnd - kPdAddr) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("identity map of {} GiB does not fit the boot area", gib));
    }
    GUESTVM_TRY_ASSIGN(pml4, memory.translate(GuestPhysAddr(kPml4Addr), 4096));
    GUESTVM_TRY_ASSIGN(pdpt, memory.translate(GuestPhysAddr(kPdptAddr), 4096));
    GUESTVM_TRY_ASSIGN(pd, memory.translate(GuestPhysAddr(kPdAddr), gib * 4096));
    auto put = [](std::uint8_t *table, std::size_t index, std::uint64_t value) {
        std::memcpy(table + index * 8, &value, 8);
    };
    std::memset(pml4, 0, 4096);
    std::memset(pdpt, 0, 4096);
    put(pml4, 0, kPdptAddr | kPtePresent | kPteWrite);
    for (std::uint64_t g = 0; g < gib; ++g) {
        put(pdpt, g, (kPdAddr + g * 4096) | kPtePresent | kPteWrite);
        for (std::uint64_t i = 0; i < 512; ++i) {
            std::uint64_t phys = (g << 30) | (i << 21);
            put(pd, g * 512 + i, phys | kPtePresent | kPteWrite | kPteLarge);
        }
    }
    return {};
}

std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported, int apic_id) {
    std::vector<kvm_cpuid_entry2> out(supported.begin(), supported.end());
    for (auto &e : out) {
        if (e.function == 1) {
            e.ebx = (e.ebx & 0x00ffffffu) | (static_cast<std::uint32_t>(apic_id & 0xff) << 24);
            e.ecx |= 1u << 31;  // running under a hypervisor
        } else if (e.function == 0xb || e.function == 0x1f) {
            e.edx = static_cast<std::uint32_t>(apic_id);  // x2APIC id
        }
    }
    return out;
}

Status apply_entry_state(const kvm::VcpuFd &vcpu, const EntryState &state) {
    GUESTVM_TRY_ASSIGN(s, vcpu.get_sregs());
    Registers regs;
    regs.rflags = 0x2;  // interrupts off
    regs.rdi = state.rdi;
    regs.rsi = state.rsi;
    regs.rbx = state.rbx;
    regs.rsp = state.rsp;
    regs.rip = state.rip;
    switch (state.mode) {
        case BootMode::kLong64: {
            const std::uint16_t code = state.linux_selectors ? 0x10 : kCodeSelector;
            const std::uint16_t data = state.linux_selectors ? 0x18 : kDataSelector;
            s.cs = flat_segment(code, true, true);
            s.ds = s.es = s.fs = s.gs = s.ss = flat_segment(data, false, true);
            s.gdt = {state.linux_selectors ? kGdtLinuxAddr : kGdtAddr, 4 * 8 - 1};
            s.idt = {0, 0};
            s.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
            s.cr3 = kPml4Addr;
            s.cr4 = kCr4Pae;
            s.efer = kEferLme | kEferLma;
            break;
        }
        case BootMode::kProtected32:
            if (state.rip > 0xffffffffull) {
                return make_error(Errc::kInvalidArgument,
                                  fmt::format("32-bit entry {:#x} above 4 GiB", state.rip));
            }
            s.cs = flat_segment(kCodeSelector, true, false);
            s.ds = s.es = s.fs = s.gs = s.ss = flat_segment(kDataSelector, false, false);
            s.gdt = {kGdt32Addr, 4 * 8 - 1};
            s.idt = {0, 0};
            s.cr0 = kCr0Pe | kCr0Et;
            s.cr3 = 0;
            s.cr4 = 0;
            s.efer = 0;
            regs.rdi &= 0xffffffffu;
            regs.rsi &= 0xffffffffu;
            regs.rbx &= 0xffffffffu;
            regs.rsp &= 0xffffffffu;
            break;
        case BootMode::kReal16: {
            if (state.rip >= 0x100000) {
                return make_error(Errc::kInvalidArgument,
                                  fmt::format("real-mode entry {:#x} above 1 MiB", state.rip));
            }
            auto seg = static_cast<std::uint16_t>((state.rip >> 4) & 0xf000);
            s.cs = real_segment(seg, true);
            s.ds = s.es = s.fs = s.gs = s.ss = real_segment(seg, false);
            s.gdt = {0, 0xffff};
            s.idt = {0, 0x3ff};  // the real-mode interrupt vector table
            s.cr0 = kCr0Et;
            s.cr3 = 0;
            s.cr4 = 0;
            s.efer = 0;
            regs.rip = state.rip - (std::uint64_t{seg} << 4);
            regs.rdi &= 0xffffu;
            regs.rsi &= 0xffffu;
            regs.rbx &= 0xffffu;
            regs.rsp &= 0xffffu;
            break;
        }
    }
    GUESTVM_TRY(vcpu.set_sregs(s));
    return vcpu.set_regs(regs);
}

}  // namespace guestvm::x86
