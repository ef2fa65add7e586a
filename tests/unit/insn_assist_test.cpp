// The instruction assist without KVM: decoding and completing each instruction against a fake
// vCPU (registers, page tables, memory, MXCSR, injected exceptions).
#include "arch/x86/insn_assist.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

namespace guestvm::x86 {
namespace {

class FakeCpu final : public AssistCpu {
  public:
    FakeCpu() : memory(16 * 4096) {
        s.cr0 = 0x80050033;  // PG, WP, NE, ET, MP, PE
        s.cr4 = 0x200;       // OSFXSR
        s.efer = 1 << 10;    // LMA
        s.cs.l = true;
        r.rip = 0x1000;
        // Linear pages 0..15 map to physical pages 15..0 (page 7 read-only); others absent.
        for (std::uint64_t p = 0; p < 16; ++p) pages[p] = {(15 - p) << 12, true, p != 7};
    }

    Result<Registers> regs() override { return r; }
    Status set_regs(const Registers &regs) override {
        r = regs;
        return {};
    }
    Result<SpecialRegisters> sregs() override { return s; }
    Status set_cr2(std::uint64_t cr2) override {
        s.cr2 = cr2;
        return {};
    }
    Result<std::uint16_t> fpu_status() override { return fsw; }
    Result<std::uint32_t> mxcsr() override {
        if (fail_fpu) return make_error(Errc::kSystem, "KVM_GET_XSAVE failed");
        return mx;
    }
    Status set_mxcsr(std::uint32_t v) override {
        mx = v;
        return {};
    }
    Result<Mapping> translate(std::uint64_t linear) override {
        auto it = pages.find(linear >> 12);
        if (it == pages.end()) return Mapping{};
        Mapping m = it->second;
        m.physical += linear & 4095;
        return m;
    }
    Status read(std::uint64_t gpa, std::span<std::uint8_t> out) override {
        if (gpa + out.size() > memory.size()) return make_error(Errc::kNotFound, "outside RAM");
        std::memcpy(out.data(), memory.data() + gpa, out.size());
        return {};
    }
    Status write(std::uint64_t gpa, std::span<const std::uint8_t> in) override {
        if (gpa + in.size() > memory.size()) return make_error(Errc::kNotFound, "outside RAM");
        std::memcpy(memory.data() + gpa, in.data(), in.size());
        return {};
    }
    Status inject(std::uint8_t vector, std::optional<std::uint32_t> code) override {
        injected.emplace_back(vector, code);
        return {};
    }

    // Linear address `linear` as the fake's page tables place it in `memory`.
    std::uint32_t word_at(std::uint64_t linear) {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            auto m = *translate(linear + i);
            v |= std::uint32_t{memory[m.physical]} << (8 * i);
        }
        return v;
    }
    void put_word(std::uint64_t linear, std::uint32_t v) {
        for (int i = 0; i < 4; ++i) memory[(*translate(linear + i)).physical] = v >> (8 * i);
    }

    Registers r;
    SpecialRegisters s;
    std::uint32_t mx = 0x1f80;
    std::uint16_t fsw = 0;
    std::vector<std::uint8_t> memory;
    std::map<std::uint64_t, Mapping> pages;
    std::vector<std::pair<std::uint8_t, std::optional<std::uint32_t>>> injected;
    bool fail_fpu = false;
};

using Bytes = std::vector<std::uint8_t>;

TEST(InsnAssist, Int3IsATrapAtTheNextInstruction) {
    FakeCpu cpu;
    auto done = complete_instruction(Bytes{0xcc, 0x90}, cpu);
    ASSERT_TRUE(done) << done.error().message();
    EXPECT_EQ(done->insn, AssistedInsn::kInt3);
    EXPECT_EQ(cpu.r.rip, 0x1001u);
    ASSERT_EQ(cpu.injected.size(), 1u);
    EXPECT_EQ(cpu.injected[0].first, 3);
    EXPECT_FALSE(cpu.injected[0].second.has_value());
}

TEST(InsnAssist, FwaitCompletesOrFaultsAsTheCpu) {
    FakeCpu cpu;
    ASSERT_TRUE(complete_instruction(Bytes{0x9b}, cpu));
    EXPECT_EQ(cpu.r.rip, 0x1001u);
    EXPECT_TRUE(cpu.injected.empty());
    // A pending unmasked x87 exception with CR0.NE: #MF, RIP unchanged.
    cpu.fsw = 0x80;
    auto mf = complete_instruction(Bytes{0x9b}, cpu);
    ASSERT_TRUE(mf);
    EXPECT_EQ(mf->exception, 16);
    EXPECT_EQ(cpu.r.rip, 0x1001u);
    // CR0.TS with MP: #NM.
    cpu.fsw = 0;
    cpu.s.cr0 |= 8;
    auto nm = complete_instruction(Bytes{0x9b}, cpu);
    ASSERT_TRUE(nm);
    EXPECT_EQ(nm->exception, 7);
}

TEST(InsnAssist, ClacStacFlipAcAndFaultOutsideRing0) {
    FakeCpu cpu;
    ASSERT_TRUE(complete_instruction(Bytes{0x0f, 0x01, 0xcb}, cpu));
    EXPECT_NE(cpu.r.rflags & (1u << 18), 0u);
    EXPECT_EQ(cpu.r.rip, 0x1003u);
    ASSERT_TRUE(complete_instruction(Bytes{0x0f, 0x01, 0xca}, cpu));
    EXPECT_EQ(cpu.r.rflags & (1u << 18), 0u);
    cpu.s.cs.dpl = 3;
    auto ud = complete_instruction(Bytes{0x0f, 0x01, 0xca}, cpu);
    ASSERT_TRUE(ud);
    EXPECT_EQ(ud->exception, 6);
    EXPECT_EQ(cpu.r.rip, 0x1006u);
}

struct MemForm {
    const char *name;
    Bytes bytes;
    std::uint64_t linear;  // where the operand must be
    std::uint64_t length;
    void (*setup)(FakeCpu &);
};

TEST(InsnAssist, LdmxcsrDecodesEachAddressingForm) {
    const std::vector<MemForm> forms = {
        {"(%rbx)", {0x0f, 0xae, 0x13}, 0x2010, 3, [](FakeCpu &c) { c.r.rbx = 0x2010; }},
        {"disp8(%rbx)", {0x0f, 0xae, 0x53, 0xf0}, 0x2000, 4, [](FakeCpu &c) { c.r.rbx = 0x2010; }},
        {"disp32(%rbp)",
         {0x0f, 0xae, 0x95, 0x00, 0x10, 0x00, 0x00},
         0x3008,
         7,
         [](FakeCpu &c) { c.r.rbp = 0x2008; }},
        {"rip-relative", {0x0f, 0xae, 0x15, 0x00, 0x20, 0x00, 0x00}, 0x1007 + 0x2000, 7, nullptr},
        {"disp32(%rbx,%rcx,4)",
         {0x0f, 0xae, 0x94, 0x8b, 0x00, 0x01, 0x00, 0x00},
         0x2000 + 12 + 0x100,
         8,
         [](FakeCpu &c) {
             c.r.rbx = 0x2000;
             c.r.rcx = 3;
         }},
        {"8(%r13,%r14,8) (REX.XB)",
         {0x43, 0x0f, 0xae, 0x54, 0xf5, 0x08},
         0x4000 + 32 + 8,
         6,
         [](FakeCpu &c) {
             c.r.r13 = 0x4000;
             c.r.r14 = 4;
         }},
        {"%gs:disp32 (SIB, no base)",
         {0x65, 0x0f, 0xae, 0x14, 0x25, 0x10, 0x00, 0x00, 0x00},
         0x5000 + 0x10,
         9,
         [](FakeCpu &c) { c.s.gs.base = 0x5000; }},
        {"addr32 (%ebx)",
         {0x67, 0x0f, 0xae, 0x13},
         0x6000,
         4,
         [](FakeCpu &c) { c.r.rbx = 0xffffffff00006000; }},
        {"across pages", {0x0f, 0xae, 0x13}, 0x2ffe, 3, [](FakeCpu &c) { c.r.rbx = 0x2ffe; }},
    };
    for (const auto &f : forms) {
        FakeCpu cpu;
        if (f.setup) f.setup(cpu);
        cpu.put_word(f.linear, 0x5fa0);
        auto done = complete_instruction(f.bytes, cpu);
        ASSERT_TRUE(done) << f.name << ": " << done.error().message();
        EXPECT_EQ(done->insn, AssistedInsn::kLdmxcsr) << f.name;
        EXPECT_FALSE(done->exception) << f.name;
        EXPECT_EQ(cpu.mx, 0x5fa0u) << f.name;
        EXPECT_EQ(cpu.r.rip, 0x1000 + f.length) << f.name;
    }
}

TEST(InsnAssist, StmxcsrWritesThroughThePageTables) {
    FakeCpu cpu;
    cpu.mx = 0x3f81;
    cpu.r.rdi = 0x3ffd;  // straddles linear pages 3 and 4 (physical pages 12 and 11)
    auto done = complete_instruction(Bytes{0x0f, 0xae, 0x1f}, cpu);
    ASSERT_TRUE(done) << done.error().message();
    EXPECT_EQ(done->insn, AssistedInsn::kStmxcsr);
    EXPECT_EQ(cpu.word_at(0x3ffd), 0x3f81u);
    EXPECT_EQ(cpu.r.rip, 0x1003u);
}

TEST(InsnAssist, MxcsrFaultsAreTheCpus) {
    {  // a reserved bit: #GP(0), MXCSR and RIP unchanged
        FakeCpu cpu;
        cpu.r.rbx = 0x2000;
        cpu.put_word(0x2000, 0x10000 | 0x1f80);
        auto done = complete_instruction(Bytes{0x0f, 0xae, 0x13}, cpu);
        ASSERT_TRUE(done);
        EXPECT_EQ(done->exception, 13);
        EXPECT_EQ(cpu.injected.back().second, 0u);
        EXPECT_EQ(cpu.mx, 0x1f80u);
        EXPECT_EQ(cpu.r.rip, 0x1000u);
    }
    {  // unmapped: #PF, CR2 = the first absent byte, error code not-present | read
        FakeCpu cpu;
        cpu.r.rbx = 0xfffe;  // page 15 mapped, page 16 absent
        auto done = complete_instruction(Bytes{0x0f, 0xae, 0x13}, cpu);
        ASSERT_TRUE(done);
        EXPECT_EQ(done->exception, 14);
        EXPECT_EQ(cpu.s.cr2, 0x10000u);
        EXPECT_EQ(cpu.injected.back().second, 0u);
        EXPECT_EQ(cpu.r.rip, 0x1000u);
    }
    {  // a write to a read-only page with CR0.WP: #PF present | write
        FakeCpu cpu;
        cpu.r.rbx = 0x7000;
        auto done = complete_instruction(Bytes{0x0f, 0xae, 0x1b}, cpu);
        ASSERT_TRUE(done);
        EXPECT_EQ(done->exception, 14);
        EXPECT_EQ(cpu.injected.back().second, 3u);
        // Without CR0.WP ring 0 may write it.
        FakeCpu wp_off;
        wp_off.s.cr0 &= ~(1u << 16);
        wp_off.r.rbx = 0x7000;
        ASSERT_TRUE(complete_instruction(Bytes{0x0f, 0xae, 0x1b}, wp_off));
        EXPECT_TRUE(wp_off.injected.empty());
        EXPECT_EQ(wp_off.word_at(0x7000), 0x1f80u);
    }
    {  // CR4.OSFXSR clear: #UD; CR0.TS: #NM
        FakeCpu cpu;
        cpu.s.cr4 = 0;
        EXPECT_EQ(complete_instruction(Bytes{0x0f, 0xae, 0x13}, cpu)->exception, 6);
        FakeCpu ts;
        ts.s.cr0 |= 8;
        EXPECT_EQ(complete_instruction(Bytes{0x0f, 0xae, 0x13}, ts)->exception, 7);
    }
}

TEST(InsnAssist, UnknownTruncatedOrFailingIsAnErrorAndChangesNothing) {
    const std::vector<Bytes> refused = {
        {},                              // no bytes
        {0xf0, 0x48, 0x0f, 0xc7, 0x0e},  // lock cmpxchg16b: not completed
        {0x48, 0x0f, 0xae, 0x2f},        // xrstor64
        {0x0f, 0xae},                    // truncated
        {0x0f, 0xae, 0x94},              // SIB missing
        {0x66, 0x66, 0x66},              // only prefixes
        {0x0f, 0xae, 0xd0},              // 0f ae /2 with a register operand (wrfsbase family)
        {0xf3, 0x0f, 0xae, 0x13},        // a rep prefix: another instruction
        {0xf0, 0xcc},                    // lock int3: #UD on the CPU, not ours
    };
    for (const auto &b : refused) {
        FakeCpu cpu;
        cpu.r.rbx = 0x2000;
        auto done = complete_instruction(b, cpu);
        ASSERT_FALSE(done) << hex_bytes(b);
        EXPECT_EQ(done.error().code(), Errc::kInvalidArgument) << hex_bytes(b);
        if (!b.empty()) {
            EXPECT_NE(done.error().message().find(hex_bytes(b)), std::string::npos);
        }
        EXPECT_EQ(cpu.r.rip, 0x1000u);
        EXPECT_TRUE(cpu.injected.empty());
    }
    // 16-bit code is not completed.
    FakeCpu real;
    real.s.cr0 = 0;
    real.s.efer = 0;
    EXPECT_FALSE(complete_instruction(Bytes{0xcc}, real));
    // A failing vCPU access is its own error, not "unknown".
    FakeCpu broken;
    broken.fail_fpu = true;
    broken.r.rbx = 0x2000;
    auto e = complete_instruction(Bytes{0x0f, 0xae, 0x1b}, broken);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), Errc::kSystem);
    // An operand whose page maps outside RAM: an error, no access outside the fake's memory.
    FakeCpu outside;
    outside.pages[8] = {1ull << 40, true, true};
    outside.r.rbx = 0x8000;
    auto o = complete_instruction(Bytes{0x0f, 0xae, 0x13}, outside);
    ASSERT_FALSE(o);
    EXPECT_EQ(o.error().code(), Errc::kNotFound);
}

TEST(InsnAssist, FetchReadsAtRipAndStopsAtAnAbsentPage) {
    FakeCpu cpu;
    cpu.r.rip = 0xfff8;  // 8 bytes before the absent page 16
    for (int i = 0; i < 8; ++i) cpu.memory[(*cpu.translate(0xfff8 + i)).physical] = 0xa0 + i;
    auto bytes = fetch_instruction(cpu);
    ASSERT_TRUE(bytes) << bytes.error().message();
    ASSERT_EQ(bytes->size(), 8u);
    EXPECT_EQ((*bytes)[0], 0xa0);
    EXPECT_EQ((*bytes)[7], 0xa7);
    cpu.r.rip = 0x20000;
    EXPECT_FALSE(fetch_instruction(cpu));
}

TEST(InsnAssist, CpuidMaskHidesTheRefusedFeatures) {
    std::vector<kvm_cpuid_entry2> e(4);
    e[0].function = 1;
    e[0].ecx = 0xffffffff;
    e[0].edx = 0xffffffff;
    e[1].function = 7;
    e[1].ebx = e[1].ecx = e[1].edx = 0xffffffff;
    e[2].function = 0xd;
    e[2].eax = 0x2e7;
    e[3].function = 0x80000001;
    e[3].ecx = e[3].edx = 0xffffffff;
    mask_cpuid_for_emulating_host(e);
    EXPECT_EQ(e[0].ecx & (1u << 13), 0u);  // CX16
    EXPECT_EQ(e[0].ecx & (1u << 26), 0u);  // XSAVE
    EXPECT_EQ(e[0].ecx & (1u << 23), 0u);  // POPCNT
    EXPECT_NE(e[0].ecx & 1u, 0u);          // SSE3 stays
    EXPECT_EQ(e[0].edx, 0xffffffffu);
    EXPECT_EQ(e[1].ebx & (1u << 20), 0u);  // SMAP
    EXPECT_NE(e[1].ebx & (1u << 7), 0u);   // SMEP stays
    EXPECT_EQ(e[1].ecx, 0u);
    EXPECT_EQ(e[2].eax, 0u);
    EXPECT_EQ(e[3].edx & (1u << 26), 0u);  // 1 GiB pages
    EXPECT_NE(e[3].edx & (1u << 29), 0u);  // long mode stays
    const std::string args = linux_args_for_emulating_host();
    for (const char *bit : {"141", "154", "308", "151", "129", "137", "147", "148"}) {
        EXPECT_NE(args.find(bit), std::string::npos) << bit;
    }
    EXPECT_NE(args.find("noxsave"), std::string::npos);
}

}  // namespace
}  // namespace guestvm::x86
