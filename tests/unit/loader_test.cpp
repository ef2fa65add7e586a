// The planners, without KVM: what they accept, where they put it, and every malformed case
// refused with kMalformedImage (or kInvalidArgument for bad options) naming the problem.
#include "guestvm/loader.hpp"

#include <elf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/images.hpp"

namespace guestvm {
namespace {

using namespace test_images;

void expect_malformed(const Result<LoadPlan> &plan, const std::string &needle) {
    ASSERT_FALSE(plan) << "accepted; wanted an error containing \"" << needle << "\"";
    EXPECT_EQ(plan.error().code(), Errc::kMalformedImage) << plan.error().message();
    EXPECT_NE(plan.error().message().find(needle), std::string::npos) << plan.error().message();
}

// How far this process's resident memory peaks above where it stood when constructed: the
// kernel's high-water mark is reset to the current RSS (clear_refs 5) and read back later.
class PeakGrowth {
  public:
    PeakGrowth() {
        std::ofstream("/proc/self/clear_refs") << "5";
        start_kib_ = field("VmRSS:");
    }
    std::uint64_t kib() const { return field("VmHWM:") - std::min(start_kib_, field("VmHWM:")); }

  private:
    static std::uint64_t field(const std::string &name) {
        std::ifstream status("/proc/self/status");
        for (std::string key; status >> key;) {
            if (key == name) {
                std::uint64_t v = 0;
                status >> v;
                return v;
            }
            status.ignore(1 << 12, '\n');
        }
        return 0;
    }
    std::uint64_t start_kib_ = 0;
};

// A payload that really decodes to `real`'s bytes but states 1 GiB in the trailer the kernel
// build appends (for gzip, its own length field).
Bytes claiming_1gib(Bytes packed) {
    put<std::uint32_t>(packed, packed.size() - 4, 1u << 30);
    return packed;
}

TEST(PlanElf, PlacesSegmentsAndEntersLongMode) {
    Elf64Builder b(0x200000, 100, 0x3000);
    Bytes image = b.build();
    auto plan = plan_elf(image, kRam64M);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->format, "elf64");
    EXPECT_EQ(plan->entry.mode, BootMode::kLong64);
    EXPECT_EQ(plan->entry.rip, 0x200000u);
    ASSERT_EQ(plan->pieces.size(), 1u);
    EXPECT_EQ(plan->pieces[0].gpa, 0x200000u);
    EXPECT_EQ(plan->pieces[0].bytes.size(), 100u);
    EXPECT_EQ(plan->pieces[0].memsz, 100u + 0x3000);
}

TEST(PlanElf, EntryRunsAtThePhysicalCounterpartOfItsVirtualAddress) {
    Elf64Builder b(0x100000);
    b.ph[0].p_vaddr = 0xffffffff80000000ull;
    b.eh.e_entry = 0xffffffff80000010ull;
    Bytes image = b.build();
    auto plan = plan_elf(image, kRam64M);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->entry.rip, 0x100010u);
}

TEST(PlanElf, RefusesEachMalformedHeader) {
    Bytes good = Elf64Builder().build();
    expect_malformed(plan_elf(Bytes(good.begin(), good.begin() + 40), kRam64M), "shorter");
    expect_malformed(plan_elf(Bytes{}, kRam64M), "no ELF magic");
    {
        Bytes b = good;
        b[0] = 0;
        expect_malformed(plan_elf(b, kRam64M), "no ELF magic");
    }
    {
        Bytes b = good;
        b[EI_CLASS] = 7;
        expect_malformed(plan_elf(b, kRam64M), "class 7");
    }
    {
        Bytes b = good;
        b[EI_DATA] = ELFDATA2MSB;
        expect_malformed(plan_elf(b, kRam64M), "little-endian");
    }
    Elf64Builder b;
    b.eh.e_machine = EM_AARCH64;
    expect_malformed(plan_elf(b.build(), kRam64M), "is not x86-64");
    b = Elf64Builder();
    b.eh.e_type = ET_DYN;
    expect_malformed(plan_elf(b.build(), kRam64M), "ET_EXEC");
    b = Elf64Builder();
    b.eh.e_phentsize = 10;
    expect_malformed(plan_elf(b.build(), kRam64M), "e_phentsize");
    b = Elf64Builder();
    b.ph.clear();
    expect_malformed(plan_elf(b.build(), kRam64M), "no program headers");
    {
        Bytes img = Elf64Builder().build();
        Elf64_Ehdr h;
        std::memcpy(&h, img.data(), sizeof(h));
        h.e_phoff = img.size() - 8;
        std::memcpy(img.data(), &h, sizeof(h));
        expect_malformed(plan_elf(img, kRam64M), "program headers run past");
        h.e_phoff = ~0ull;  // an offset that wraps
        std::memcpy(img.data(), &h, sizeof(h));
        expect_malformed(plan_elf(img, kRam64M), "program headers run past");
    }
}

TEST(PlanElf, RefusesEachBadSegment) {
    Elf64Builder b;
    b.ph[0].p_filesz = 1 << 20;  // more file than there is
    expect_malformed(plan_elf(b.build(), kRam64M), "runs past the end");
    b = Elf64Builder();
    b.ph[0].p_offset = ~0ull - 4;
    expect_malformed(plan_elf(b.build(), kRam64M), "runs past the end");
    b = Elf64Builder();
    b.ph[0].p_memsz = 8;  // filesz 64 > memsz 8
    expect_malformed(plan_elf(b.build(), kRam64M), "p_filesz");
    b = Elf64Builder(0x100000, 64, 1ull << 40);  // absurd BSS
    expect_malformed(plan_elf(b.build(), kRam64M), "not inside guest RAM");
    b = Elf64Builder(~0ull - 0x1000, 64, 0x10000);  // wraps
    expect_malformed(plan_elf(b.build(), kRam64M), "wraps");
    b = Elf64Builder(0x8000);  // in the VMM's boot area
    expect_malformed(plan_elf(b.build(), kRam64M), "boot area");
    b = Elf64Builder(63ull << 20, 64, 2 << 20);  // runs off the end of RAM
    expect_malformed(plan_elf(b.build(), kRam64M), "not inside guest RAM");
    b = Elf64Builder(0x100000, 64, 0x1000);
    b.add_segment(0x100800, 64, 0, PF_R);  // overlaps the first
    expect_malformed(plan_elf(b.build(), kRam64M), "overlap");
    b = Elf64Builder();
    b.eh.e_entry = 0x500000;  // in no segment
    expect_malformed(plan_elf(b.build(), kRam64M), "entry 0x500000");
    b = Elf64Builder();
    b.ph[0].p_flags = PF_R;  // entry in a segment that is not executable
    expect_malformed(plan_elf(b.build(), kRam64M), "executable segment");
    b = Elf64Builder();
    b.ph[0].p_type = PT_NULL;
    expect_malformed(plan_elf(b.build(), kRam64M), "no loadable segment");
}

TEST(PlanElf, SegmentsAcrossTwoRamRangesAreRefusedButEachRangeWorks) {
    const std::vector<RamRange> split{{0, 2 << 20}, {2 << 20, 2 << 20}};
    expect_malformed(plan_elf(Elf64Builder((2 << 20) - 32, 64).build(), split),
                     "not inside guest RAM");
    EXPECT_TRUE(plan_elf(Elf64Builder((2 << 20) + 32, 64).build(), split));
}

TEST(PlanElf, Elf32IsProtectedModeAndStaysBelow4GiB) {
    Elf32_Ehdr eh{};
    init_elf_header(eh, ELFCLASS32, EM_386, 0x100004);
    eh.e_phoff = sizeof(eh);
    eh.e_phnum = 1;
    Elf32_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_flags = PF_R | PF_X;
    ph.p_offset = sizeof(eh) + sizeof(ph);
    ph.p_paddr = ph.p_vaddr = 0x100000;
    ph.p_filesz = ph.p_memsz = 16;
    Bytes image(sizeof(eh) + sizeof(ph) + 16, 0xf4);
    std::memcpy(image.data(), &eh, sizeof(eh));
    std::memcpy(image.data() + sizeof(eh), &ph, sizeof(ph));
    auto plan = plan_elf(image, kRam64M);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->format, "elf32");
    EXPECT_EQ(plan->entry.mode, BootMode::kProtected32);
    EXPECT_EQ(plan->entry.rip, 0x100004u);

    ph.p_paddr = 0xfffff000;
    ph.p_memsz = 0x2000;
    std::memcpy(image.data() + sizeof(eh), &ph, sizeof(ph));
    const std::vector<RamRange> big{{0, 3ull << 30}, {4ull << 30, 1ull << 30}};
    expect_malformed(plan_elf(image, big), "above 4 GiB");
    eh.e_machine = EM_X86_64;
    std::memcpy(image.data(), &eh, sizeof(eh));
    expect_malformed(plan_elf(image, kRam64M), "is not i386");
}

TEST(PlanFlat, RealModeAtTheLoadAddress) {
    Bytes image(300, 0xf4);
    auto plan = plan_flat(image, kRam64M);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->entry.mode, BootMode::kReal16);
    EXPECT_EQ(plan->entry.rip, kDefaultFlatLoadAddr);
    EXPECT_EQ(plan->pieces.at(0).gpa, kDefaultFlatLoadAddr);
    auto at7c00 = plan_flat(image, kRam64M, 0x7c00);
    ASSERT_TRUE(at7c00);
    EXPECT_EQ(at7c00->entry.rip, 0x7c00u);

    expect_malformed(plan_flat(Bytes{}, kRam64M), "empty");
    auto high = plan_flat(image, kRam64M, 0x100000);
    ASSERT_FALSE(high);
    EXPECT_EQ(high.error().code(), Errc::kInvalidArgument);
    const std::vector<RamRange> tiny{{0, 0x10000}};
    expect_malformed(plan_flat(image, tiny, 0xff00), "not inside guest RAM");
}

// ---- Linux ----

TEST(PlanLinux, BzImage64PlacesKernelZeroPageCmdlineAndInitrd) {
    Bytes bz = make_bzimage(0x20f, Bytes(16, 0));
    Bytes initrd(5000, 0x5a);
    auto plan = plan_linux_bzimage(bz, {"console=ttyS0 quiet", initrd}, kRam64M);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->format, "linux-bzimage");
    EXPECT_EQ(plan->entry.mode, BootMode::kLong64);
    EXPECT_TRUE(plan->entry.linux_selectors);
    EXPECT_EQ(plan->entry.rip, 0x1000200u);
    EXPECT_EQ(plan->entry.rsi, kLinuxBootDataAddr);
    const std::vector<MemoryMapEntry> map{
        {0, 0x9fc00, MemoryMapEntry::kUsable},
        {0x9fc00, 0x60400, MemoryMapEntry::kReserved},
        {0x100000, (64ull << 20) - 0x100000, MemoryMapEntry::kUsable}};
    EXPECT_EQ(plan->memory_map, map);
    const LoadPlan::Piece *zero = nullptr, *rd = nullptr, *kernel = nullptr;
    for (const auto &p : plan->pieces) {
        if (p.what.find("zero page") != std::string::npos) zero = &p;
        if (p.what == "initrd") rd = &p;
        if (p.what == "kernel") kernel = &p;
    }
    ASSERT_TRUE(zero && rd && kernel);
    EXPECT_EQ(kernel->gpa, 0x1000000u);
    EXPECT_EQ(kernel->memsz, 0x100000u);  // init_size
    EXPECT_EQ(rd->gpa % 4096, 0u);
    EXPECT_LE(rd->gpa + rd->memsz, 64ull << 20);
    auto bp = zero->bytes;
    auto u32 = [&](std::size_t off) {
        std::uint32_t v;
        std::memcpy(&v, bp.data() + off, 4);
        return v;
    };
    EXPECT_EQ(bp[0x210], 0xff);  // type_of_loader
    EXPECT_EQ(std::memcmp(bp.data() + 0x202, "HdrS", 4), 0);
    EXPECT_EQ(u32(0x218), rd->gpa);        // ramdisk_image
    EXPECT_EQ(u32(0x21c), initrd.size());  // ramdisk_size
    EXPECT_EQ(bp[0x1e8], 3);               // e820_entries
    const std::uint32_t cmd = u32(0x228) - static_cast<std::uint32_t>(kLinuxBootDataAddr);
    EXPECT_EQ(std::string(reinterpret_cast<const char *>(bp.data() + cmd)), "console=ttyS0 quiet");
}

TEST(PlanLinux, RefusesBadBzImages) {
    Bytes good = make_bzimage(0x20f, Bytes(16, 0));
    expect_malformed(plan_linux_bzimage(Bytes(good.begin(), good.begin() + 0x200), {}, kRam64M),
                     "too short");
    // Cut inside its setup sectors.
    expect_malformed(plan_linux_bzimage(Bytes(good.begin(), good.begin() + 0x240), {}, kRam64M),
                     "setup sectors leave no kernel");
    Bytes b = good;
    std::memcpy(b.data() + 0x202, "HdrX", 4);
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "HdrS");
    b = good;
    put<std::uint16_t>(b, 0x1fe, 0x55aa);
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "0xaa55");
    // The 64-bit entry came with protocol 2.12, and only a kernel with XLF_KERNEL_64 has it.
    expect_malformed(plan_linux_bzimage(make_bzimage(0x206, Bytes(16, 0)), {}, kRam64M),
                     "no 64-bit entry");
    expect_malformed(plan_linux_bzimage(make_bzimage(0x20b, Bytes(16, 0)), {}, kRam64M),
                     "no 64-bit entry");
    b = good;
    put<std::uint16_t>(b, 0x236, 0x2);  // XLF_CAN_BE_LOADED_ABOVE_4G without XLF_KERNEL_64
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "no 64-bit entry");
    b = good;
    b[0x211] = 0;  // a zImage
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "zImage");
    b = good;
    b[0x201] = 0x10;  // a header too short for protocol 2.15's fields
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "length");
    b = good;
    b[0x201] = 0xf0;  // the jump's offset is signed: a header ending before it starts
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "length");
    b = good;
    put<std::uint32_t>(b, 0x24c, 1 << 20);  // a stated payload past the end
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "payload");
    b = good;
    b[0x1f1] = 200;  // setup sectors past the end of the file
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "setup sectors");
    b = good;
    b[0x1f1] = 64;  // 65 sectors: real-mode code beyond the protocol's 32 KiB
    b.resize(80 << 10, 0xcc);
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "at most 0x8000");
    b = good;
    put<std::uint32_t>(b, 0x1f4, 4096 / 16 + 1);  // syssize: one paragraph more than the file
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "truncated");
    b = good;
    put<std::uint32_t>(b, 0x230, 0x3000);  // alignment not a power of two
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "power of two");
    b = good;
    put<std::uint32_t>(b, 0x230, 0);  // nor is 0
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "power of two");

    auto too_long = plan_linux_bzimage(good, {std::string(3000, 'x'), {}}, kRam64M);
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error().code(), Errc::kInvalidArgument);
    EXPECT_NE(too_long.error().message().find("at most 2047"), std::string::npos);
    auto nul = plan_linux_bzimage(good, {std::string("a\0b", 3), {}}, kRam64M);
    ASSERT_FALSE(nul);
    EXPECT_EQ(nul.error().code(), Errc::kInvalidArgument);
    Bytes huge(60 << 20, 0);
    auto big_initrd = plan_linux_bzimage(good, {"", huge}, kRam64M);
    ASSERT_FALSE(big_initrd);
    EXPECT_NE(big_initrd.error().message().find("initrd"), std::string::npos);
    // Not enough RAM for the kernel anywhere.
    const std::vector<RamRange> small{{0, 0x180000}};
    auto no_room = plan_linux_bzimage(good, {}, small);
    ASSERT_FALSE(no_room);
    EXPECT_NE(no_room.error().message().find("needs"), std::string::npos);
}

// An image whose payload fields are zero (a boot-protocol image that is no compressed Linux,
// as GRUB and QEMU load them): the boot protocol loads its protected-mode code as it is; PVH,
// which decompresses the payload on the host, refuses it and says why.
TEST(PlanLinux, BzImageWithoutPayloadBootsByTheProtocolNotByPvh) {
    Bytes bz = make_bzimage(0x20c, {});
    auto h = parse_bzimage(bz);
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_TRUE(h->payload.empty());
    EXPECT_EQ(h->protected_mode.size(), 4096u);
    auto plan = plan_linux_bzimage(bz, {"console=ttyS0", {}}, kRam64M);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->entry.rip, 0x1000200u);
    EXPECT_EQ(plan->pieces.front().what, "kernel");
    EXPECT_TRUE(std::equal(plan->pieces.front().bytes.begin(), plan->pieces.front().bytes.end(),
                           bz.begin() + 1024, bz.end()));
    expect_malformed(plan_linux_pvh(bz, {}, kRam64M), "no payload to decompress");
    expect_malformed(plan_linux_pvh(bz, {}, kRam64M), "payload_length is 0");
    // A stated offset without a length is no payload either.
    put<std::uint32_t>(bz, 0x248, 0x100);
    EXPECT_TRUE(plan_linux_bzimage(bz, {}, kRam64M));
    expect_malformed(plan_linux_pvh(bz, {}, kRam64M), "payload_length is 0");
    // Before protocol 2.08 there are no payload fields: whatever lies there is not read.
    Bytes old = make_bzimage(0x206, Bytes(16, 0x1f));
    expect_malformed(plan_linux_pvh(old, {}, kRam64M), "boot protocol older than 2.08");
}

// Fields a header's version lacks take the protocol's values for older kernels, whatever bytes
// lie where later versions put them.
TEST(PlanLinux, OlderHeadersGetTheProtocolsDefaults) {
    Bytes bz = make_bzimage(0x205, Bytes(16, 0));  // sets cmdline_size 2047, xloadflags 1, ...
    bz[0x201] = 0x35 - 2;                          // the header ends after relocatable_kernel
    auto h = parse_bzimage(bz);
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_EQ(h->cmdline_size, 255u);           // 2.06 added cmdline_size
    EXPECT_EQ(h->xloadflags, 0u);               // 2.12 added xloadflags
    EXPECT_EQ(h->pref_address, 0x100000u);      // 2.10 added pref_address ...
    EXPECT_EQ(h->init_size, 0u);                // ... and init_size
    EXPECT_TRUE(h->payload.empty());            // 2.08 added the payload fields
    EXPECT_TRUE(h->relocatable);                // 2.05 has relocatable_kernel ...
    EXPECT_EQ(h->kernel_alignment, 0x200000u);  // ... and kernel_alignment
    put<std::uint16_t>(bz, 0x206, 0x202);
    h = parse_bzimage(bz);
    ASSERT_TRUE(h) << h.error().message();
    EXPECT_FALSE(h->relocatable);
    EXPECT_EQ(h->initrd_addr_max, 0x37ffffffu);  // before 2.03
    // A 2.08 header must reach past its payload fields.
    put<std::uint16_t>(bz, 0x206, 0x208);
    expect_malformed(plan_linux_pvh(bz, {}, kRam64M), "needs 0x250");
}

// A file shorter than the header its jump claims: the header is not taken from past the end
// (a span past a buffer aborts with _GLIBCXX_ASSERTIONS, as the asan preset builds).
TEST(PlanLinux, HeaderLongerThanTheFileIsRefused) {
    Bytes good = make_bzimage(0x20f, Bytes(16, 0));
    Bytes cut(good.begin(), good.begin() + 0x264);  // the jump says the header ends at 0x26c
    auto h = parse_bzimage(cut);
    ASSERT_FALSE(h);
    EXPECT_NE(h.error().message().find("setup sectors"), std::string::npos) << h.error().message();
    expect_malformed(plan_linux_bzimage(cut, {}, kRam64M), "setup sectors");
}

// A 2 KiB bzImage whose payload claims 1 GiB is refused by the guest's 64 MiB of RAM before
// anything is allocated, and with RAM enough it costs only what it really decodes to.
TEST(PlanLinux, PvhPayloadClaimingMoreThanGuestRamIsRefusedUnallocated) {
    Bytes bz = make_bzimage(0x20f, claiming_1gib(gzip(sample(4096))));
    PeakGrowth peak;
    auto plan = plan_linux_pvh(bz, {}, kRam64M);
    ASSERT_FALSE(plan);
    EXPECT_EQ(plan.error().code(), Errc::kMalformedImage);
    EXPECT_NE(plan.error().message().find("0x40000000"), std::string::npos)
        << plan.error().message();
    EXPECT_NE(plan.error().message().find("0x4000000 bytes of guest RAM"), std::string::npos)
        << plan.error().message();
    const std::vector<RamRange> big{{0, 4ull << 30}};  // the 1 GiB default limit applies
    plan = plan_linux_pvh(bz, {}, big);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message().find("0x1000 bytes decoded"), std::string::npos)
        << plan.error().message();
    EXPECT_LT(peak.kib(), 32u << 10) << "KiB above the start";
}

TEST(PlanLinux, RelocatableKernelMovesWhenPrefAddressIsNotRam) {
    Bytes bz = make_bzimage(0x20f, Bytes(16, 0));
    const std::vector<RamRange> ram{{0, 12 << 20}};  // no RAM at 16 MiB
    auto plan = plan_linux_bzimage(bz, {}, ram);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->entry.rip, 0x200000u + 0x200);  // first 2 MiB-aligned place above 1 MiB
}

TEST(PlanLinux, PvhNeedsThePvhNoteAndRefusesUnknownPayloads) {
    // A bzImage whose payload is no known compression.
    Bytes bz = make_bzimage(0x20f, Bytes(16, 0x42));
    expect_malformed(plan_linux_pvh(bz, {}, kRam64M), "unknown compression");
    // An ELF64 without the note.
    expect_malformed(plan_linux_pvh(Elf64Builder(0x1000000).build(), {}, kRam64M),
                     "XEN_ELFNOTE_PHYS32_ENTRY");
}

// ---- decompression ----

TEST(Decompress, EveryKernelFormatRoundTrips) {
    const Bytes data = sample((9u << 20) + 12345);  // two LZ4 legacy blocks
    struct Case {
        const char *name;
        Compression kind;
        Bytes packed;
    } cases[] = {{"lz4", Compression::kLz4, lz4_legacy(data)},
                 {"xz", Compression::kXz, xz(data, false)},
                 {"lzma", Compression::kLzma, xz(data, true)},
                 {"zstd", Compression::kZstd, zstd(data)},
                 {"gzip", Compression::kGzip, gzip(data)}};
    for (const Case &c : cases) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(detect_compression(c.packed), c.kind);
        auto out = decompress_kernel(c.packed);
        ASSERT_TRUE(out) << out.error().message();
        EXPECT_TRUE(*out == data);
        // The stated size must match; a corrupt stream and a too-small limit are refused.
        Bytes wrong = c.packed;
        put<std::uint32_t>(wrong, wrong.size() - 4, static_cast<std::uint32_t>(data.size() - 1));
        EXPECT_FALSE(decompress_kernel(wrong));
        Bytes corrupt = c.packed;
        for (std::size_t i = 16; i < 64 && i < corrupt.size() - 4; ++i) corrupt[i] ^= 0xa5;
        // Formats without a checksum may decode garbage; none may return the original.
        auto garbled = decompress_kernel(corrupt);
        EXPECT_TRUE(!garbled || *garbled != data);
        EXPECT_FALSE(decompress_kernel(c.packed, data.size() - 1));
        Bytes cut(c.packed.begin(), c.packed.begin() + static_cast<long>(c.packed.size() / 2));
        EXPECT_FALSE(decompress_kernel(cut));
    }
}

// Every format: a payload that states 1 GiB but decodes to 4 KiB is refused, and memory
// follows what it decodes to, not what it states (zero-filling the stated size peaked ~1 GiB).
TEST(Decompress, MemoryFollowsTheRealOutputNotTheStatedSize) {
    const Bytes data = sample(4096);
    const Bytes packed[] = {lz4_legacy(data), xz(data, false), xz(data, true), zstd(data),
                            gzip(data)};
    PeakGrowth peak;
    for (const Bytes &p : packed) {
        auto out = decompress_kernel(claiming_1gib(p), 1u << 30);
        ASSERT_FALSE(out) << compression_name(detect_compression(p));
        EXPECT_EQ(out.error().code(), Errc::kMalformedImage);
        // gzip's own trailer states the size too: zlib finds the mismatch first.
        EXPECT_NE(out.error().message().find("0x1000 bytes decoded"), std::string::npos)
            << out.error().message();
    }
    // The broken decoder peaked at ~1 GiB; sanitizer shadow memory adds ~15 MiB under TSan.
    EXPECT_LT(peak.kib(), 128u << 10) << "KiB above the start";
}

// Payloads that decode to far more than their own size (here 32 MiB of zeros) grow the output
// as they go and still come out whole.
TEST(Decompress, HighlyCompressedPayloadsGrowTheirOutput) {
    const Bytes data(32u << 20, 0);
    const Bytes packed[] = {lz4_legacy(data), xz(data, false), xz(data, true), zstd(data),
                            gzip(data)};
    for (const Bytes &p : packed) {
        SCOPED_TRACE(compression_name(detect_compression(p)));
        ASSERT_LT(p.size() * 16, data.size());
        auto out = decompress_kernel(p);
        ASSERT_TRUE(out) << out.error().message();
        EXPECT_TRUE(*out == data);
        // Stating one byte less is refused as the output passes it.
        Bytes low = p;
        put<std::uint32_t>(low, low.size() - 4, static_cast<std::uint32_t>(data.size() - 1));
        auto refused = decompress_kernel(low);
        ASSERT_FALSE(refused);
    }
}

TEST(Decompress, UnsupportedAndUnknownFormatsAreNamed) {
    Bytes bz2{'B', 'Z', 'h', '9', 1, 2, 3, 4, 5, 6, 7, 8};
    auto r = decompress_kernel(bz2);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("bzip2"), std::string::npos);
    r = decompress_kernel(Bytes(32, 0x11));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("unknown compression"), std::string::npos);
    r = decompress_kernel(Bytes{0x02, 0x21, 0x4c});
    ASSERT_FALSE(r);
    // LZ4 legacy: a block size past the end of the payload.
    Bytes lz4 = lz4_legacy(sample(1000));
    put<std::uint32_t>(lz4, 4, 0x7fffffff);
    r = decompress_kernel(lz4);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("does not fit"), std::string::npos);
}

// ---- image files ----

class ImageFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::path(::testing::TempDir()) /
               ("image_files_" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::string path(const char *name) const { return (dir_ / name).string(); }
    // A sparse file: its size costs no disk and no memory unless something reads it.
    std::string sparse(const char *name, std::uint64_t size) const {
        const std::string p = path(name);
        std::ofstream{p};
        EXPECT_EQ(::truncate(p.c_str(), static_cast<off_t>(size)), 0);
        return p;
    }
    std::filesystem::path dir_;
};

TEST_F(ImageFiles, MapsARegularFileReadOnly) {
    const std::string p = path("image.bin");
    std::ofstream(p, std::ios::binary) << "guest image bytes";
    auto f = ImageFile::open(p, 64 << 20);
    ASSERT_TRUE(f) << f.error().message();
    EXPECT_EQ(f->path(), p);
    const auto b = f->bytes();
    EXPECT_EQ(std::string(b.begin(), b.end()), "guest image bytes");
    ImageFile moved = std::move(*f);
    EXPECT_TRUE(f->bytes().empty());
    EXPECT_EQ(moved.bytes().data(), b.data());
    auto empty = ImageFile::open(sparse("empty.bin", 0), 0);
    ASSERT_TRUE(empty) << empty.error().message();
    EXPECT_TRUE(empty->bytes().empty());
    auto copy = read_file(p);
    ASSERT_TRUE(copy);
    EXPECT_EQ(std::string(copy->begin(), copy->end()), "guest image bytes");
}

// A file larger than the guest's RAM is refused from its size alone, naming the file and both
// sizes; read_file (1 GiB by default) says the same instead of failing to allocate 1 TiB.
TEST_F(ImageFiles, LargerThanTheBoundIsRefusedUnread) {
    const std::string big = sparse("huge.img", 1ull << 40);
    PeakGrowth peak;
    auto f = ImageFile::open(big, 64 << 20);
    ASSERT_FALSE(f);
    EXPECT_EQ(f.error().code(), Errc::kResourceExhausted);
    for (const std::string &want : {big, std::string("1099511627776 bytes (1 TiB)"),
                                    std::string("67108864 bytes (64 MiB)")}) {
        EXPECT_NE(f.error().message().find(want), std::string::npos) << f.error().message();
    }
    auto whole = read_file(big);
    ASSERT_FALSE(whole);
    EXPECT_EQ(whole.error().code(), Errc::kResourceExhausted);
    EXPECT_NE(whole.error().message().find("1073741824 bytes (1 GiB)"), std::string::npos)
        << whole.error().message();
    const std::string over = sparse("over.img", (64 << 20) + 1);
    EXPECT_FALSE(ImageFile::open(over, 64 << 20));
    EXPECT_TRUE(ImageFile::open(over, (64 << 20) + 1));
    EXPECT_LT(peak.kib(), 16u << 10) << "KiB above the start";
}

// A FIFO (which would block an open or a read forever), a directory and a device are refused
// with what they are.
TEST_F(ImageFiles, OnlyRegularFilesAreImages) {
    const std::string fifo = path("fifo");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::pair<std::string, const char *> cases[] = {{fifo, "is a FIFO"},
                                                          {dir_.string(), "is a directory"},
                                                          {"/dev/zero", "is a character device"}};
    for (const auto &[p, what] : cases) {
        auto f = ImageFile::open(p, 1 << 20);
        ASSERT_FALSE(f) << p;
        EXPECT_EQ(f.error().code(), Errc::kInvalidArgument);
        EXPECT_NE(f.error().message().find(p + " " + what), std::string::npos)
            << f.error().message();
        EXPECT_FALSE(read_file(p)) << p;
    }
    auto missing = ImageFile::open(path("missing"), 1 << 20);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find(path("missing")), std::string::npos);
}

}  // namespace
}  // namespace guestvm
