#include "arch/x86/insn_assist.hpp"

#include <cpuid.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace guestvm::x86 {

namespace {

constexpr std::uint8_t kDe = 0, kBp = 3, kUd = 6, kNm = 7, kGp = 13, kPf = 14, kMf = 16;
constexpr std::uint64_t kCr0Mp = 1u << 1, kCr0Em = 1u << 2, kCr0Ts = 1u << 3, kCr0Ne = 1u << 5;
constexpr std::uint64_t kCr0Wp = 1u << 16;
constexpr std::uint64_t kCr4Osfxsr = 1u << 9;
constexpr std::uint64_t kEferLma = 1u << 10;
constexpr std::uint64_t kRflagsAc = 1u << 18;
constexpr std::uint16_t kFswEs = 1u << 7;
// MXCSR bits an SSE2 CPU defines (flags, masks, rounding, FZ, DAZ); the rest are reserved.
constexpr std::uint32_t kMxcsrDefined = 0xffff;

Error unsupported(std::span<const std::uint8_t> bytes, std::string_view why) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("instruction {} not completed: {}", hex_bytes(bytes), why));
}

enum class CpuMode { kReal16, kProt16, kProt32, kLong64 };

CpuMode mode_of(const SpecialRegisters &s) {
    if ((s.cr0 & 1) == 0) return CpuMode::kReal16;
    if ((s.efer & kEferLma) != 0 && s.cs.l) return CpuMode::kLong64;
    return s.cs.db ? CpuMode::kProt32 : CpuMode::kProt16;
}

/// The legacy prefixes and REX in front of an opcode.
struct Prefixes {
    std::size_t length = 0;
    bool opsize = false, addrsize = false, rep = false, repne = false, lock = false;
    int segment = -1;  // 0 es, 1 cs, 2 ss, 3 ds, 4 fs, 5 gs
    std::uint8_t rex = 0;
};

Prefixes read_prefixes(std::span<const std::uint8_t> b, CpuMode mode) {
    Prefixes p;
    while (p.length < b.size() && p.length < 14) {
        const std::uint8_t c = b[p.length];
        switch (c) {
            case 0x66:
                p.opsize = true;
                break;
            case 0x67:
                p.addrsize = true;
                break;
            case 0xf3:
                p.rep = true;
                break;
            case 0xf2:
                p.repne = true;
                break;
            case 0xf0:
                p.lock = true;
                break;
            case 0x26:
                p.segment = 0;
                break;
            case 0x2e:
                p.segment = 1;
                break;
            case 0x36:
                p.segment = 2;
                break;
            case 0x3e:
                p.segment = 3;
                break;
            case 0x64:
                p.segment = 4;
                break;
            case 0x65:
                p.segment = 5;
                break;
            default:
                // REX counts only right before the opcode, in 64-bit mode.
                if (mode == CpuMode::kLong64 && (c & 0xf0) == 0x40) {
                    p.rex = c;
                    ++p.length;
                    return p;
                }
                return p;
        }
        p.rex = 0;
        ++p.length;
    }
    return p;
}

std::uint64_t gpr(const Registers &r, int n) {
    const std::uint64_t all[16] = {r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi,
                                   r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
    return all[n & 15];
}

/// A decoded memory operand: its linear address and the instruction's whole length.
struct MemOperand {
    std::uint64_t linear = 0;
    std::size_t length = 0;
};

/// Decodes the ModRM memory operand starting at `at` (the ModRM byte) with 32/64-bit addressing.
Result<MemOperand> memory_operand(std::span<const std::uint8_t> b, std::size_t at,
                                  const Prefixes &p, CpuMode mode, const Registers &r,
                                  const SpecialRegisters &s) {
    const bool long64 = mode == CpuMode::kLong64;
    const bool addr32 = long64 ? p.addrsize : ((mode == CpuMode::kProt32) != p.addrsize);
    if (!long64 && !addr32) return std::unexpected(unsupported(b, "16-bit addressing"));
    auto need = [&](std::size_t n) { return at + n <= b.size(); };
    if (!need(1)) return std::unexpected(unsupported(b, "truncated"));
    const std::uint8_t modrm = b[at];
    const int mod = modrm >> 6, rm = modrm & 7;
    std::size_t pos = at + 1;
    std::uint64_t ea = 0;
    bool rip_relative = false;
    int default_seg = 3;  // ds
    if (rm == 4) {
        if (!need(2)) return std::unexpected(unsupported(b, "truncated"));
        const std::uint8_t sib = b[pos++];
        const int scale = sib >> 6;
        const int index = ((sib >> 3) & 7) | ((p.rex & 0x2) << 2);
        const int base = (sib & 7) | ((p.rex & 0x1) << 3);
        if (index != 4) ea += gpr(r, index) << scale;
        if ((sib & 7) == 5 && mod == 0) {
            if (pos + 4 > b.size()) return std::unexpected(unsupported(b, "truncated"));
            std::int32_t d;
            std::memcpy(&d, &b[pos], 4);
            pos += 4;
            ea += static_cast<std::uint64_t>(static_cast<std::int64_t>(d));
        } else {
            ea += gpr(r, base);
            if ((base & 7) == 4 || (base & 7) == 5) default_seg = 2;  // rsp/rbp: ss
        }
    } else if (rm == 5 && mod == 0) {
        if (pos + 4 > b.size()) return std::unexpected(unsupported(b, "truncated"));
        std::int32_t d;
        std::memcpy(&d, &b[pos], 4);
        pos += 4;
        ea += static_cast<std::uint64_t>(static_cast<std::int64_t>(d));
        rip_relative = long64;
    } else {
        const int reg = rm | ((p.rex & 0x1) << 3);
        ea += gpr(r, reg);
        if (rm == 5) default_seg = 2;  // rbp: ss
    }
    if (mod == 1) {
        if (pos + 1 > b.size()) return std::unexpected(unsupported(b, "truncated"));
        ea +=
            static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int8_t>(b[pos])));
        pos += 1;
    } else if (mod == 2) {
        if (pos + 4 > b.size()) return std::unexpected(unsupported(b, "truncated"));
        std::int32_t d;
        std::memcpy(&d, &b[pos], 4);
        pos += 4;
        ea += static_cast<std::uint64_t>(static_cast<std::int64_t>(d));
    }
    if (rip_relative) ea += r.rip + pos;  // relative to the next instruction (no immediate)
    if (addr32) ea &= 0xffffffffu;
    const int seg = p.segment >= 0 ? p.segment : default_seg;
    std::uint64_t base = 0;
    if (long64) {
        if (seg == 4) base = s.fs.base;
        if (seg == 5) base = s.gs.base;
    } else {
        const Segment *segs[6] = {&s.es, &s.cs, &s.ss, &s.ds, &s.fs, &s.gs};
        base = segs[seg]->base;
    }
    std::uint64_t linear = base + ea;
    if (!long64) linear &= 0xffffffffu;
    return MemOperand{linear, pos};
}

int cpl_of(const SpecialRegisters &s) { return s.cs.dpl & 3; }

/// Moves the memory operand between guest memory and `data`, through the guest's page tables.
/// Returns the exception the access raised (a #PF, with CR2 set), or nullopt when it went.
Result<std::optional<std::uint8_t>> access(AssistCpu &cpu, const SpecialRegisters &s,
                                           std::uint64_t linear, std::span<std::uint8_t> data,
                                           bool write) {
    std::size_t done = 0;
    while (done < data.size()) {
        const std::uint64_t at = linear + done;
        const std::size_t chunk = std::min<std::size_t>(data.size() - done, 4096 - (at & 4095));
        GUESTVM_TRY_ASSIGN(m, cpu.translate(at));
        const bool user = cpl_of(s) == 3;
        const bool protection = write && m.valid && !m.writeable && (user || (s.cr0 & kCr0Wp));
        if (!m.valid || protection) {
            GUESTVM_TRY(cpu.set_cr2(at));
            const std::uint32_t code = (m.valid ? 1u : 0u) | (write ? 2u : 0u) | (user ? 4u : 0u);
            GUESTVM_TRY(cpu.inject(kPf, code));
            return std::optional<std::uint8_t>(kPf);
        }
        auto part = data.subspan(done, chunk);
        if (write) {
            GUESTVM_TRY(cpu.write(m.physical, part));
        } else {
            GUESTVM_TRY(cpu.read(m.physical, part));
        }
        done += chunk;
    }
    return std::optional<std::uint8_t>();
}

Status advance(AssistCpu &cpu, Registers regs, std::size_t length, CpuMode mode) {
    regs.rip += length;
    if (mode != CpuMode::kLong64) regs.rip &= 0xffffffffu;
    return cpu.set_regs(regs);
}

Result<AssistOutcome> raise(AssistCpu &cpu, AssistedInsn insn, std::uint8_t vector,
                            std::optional<std::uint32_t> code = std::nullopt) {
    GUESTVM_TRY(cpu.inject(vector, code));
    return AssistOutcome{insn, vector};
}

}  // namespace

const char *assisted_insn_name(AssistedInsn insn) noexcept {
    switch (insn) {
        case AssistedInsn::kInt3:
            return "int3";
        case AssistedInsn::kFwait:
            return "fwait";
        case AssistedInsn::kLdmxcsr:
            return "ldmxcsr";
        case AssistedInsn::kStmxcsr:
            return "stmxcsr";
        case AssistedInsn::kClac:
            return "clac";
        case AssistedInsn::kStac:
            return "stac";
        case AssistedInsn::kCount:
            break;
    }
    return "?";
}

std::string hex_bytes(std::span<const std::uint8_t> bytes) {
    std::string out;
    for (auto b : bytes) {
        if (!out.empty()) out += ' ';
        out += fmt::format("{:02x}", b);
    }
    return out.empty() ? "(not reported)" : out;
}

Result<AssistOutcome> complete_instruction(std::span<const std::uint8_t> bytes, AssistCpu &cpu) {
    if (bytes.empty()) return std::unexpected(unsupported(bytes, "KVM gave no bytes"));
    bytes = bytes.first(std::min<std::size_t>(bytes.size(), 15));
    GUESTVM_TRY_ASSIGN(s, cpu.sregs());
    const CpuMode mode = mode_of(s);
    if (mode == CpuMode::kReal16 || mode == CpuMode::kProt16) {
        return std::unexpected(unsupported(bytes, "16-bit code"));
    }
    const Prefixes p = read_prefixes(bytes, mode);
    if (p.length >= bytes.size()) return std::unexpected(unsupported(bytes, "only prefixes"));
    const std::span<const std::uint8_t> op = bytes.subspan(p.length);
    const bool plain = !p.opsize && !p.rep && !p.repne && !p.lock;
    GUESTVM_TRY_ASSIGN(regs, cpu.regs());

    if (op[0] == 0xcc && !p.lock) {
        // A trap: the handler sees RIP after the int3 (its length with any prefixes).
        GUESTVM_TRY(advance(cpu, regs, p.length + 1, mode));
        GUESTVM_TRY(cpu.inject(kBp, std::nullopt));
        return AssistOutcome{AssistedInsn::kInt3, std::nullopt};
    }
    if (op[0] == 0x9b && !p.lock) {
        if ((s.cr0 & (kCr0Mp | kCr0Ts)) == (kCr0Mp | kCr0Ts)) {
            return raise(cpu, AssistedInsn::kFwait, kNm);
        }
        GUESTVM_TRY_ASSIGN(fsw, cpu.fpu_status());
        if ((fsw & kFswEs) != 0 && (s.cr0 & kCr0Ne) != 0) {
            return raise(cpu, AssistedInsn::kFwait, kMf);
        }
        GUESTVM_TRY(advance(cpu, regs, p.length + 1, mode));
        return AssistOutcome{AssistedInsn::kFwait, std::nullopt};
    }
    if (op.size() >= 3 && op[0] == 0x0f && op[1] == 0x01 && (op[2] == 0xca || op[2] == 0xcb) &&
        plain) {
        const auto insn = op[2] == 0xca ? AssistedInsn::kClac : AssistedInsn::kStac;
        if (cpl_of(s) != 0) return raise(cpu, insn, kUd);
        if (insn == AssistedInsn::kClac) {
            regs.rflags &= ~kRflagsAc;
        } else {
            regs.rflags |= kRflagsAc;
        }
        GUESTVM_TRY(advance(cpu, regs, p.length + 3, mode));
        return AssistOutcome{insn, std::nullopt};
    }
    if (op.size() >= 3 && op[0] == 0x0f && op[1] == 0xae && (op[2] >> 6) != 3 && plain &&
        (((op[2] >> 3) & 7) == 2 || ((op[2] >> 3) & 7) == 3)) {
        const bool load = ((op[2] >> 3) & 7) == 2;
        const auto insn = load ? AssistedInsn::kLdmxcsr : AssistedInsn::kStmxcsr;
        if ((s.cr0 & kCr0Em) != 0 || (s.cr4 & kCr4Osfxsr) == 0) return raise(cpu, insn, kUd);
        if ((s.cr0 & kCr0Ts) != 0) return raise(cpu, insn, kNm);
        GUESTVM_TRY_ASSIGN(operand, memory_operand(bytes, p.length + 2, p, mode, regs, s));
        std::array<std::uint8_t, 4> data{};
        if (load) {
            GUESTVM_TRY_ASSIGN(fault, access(cpu, s, operand.linear, data, false));
            if (fault) return AssistOutcome{insn, fault};
            std::uint32_t value;
            std::memcpy(&value, data.data(), 4);
            if ((value & ~kMxcsrDefined) != 0) return raise(cpu, insn, kGp, 0);
            GUESTVM_TRY(cpu.set_mxcsr(value));
        } else {
            GUESTVM_TRY_ASSIGN(mxcsr, cpu.mxcsr());
            std::memcpy(data.data(), &mxcsr, 4);
            GUESTVM_TRY_ASSIGN(fault, access(cpu, s, operand.linear, data, true));
            if (fault) return AssistOutcome{insn, fault};
        }
        GUESTVM_TRY(advance(cpu, regs, operand.length, mode));
        return AssistOutcome{insn, std::nullopt};
    }
    (void)kDe;
    return std::unexpected(unsupported(bytes, "not one the VMM completes"));
}

Result<std::vector<std::uint8_t>> fetch_instruction(AssistCpu &cpu) {
    GUESTVM_TRY_ASSIGN(s, cpu.sregs());
    GUESTVM_TRY_ASSIGN(regs, cpu.regs());
    std::uint64_t linear = s.cs.base + regs.rip;
    if (mode_of(s) != CpuMode::kLong64) linear &= 0xffffffffu;
    std::vector<std::uint8_t> out;
    while (out.size() < 15) {
        const std::uint64_t at = linear + out.size();
        GUESTVM_TRY_ASSIGN(m, cpu.translate(at));
        if (!m.valid) break;
        const std::size_t chunk = std::min<std::size_t>(15 - out.size(), 4096 - (at & 4095));
        std::vector<std::uint8_t> part(chunk);
        if (!cpu.read(m.physical, part)) break;
        out.insert(out.end(), part.begin(), part.end());
    }
    if (out.empty()) {
        return make_error(Errc::kNotFound,
                          fmt::format("the instruction at {:#x} is not in guest RAM", linear));
    }
    return out;
}

bool host_emulates_guest_kernel() noexcept {
    unsigned a = 0, b = 0, c = 0, d = 0;
    bool vmx = false, svm = false;
    if (__get_cpuid(1, &a, &b, &c, &d) != 0) vmx = (c & (1u << 5)) != 0;
    if (__get_cpuid(0x80000001, &a, &b, &c, &d) != 0) svm = (c & (1u << 2)) != 0;
    return !vmx && !svm;
}

std::string linux_args_for_emulating_host() {
    // Linux's X86_FEATURE_* numbers (word * 32 + bit, arch/x86/include/asm/cpufeatures.h):
    // PCLMULQDQ, SSSE3, CX16, SSE4.1, SSE4.2, POPCNT, XSAVE (with AVX and AVX-512, which
    // depend on it) and SMAP. These are the ones a Debian 6.1 boot was seen to need here; hiding
    // more (FSGSBASE, RDPID, ERMS, ... as the CPUID mask does) made that kernel fault in its
    // exception entry, so the command line stays with what was measured (docs/linux.md).
    static constexpr int kFeatures[] = {129, 137, 141, 147, 148, 151, 154, 308};
    std::string out = "noxsave clearcpuid=";
    for (std::size_t i = 0; i < std::size(kFeatures); ++i) {
        out += fmt::format("{}{}", i == 0 ? "" : ",", kFeatures[i]);
    }
    return out;
}

void mask_cpuid_for_emulating_host(std::vector<kvm_cpuid_entry2> &entries) {
    auto bits = [](std::initializer_list<int> list) {
        std::uint32_t m = 0;
        for (int b : list) m |= 1u << b;
        return m;
    };
    // Leaf 1 ECX: PCLMULQDQ, MONITOR, VMX, SSSE3, FMA, CX16 (cmpxchg16b), SSE4.1, SSE4.2, MOVBE,
    // POPCNT, AES, XSAVE, OSXSAVE, AVX, F16C, RDRAND.
    const std::uint32_t leaf1_ecx =
        bits({1, 3, 5, 9, 12, 13, 19, 20, 22, 23, 25, 26, 27, 28, 29, 30});
    // Leaf 7.0 EBX: keep TSC_ADJUST, SMEP and FDP_EXCPTN_ONLY / ZERO_FCS_FDS (no instructions);
    // hides FSGSBASE, BMI1/2, HLE, RTM, AVX2, ERMS (rep movsq copies 8 bytes an emulated step,
    // movsb one), INVPCID, SMAP (clac/stac), RDSEED, ADX, CLFLUSHOPT, CLWB, SHA, AVX-512.
    const std::uint32_t leaf7_ebx_keep = bits({1, 6, 7, 13});
    // Leaf 7.0 EDX: keep the speculation-control bits (MSRs, not instructions): MD_CLEAR,
    // IBRS/IBPB, STIBP, L1D_FLUSH, ARCH_CAPABILITIES, CORE_CAPABILITIES, SSBD.
    const std::uint32_t leaf7_edx_keep = bits({10, 26, 27, 28, 29, 30, 31});
    // 0x80000001 ECX: ABM/LZCNT, SSE4A, 3DNowPrefetch, XOP, FMA4, TBM. EDX: 1 GiB pages (they
    // triple-fault here) and RDTSCP.
    const std::uint32_t ext_ecx = bits({5, 6, 8, 11, 16, 21});
    const std::uint32_t ext_edx = bits({26, 27});
    for (auto &e : entries) {
        if (e.function == 1) {
            e.ecx &= ~leaf1_ecx;
        } else if (e.function == 7 && e.index == 0) {
            e.ebx &= leaf7_ebx_keep;
            e.ecx = 0;
            e.edx &= leaf7_edx_keep;
        } else if (e.function == 7) {
            e.eax = e.ebx = e.ecx = e.edx = 0;
        } else if (e.function == 0xd) {
            e.eax = e.ebx = e.ecx = e.edx = 0;  // no XSAVE: no state components
        } else if (e.function == 0x80000001) {
            e.ecx &= ~ext_ecx;
            e.edx &= ~ext_edx;
        }
    }
}

}  // namespace guestvm::x86
