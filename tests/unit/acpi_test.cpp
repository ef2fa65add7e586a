// The ACPI tables and the AML encoder, without KVM: each table read back as an OS reads it (from
// the RSDP through the XSDT's pointers), checksums, lengths and entries; the AML against the
// encodings the ACPI specification gives; and, where ACPICA's iasl is installed, each table
// disassembled by it without an error.
#include "loaders/acpi.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "guestvm/loader.hpp"
#include "loaders/aml.hpp"
#include "support/images.hpp"

namespace guestvm {
namespace {

using aml::Bytes;

// ---- reading tables back ----

std::uint64_t le(std::span<const std::uint8_t> b, std::size_t off, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b[off + i]} << (8 * i);
    return v;
}

std::uint8_t sum(std::span<const std::uint8_t> b) {
    return static_cast<std::uint8_t>(std::accumulate(b.begin(), b.end(), 0u));
}

// The tables as a guest finds them: each one located by the address that points to it.
struct Parsed {
    std::span<const std::uint8_t> rsdp, xsdt, fadt, madt, dsdt;
};

// The bytes of the table at guest-physical `addr`, which must lie wholly inside the blob and
// carry `sig`, a sane length, the OEM id and a zero checksum.
std::span<const std::uint8_t> table_at(const acpi::Tables &t, std::uint64_t addr, const char *sig) {
    EXPECT_GE(addr, t.base) << sig;
    EXPECT_LT(addr, t.base + t.bytes.size()) << sig;
    if (addr < t.base || addr + 36 > t.base + t.bytes.size()) return {};
    std::span<const std::uint8_t> all(t.bytes);
    auto header = all.subspan(addr - t.base);
    const std::uint64_t length = le(header, 4, 4);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(header.data()), 4), sig);
    EXPECT_GE(length, 36u) << sig;
    EXPECT_LE(addr - t.base + length, t.bytes.size()) << sig << " runs past the blob";
    if (length < 36 || addr - t.base + length > t.bytes.size()) return {};
    auto table = header.first(length);
    EXPECT_EQ(sum(table), 0) << sig << " checksum";
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(table.data() + 10), 6), "GSTVM ") << sig;
    return table;
}

Parsed parse(const acpi::Tables &t) {
    Parsed p;
    std::span<const std::uint8_t> all(t.bytes);
    EXPECT_EQ(t.rsdp, t.base);
    EXPECT_EQ(t.rsdp % 16, 0u);
    p.rsdp = all.first(36);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(p.rsdp.data()), 8), "RSD PTR ");
    EXPECT_EQ(sum(p.rsdp.first(20)), 0) << "RSDP 1.0 checksum";
    EXPECT_EQ(sum(p.rsdp), 0) << "RSDP extended checksum";
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(p.rsdp.data() + 9), 6), "GSTVM ");
    EXPECT_EQ(p.rsdp[15], 2) << "revision";
    EXPECT_EQ(le(p.rsdp, 20, 4), 36u) << "length";
    p.xsdt = table_at(t, le(p.rsdp, 24, 8), "XSDT");
    if (p.xsdt.empty()) return p;
    EXPECT_EQ((p.xsdt.size() - 36) % 8, 0u);
    EXPECT_EQ(p.xsdt.size(), 36u + 2 * 8) << "two entries: FADT and MADT";
    if (p.xsdt.size() < 36 + 16) return p;
    p.fadt = table_at(t, le(p.xsdt, 36, 8), "FACP");
    p.madt = table_at(t, le(p.xsdt, 44, 8), "APIC");
    if (p.fadt.size() >= 148) p.dsdt = table_at(t, le(p.fadt, 140, 8), "DSDT");
    return p;
}

struct MadtCounts {
    int lapics = 0, x2apics = 0, ioapics = 0, overrides = 0, other = 0;
    std::set<std::uint32_t> apic_ids, uids;
    std::uint64_t ioapic_addr = 0, ioapic_gsi_base = ~0ull;
    bool lengths_add_up = false;
};

MadtCounts count_entries(std::span<const std::uint8_t> madt) {
    MadtCounts c;
    std::size_t off = 44;
    while (off + 2 <= madt.size() && madt[off + 1] >= 2 && off + madt[off + 1] <= madt.size()) {
        auto e = madt.subspan(off, madt[off + 1]);
        switch (e[0]) {
            case 0:
                EXPECT_EQ(e.size(), 8u);
                EXPECT_EQ(le(e, 4, 4) & 1, 1u) << "local APIC " << int(e[3]) << " enabled";
                EXPECT_LE(e[3], 254) << "xAPIC ids stop at 254";
                ++c.lapics;
                c.apic_ids.insert(e[3]);
                c.uids.insert(e[2]);
                break;
            case 9:
                EXPECT_EQ(e.size(), 16u);
                EXPECT_EQ(le(e, 8, 4) & 1, 1u) << "x2APIC " << le(e, 4, 4) << " enabled";
                EXPECT_GT(le(e, 4, 4), 254u) << "x2APIC entries only for ids above 254";
                ++c.x2apics;
                c.apic_ids.insert(static_cast<std::uint32_t>(le(e, 4, 4)));
                c.uids.insert(static_cast<std::uint32_t>(le(e, 12, 4)));
                break;
            case 1:
                EXPECT_EQ(e.size(), 12u);
                ++c.ioapics;
                c.ioapic_addr = le(e, 4, 4);
                c.ioapic_gsi_base = le(e, 8, 4);
                break;
            case 2:
                ++c.overrides;
                break;
            default:
                ++c.other;
        }
        off += e.size();
    }
    c.lengths_add_up = off == madt.size();
    return c;
}

// A PkgLength at `p`: (its value, the bytes it takes).
std::pair<std::size_t, std::size_t> read_pkg_length(std::span<const std::uint8_t> p) {
    const std::size_t follow = p[0] >> 6;
    std::size_t value = follow == 0 ? p[0] & 0x3f : p[0] & 0x0f;
    for (std::size_t i = 0; i < follow; ++i) value |= std::size_t{p[1 + i]} << (4 + 8 * i);
    return {value, 1 + follow};
}

// One AML integer at `p`: (value, bytes), or bytes 0 if `p` holds no integer.
std::pair<std::uint64_t, std::size_t> read_integer(std::span<const std::uint8_t> p) {
    switch (p[0]) {
        case 0x00:
            return {0, 1};
        case 0x01:
            return {1, 1};
        case 0xff:
            return {~0ull, 1};
        case 0x0a:
            return {p[1], 2};
        case 0x0b:
            return {le(p, 1, 2), 3};
        case 0x0c:
            return {le(p, 1, 4), 5};
        case 0x0e:
            return {le(p, 1, 8), 9};
    }
    return {0, 0};
}

std::size_t find(std::span<const std::uint8_t> hay, const Bytes &needle) {
    auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end());
    return it == hay.end() ? std::string::npos : static_cast<std::size_t>(it - hay.begin());
}

acpi::Tables build(AcpiOptions options) {
    auto t = acpi::build_tables(options);
    EXPECT_TRUE(t) << (t ? "" : t.error().message());
    return t ? *t : acpi::Tables{};
}

// ---- the tables ----

TEST(AcpiTables, EveryTableIsFoundFromTheRsdpWithItsChecksumAndLength) {
    for (int n : {1, 2, 4, 300}) {
        SCOPED_TRACE(n);
        acpi::Tables t = build({.vcpus = n, .ioapic = true});
        EXPECT_EQ(t.base, 0xe0000u);
        EXPECT_LE(t.base + t.bytes.size(), 0x100000u) << "inside the BIOS area";
        Parsed p = parse(t);
        ASSERT_FALSE(p.fadt.empty());
        ASSERT_FALSE(p.madt.empty());
        ASSERT_FALSE(p.dsdt.empty());
        // The four tables lie apart from each other inside the blob.
        std::vector<std::pair<const std::uint8_t *, std::size_t>> spans{
            {p.rsdp.data(), p.rsdp.size()},
            {p.xsdt.data(), p.xsdt.size()},
            {p.fadt.data(), p.fadt.size()},
            {p.madt.data(), p.madt.size()},
            {p.dsdt.data(), p.dsdt.size()}};
        std::sort(spans.begin(), spans.end());
        for (std::size_t i = 1; i < spans.size(); ++i) {
            EXPECT_LE(spans[i - 1].first + spans[i - 1].second, spans[i].first) << "overlap";
        }
    }
}

TEST(AcpiTables, MadtHasOneEnabledApicPerVcpuAndTheIoApic) {
    for (int n : {1, 2, 4, 300}) {
        SCOPED_TRACE(n);
        acpi::Tables t = build({.vcpus = n, .ioapic = true});
        Parsed p = parse(t);
        ASSERT_GE(p.madt.size(), 44u);
        EXPECT_EQ(p.madt[8], 4) << "MADT revision";
        EXPECT_EQ(le(p.madt, 36, 4), 0xfee00000u) << "local APIC address";
        EXPECT_EQ(le(p.madt, 40, 4), 1u) << "PCAT_COMPAT: KVM's irqchip has the 8259s";
        MadtCounts c = count_entries(p.madt);
        EXPECT_TRUE(c.lengths_add_up);
        EXPECT_EQ(c.lapics, std::min(n, 255));
        EXPECT_EQ(c.x2apics, std::max(n - 255, 0));
        EXPECT_EQ(c.ioapics, 1);
        EXPECT_EQ(c.overrides, 0) << "KVM's default routing: ISA IRQ n is GSI n";
        EXPECT_EQ(c.other, 0);
        EXPECT_EQ(c.ioapic_addr, 0xfec00000u);
        EXPECT_EQ(c.ioapic_gsi_base, 0u);
        // APIC ids and processor UIDs are exactly 0..n-1.
        std::set<std::uint32_t> want;
        for (int i = 0; i < n; ++i) want.insert(static_cast<std::uint32_t>(i));
        EXPECT_EQ(c.apic_ids, want);
        EXPECT_EQ(c.uids, want);
    }
}

TEST(AcpiTables, WithoutAnIrqchipThereIsNoIoApicAndNoPic) {
    acpi::Tables t = build({.vcpus = 2, .ioapic = false});
    Parsed p = parse(t);
    MadtCounts c = count_entries(p.madt);
    EXPECT_EQ(c.lapics, 2);
    EXPECT_EQ(c.ioapics, 0);
    EXPECT_EQ(le(p.madt, 40, 4), 0u) << "no PCAT_COMPAT";
    // COM1 is still described, but without an interrupt nobody could deliver.
    EXPECT_NE(find(p.dsdt, {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08}), std::string::npos);
    EXPECT_EQ(find(p.dsdt, {0x22, 0x10, 0x00}), std::string::npos);
}

TEST(AcpiTables, FadtIsHardwareReducedWithIoPortSleepRegisters) {
    acpi::Tables t = build({.vcpus = 1, .ioapic = true});
    Parsed p = parse(t);
    ASSERT_EQ(p.fadt.size(), 276u);
    EXPECT_EQ(p.fadt[8], 6) << "revision";
    EXPECT_EQ(p.fadt[131], 0) << "minor version (ACPI 6.0)";
    const std::uint64_t flags = le(p.fadt, 112, 4);
    EXPECT_TRUE(flags & (1u << 20)) << "HW_REDUCED_ACPI";
    EXPECT_FALSE(flags & (1u << 10)) << "no reset register is claimed";
    EXPECT_EQ(le(p.fadt, 36, 4), 0u) << "no FACS";
    EXPECT_EQ(le(p.fadt, 40, 4), 0u) << "the 32-bit DSDT field yields to X_DSDT";
    EXPECT_EQ(le(p.fadt, 46, 2), 0u) << "no SCI";
    for (std::size_t off = 56; off < 88; off += 4) EXPECT_EQ(le(p.fadt, off, 4), 0u) << off;
    const std::uint64_t boot_arch = le(p.fadt, 109, 2);
    EXPECT_FALSE(boot_arch & (1u << 1)) << "no 8042";
    EXPECT_TRUE(boot_arch & (1u << 2)) << "VGA not present";
    EXPECT_TRUE(boot_arch & (1u << 5)) << "CMOS RTC not present";
    // SLEEP_CONTROL_REG and SLEEP_STATUS_REG: byte-wide registers in I/O space.
    const std::array<std::uint8_t, 12> control{1, 8, 0, 1, 0x04, 0x06, 0, 0, 0, 0, 0, 0};
    const std::array<std::uint8_t, 12> status{1, 8, 0, 1, 0x05, 0x06, 0, 0, 0, 0, 0, 0};
    EXPECT_TRUE(std::equal(control.begin(), control.end(), p.fadt.begin() + 244));
    EXPECT_TRUE(std::equal(status.begin(), status.end(), p.fadt.begin() + 256));
}

TEST(AcpiTables, DsdtHasAWellFormedS5PackageAndCom1) {
    acpi::Tables t = build({.vcpus = 4, .ioapic = true});
    Parsed p = parse(t);
    ASSERT_GT(p.dsdt.size(), 36u);
    EXPECT_EQ(p.dsdt[8], 2) << "revision 2: 64-bit integers";
    auto aml = p.dsdt.subspan(36);
    // Name(\_S5_, Package(4) {5, 0, 0, 0})
    const std::size_t at = find(aml, {0x08, 0x5c, '_', 'S', '5', '_', 0x12});
    ASSERT_NE(at, std::string::npos);
    auto pkg = aml.subspan(at + 7);
    auto [length, length_bytes] = read_pkg_length(pkg);
    ASSERT_LE(length, pkg.size()) << "the package lies inside the DSDT";
    auto body = pkg.subspan(length_bytes, length - length_bytes);
    ASSERT_FALSE(body.empty());
    EXPECT_EQ(body[0], 4) << "NumElements";
    std::vector<std::uint64_t> values;
    for (std::size_t off = 1; off < body.size();) {
        auto [v, n] = read_integer(body.subspan(off));
        ASSERT_GT(n, 0u) << "element at " << off << " is not an integer";
        values.push_back(v);
        off += n;
    }
    EXPECT_EQ(values, (std::vector<std::uint64_t>{acpi::kS5SleepType, 0, 0, 0}));
    // Scope(\_SB) { Device(COM1) { _HID PNP0501, _UID 0, _CRS { IO 0x3f8/8, IRQ 4 } } }
    EXPECT_NE(find(aml, {0x10}), std::string::npos);
    EXPECT_NE(find(aml, {0x5b, 0x82}), std::string::npos);
    EXPECT_NE(find(aml, {'_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01}), std::string::npos);
    EXPECT_NE(
        find(aml, {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00}),
        std::string::npos);
    // Without COM1 the namespace holds \_S5 alone.
    acpi::Tables bare = build({.vcpus = 1, .ioapic = true, .serial = false});
    Parsed q = parse(bare);
    EXPECT_EQ(find(q.dsdt, {0x5b, 0x82}), std::string::npos);
    EXPECT_NE(find(q.dsdt, {0x08, 0x5c, '_', 'S', '5', '_', 0x12}), std::string::npos);
}

TEST(AcpiTables, RefusesNoVcpusTooManyAndAnUnalignedBase) {
    auto none = acpi::build_tables({.vcpus = 0});
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), Errc::kInvalidArgument);
    // 128 KiB of BIOS area hold about 8000 x2APIC entries; 10000 do not fit.
    auto many = acpi::build_tables({.vcpus = 10000, .ioapic = true});
    ASSERT_FALSE(many);
    EXPECT_EQ(many.error().code(), Errc::kResourceExhausted);
    EXPECT_NE(many.error().message().find("BIOS area"), std::string::npos)
        << many.error().message();
    EXPECT_TRUE(acpi::build_tables({.vcpus = 4096, .ioapic = true})) << "KVM's largest";
    auto odd = acpi::build_tables({.vcpus = 1}, 0xe0008);
    ASSERT_FALSE(odd);
    EXPECT_NE(odd.error().message().find("aligned"), std::string::npos);
    // Elsewhere than the BIOS area, the pointers follow the base.
    auto high = acpi::build_tables({.vcpus = 2, .ioapic = true}, 0x200000);
    ASSERT_TRUE(high);
    Parsed p = parse(*high);
    EXPECT_FALSE(p.dsdt.empty());
}

// ---- the Linux planners pass the RSDP ----

TEST(AcpiTables, BootProtocolPassesTheRsdpFrom2_14AndTheTablesAlways) {
    using test_images::make_bzimage;
    const std::vector<RamRange> ram{{0, 64ull << 20}};
    for (std::uint16_t version : {0x20c, 0x20d, 0x20e, 0x20f}) {
        SCOPED_TRACE(version);
        LinuxBootOptions options{};
        options.acpi = {.vcpus = 2, .ioapic = true};
        auto plan =
            plan_linux_bzimage(make_bzimage(version, test_images::Bytes(16, 0)), options, ram);
        ASSERT_TRUE(plan) << plan.error().message();
        const LoadPlan::Piece *tables = nullptr, *zero = nullptr;
        for (const auto &piece : plan->pieces) {
            if (piece.what == "ACPI tables") tables = &piece;
            if (piece.what.find("zero page") != std::string::npos) zero = &piece;
        }
        ASSERT_TRUE(tables && zero);
        EXPECT_EQ(tables->gpa, 0xe0000u);
        EXPECT_EQ(std::string(reinterpret_cast<const char *>(tables->bytes.data()), 8), "RSD PTR ");
        // The memory map reserves the tables.
        bool reserved = false;
        for (const auto &e : plan->memory_map) {
            reserved |= e.type == MemoryMapEntry::kReserved && e.addr <= tables->gpa &&
                        tables->gpa + tables->memsz <= e.addr + e.size;
        }
        EXPECT_TRUE(reserved);
        EXPECT_EQ(le(zero->bytes, 0x070, 8), version >= 0x20e ? 0xe0000u : 0u);
    }
    // No vCPUs in the options: no tables, as before.
    auto plain = plan_linux_bzimage(make_bzimage(0x20f, test_images::Bytes(16, 0)), {}, ram);
    ASSERT_TRUE(plain);
    for (const auto &piece : plain->pieces) EXPECT_NE(piece.what, "ACPI tables");
}

// ---- iasl ----

// Runs `command`, returning its exit status and what it printed.
std::pair<int, std::string> run(const std::string &command) {
    std::string out;
    FILE *pipe = popen((command + " 2>&1").c_str(), "r");
    if (!pipe) return {-1, "popen failed"};
    std::array<char, 4096> buf;
    while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
    const int status = pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::vector<std::uint8_t> read_all(const std::filesystem::path &file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ACPICA's own reading of each table: disassembled without an error or warning, and the
// disassembly compiled back. A data table (XSDT, FADT, MADT) must come back byte for byte after
// its header (iasl writes its own compiler id and checksum); the DSDT must compile. This iasl
// (20200925) opens only files that start with a description-table header, so the RSDP, which
// has none, is left to parse() above.
TEST(AcpiTables, IaslDisassemblesAndRecompilesEveryTable) {
    if (run("command -v iasl").first != 0) {
        GTEST_SKIP() << "iasl is not installed (Debian package acpica-tools; scripts/setup.sh)";
    }
    for (int n : {1, 300}) {
        SCOPED_TRACE(n);
        acpi::Tables t = build({.vcpus = n, .ioapic = true});
        Parsed p = parse(t);
        const std::filesystem::path dir =
            std::filesystem::path(::testing::TempDir()) / ("acpi_iasl_" + std::to_string(n));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        const std::map<std::string, std::span<const std::uint8_t>> tables{
            {"xsdt", p.xsdt}, {"facp", p.fadt}, {"apic", p.madt}, {"dsdt", p.dsdt}};
        for (const auto &[name, bytes] : tables) {
            SCOPED_TRACE(name);
            ASSERT_FALSE(bytes.empty());
            const auto file = dir / (name + ".dat");
            std::ofstream(file, std::ios::binary)
                .write(reinterpret_cast<const char *>(bytes.data()),
                       static_cast<std::streamsize>(bytes.size()));
            const std::string in_dir = "cd '" + dir.string() + "' && ";
            auto [status, out] = run(in_dir + "iasl -d " + name + ".dat");
            EXPECT_EQ(status, 0) << out;
            EXPECT_EQ(out.find("Error"), std::string::npos) << out;
            EXPECT_EQ(out.find("Warning"), std::string::npos) << out;
            ASSERT_TRUE(std::filesystem::exists(dir / (name + ".dsl"))) << out;

            auto [rc, compiled] = run(in_dir + "iasl -p re_" + name + " " + name + ".dsl");
            EXPECT_EQ(rc, 0) << compiled;
            EXPECT_NE(compiled.find(" 0 Errors, 0 Warnings"), std::string::npos) << compiled;
            if (name == "dsdt") continue;  // iasl may shorten the AML's name paths
            const auto again = read_all(dir / ("re_" + name + ".aml"));
            ASSERT_EQ(again.size(), bytes.size());
            EXPECT_TRUE(std::equal(bytes.begin() + 36, bytes.end(), again.begin() + 36));
        }
    }
}

// ---- the AML encoder ----

TEST(Aml, IntegersTakeTheirShortestEncoding) {
    EXPECT_EQ(aml::integer(0), (Bytes{0x00}));
    EXPECT_EQ(aml::integer(1), (Bytes{0x01}));
    EXPECT_EQ(aml::integer(2), (Bytes{0x0a, 0x02}));
    EXPECT_EQ(aml::integer(0xff), (Bytes{0x0a, 0xff}));
    EXPECT_EQ(aml::integer(0x100), (Bytes{0x0b, 0x00, 0x01}));
    EXPECT_EQ(aml::integer(0x12345678), (Bytes{0x0c, 0x78, 0x56, 0x34, 0x12}));
    EXPECT_EQ(aml::integer(0x100000000), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
    EXPECT_EQ(aml::integer(~0ull), (Bytes{0xff}));
}

TEST(Aml, PkgLengthGrowsAtEachBoundary) {
    auto len = [](std::size_t body) {
        auto r = aml::pkg_length(body);
        EXPECT_TRUE(r);
        return r ? *r : Bytes{};
    };
    EXPECT_EQ(len(0), (Bytes{0x01}));
    EXPECT_EQ(len(62), (Bytes{0x3f}));        // 63 with itself: the one-byte limit
    EXPECT_EQ(len(63), (Bytes{0x41, 0x04}));  // 65 = 0x041
    EXPECT_EQ(len(0xffd), (Bytes{0x4f, 0xff}));
    EXPECT_EQ(len(0xffe), (Bytes{0x81, 0x00, 0x01}));  // 0x1001
    EXPECT_EQ(len(0xffffc), (Bytes{0x8f, 0xff, 0xff}));
    EXPECT_EQ(len(0xffffd), (Bytes{0xc1, 0x00, 0x00, 0x01}));
    EXPECT_FALSE(aml::pkg_length(1u << 28));
}

TEST(Aml, NamesAreSegmentsPaddedWithUnderscores) {
    auto name = [](std::string_view path) {
        auto r = aml::name_string(path);
        EXPECT_TRUE(r) << path;
        return r ? *r : Bytes{};
    };
    EXPECT_EQ(name("_S5"), (Bytes{'_', 'S', '5', '_'}));
    EXPECT_EQ(name("\\_SB"), (Bytes{0x5c, '_', 'S', 'B', '_'}));
    EXPECT_EQ(name("\\_SB.COM1"), (Bytes{0x5c, 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'}));
    EXPECT_EQ(name("\\_SB.PCI0.S08"),
              (Bytes{0x5c, 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'S', '0', '8', '_'}));
    EXPECT_EQ(name("^^PCI0"), (Bytes{0x5e, 0x5e, 'P', 'C', 'I', '0'}));
    EXPECT_EQ(name("\\"), (Bytes{0x5c, 0x00}));
    for (std::string_view bad : {"", "1ABC", "ABCDE", "a", "_SB.", "\\.X", "A-B", "^1"}) {
        auto r = aml::name_string(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
        }
    }
}

TEST(Aml, NamedObjectsPackagesBuffersAndDevices) {
    EXPECT_EQ(*aml::string("abc"), (Bytes{0x0d, 'a', 'b', 'c', 0}));
    EXPECT_FALSE(aml::string(std::string_view("a\0b", 3)));
    EXPECT_EQ(*aml::name("_UID", aml::integer(0)), (Bytes{0x08, '_', 'U', 'I', 'D', 0x00}));
    const std::array<Bytes, 2> two{aml::integer(5), aml::integer(0)};
    EXPECT_EQ(*aml::package(two), (Bytes{0x12, 0x05, 0x02, 0x0a, 0x05, 0x00}));
    EXPECT_FALSE(aml::package(std::vector<Bytes>(256, aml::integer(0))));
    const std::array<std::uint8_t, 2> data{0x79, 0x00};
    EXPECT_EQ(*aml::buffer(data), (Bytes{0x11, 0x05, 0x0a, 0x02, 0x79, 0x00}));
    EXPECT_EQ(*aml::device("COM1", {}), (Bytes{0x5b, 0x82, 0x05, 'C', 'O', 'M', '1'}));
    EXPECT_EQ(*aml::scope("\\_SB", {0x01}), (Bytes{0x10, 0x07, 0x5c, '_', 'S', 'B', '_', 0x01}));
    // A scope too long for a one-byte PkgLength.
    auto big = aml::scope("\\_SB", Bytes(100, 0x01));
    ASSERT_TRUE(big);
    EXPECT_EQ(big->size(), 1u + 2 + 5 + 100);
    EXPECT_EQ((*big)[1], 0x40 | ((2 + 5 + 100) & 0x0f));
    EXPECT_FALSE(aml::device("TOOLONG", {}));
}

TEST(Aml, EisaIdsAndResourceDescriptors) {
    EXPECT_EQ(*aml::eisa_id("PNP0A03"), (Bytes{0x0c, 0x41, 0xd0, 0x0a, 0x03}));
    EXPECT_EQ(*aml::eisa_id("PNP0501"), (Bytes{0x0c, 0x41, 0xd0, 0x05, 0x01}));
    for (std::string_view bad : {"pnp0a03", "PNP0A0G", "PNP0A0", "PNP0A031", "P1P0A03"}) {
        EXPECT_FALSE(aml::eisa_id(bad)) << bad;
    }
    EXPECT_EQ(aml::resource::io(0x3f8, 8), (Bytes{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08}));
    EXPECT_EQ(*aml::resource::irq(4), (Bytes{0x22, 0x10, 0x00}));
    EXPECT_EQ(*aml::resource::irq(15), (Bytes{0x22, 0x00, 0x80}));
    EXPECT_FALSE(aml::resource::irq(16));
    const std::array<Bytes, 1> one{aml::resource::io(0x60, 1)};
    EXPECT_EQ(aml::resource::template_of(one),
              (Bytes{0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01, 0x79, 0x00}));
}

}  // namespace
}  // namespace guestvm
