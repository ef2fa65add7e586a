// The planners, without KVM: what they accept, where they put it, and every malformed case
// refused with kMalformedImage (or kInvalidArgument for bad options) naming the problem.
#include "guestvm/loader.hpp"

#include <elf.h>
#include <gtest/gtest.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <string>
#include <vector>

namespace guestvm {
namespace {

using Bytes = std::vector<std::uint8_t>;

const std::vector<RamRange> kRam64M{{0, 64ull << 20}};

template <typename T>
void put(Bytes &b, std::size_t off, T v) {
    if (b.size() < off + sizeof(T)) b.resize(off + sizeof(T));
    std::memcpy(b.data() + off, &v, sizeof(T));
}

// A minimal, valid ELF64 x86-64 executable: one RX segment of `code` at `paddr` (vaddr ==
// paddr) with `bss` extra bytes, entry at its start. Tests then break one thing at a time.
struct Elf64Builder {
    Elf64_Ehdr eh{};
    std::vector<Elf64_Phdr> ph;
    Bytes payload;

    explicit Elf64Builder(std::uint64_t paddr = 0x100000, std::size_t code = 64,
                          std::size_t bss = 0) {
        std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        eh.e_type = ET_EXEC;
        eh.e_machine = EM_X86_64;
        eh.e_version = EV_CURRENT;
        eh.e_entry = paddr;
        eh.e_phentsize = sizeof(Elf64_Phdr);
        payload.assign(code, 0x90);
        add_segment(paddr, code, bss, PF_R | PF_X);
    }
    void add_segment(std::uint64_t paddr, std::size_t filesz, std::size_t bss,
                     std::uint32_t flags) {
        Elf64_Phdr p{};
        p.p_type = PT_LOAD;
        p.p_flags = flags;
        p.p_paddr = p.p_vaddr = paddr;
        p.p_filesz = filesz;
        p.p_memsz = filesz + bss;
        p.p_align = 0x1000;
        ph.push_back(p);
    }
    Bytes build() const {
        Elf64_Ehdr h = eh;
        h.e_phoff = sizeof(Elf64_Ehdr);
        h.e_phnum = static_cast<std::uint16_t>(ph.size());
        const std::size_t data_at = sizeof(h) + ph.size() * sizeof(Elf64_Phdr);
        Bytes out(data_at);
        std::memcpy(out.data(), &h, sizeof(h));
        for (std::size_t i = 0; i < ph.size(); ++i) {
            Elf64_Phdr p = ph[i];
            if (p.p_offset == 0) p.p_offset = data_at;  // every segment shares the payload
            std::memcpy(out.data() + sizeof(h) + i * sizeof(p), &p, sizeof(p));
        }
        out.insert(out.end(), payload.begin(), payload.end());
        return out;
    }
};

void expect_malformed(const Result<LoadPlan> &plan, const std::string &needle) {
    ASSERT_FALSE(plan) << "accepted; wanted an error containing \"" << needle << "\"";
    EXPECT_EQ(plan.error().code(), Errc::kMalformedImage) << plan.error().message();
    EXPECT_NE(plan.error().message().find(needle), std::string::npos) << plan.error().message();
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
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS32;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_386;
    eh.e_entry = 0x100004;
    eh.e_phoff = sizeof(eh);
    eh.e_phentsize = sizeof(Elf32_Phdr);
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

// A bzImage-shaped file: boot sector, setup header (protocol `version`), one setup sector,
// then `kernel` bytes of protected-mode code whose first `payload.size()` bytes are the payload.
Bytes make_bzimage(std::uint16_t version, const Bytes &payload, std::size_t kernel = 4096) {
    Bytes b(1024, 0);
    b[0x1f1] = 1;  // setup_sects
    put<std::uint16_t>(b, 0x1fe, 0xaa55);
    b[0x200] = 0xeb;
    b[0x201] = 0x6c - 2;  // header up to 0x26c
    std::memcpy(b.data() + 0x202, "HdrS", 4);
    put<std::uint16_t>(b, 0x206, version);
    b[0x211] = 0x01;  // LOADED_HIGH
    put<std::uint32_t>(b, 0x22c, 0x7fffffff);
    put<std::uint32_t>(b, 0x230, 0x200000);
    b[0x234] = 1;  // relocatable
    put<std::uint16_t>(b, 0x236, 0x1);
    put<std::uint32_t>(b, 0x238, 2047);
    put<std::uint32_t>(b, 0x248, 0);
    put<std::uint32_t>(b, 0x24c, static_cast<std::uint32_t>(payload.size()));
    put<std::uint64_t>(b, 0x258, 0x1000000);
    put<std::uint32_t>(b, 0x260, 0x100000);
    b.resize(1024);
    Bytes body(std::max(kernel, payload.size()), 0xcc);
    std::copy(payload.begin(), payload.end(), body.begin());
    b.insert(b.end(), body.begin(), body.end());
    return b;
}

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
    expect_malformed(plan_linux_bzimage(Bytes(good.begin(), good.begin() + 0x240), {}, kRam64M),
                     "too short");
    Bytes b = good;
    std::memcpy(b.data() + 0x202, "HdrX", 4);
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "HdrS");
    expect_malformed(plan_linux_bzimage(make_bzimage(0x206, Bytes(16, 0)), {}, kRam64M),
                     "older than 2.08");
    expect_malformed(plan_linux_bzimage(make_bzimage(0x20b, Bytes(16, 0)), {}, kRam64M),
                     "no 64-bit entry");
    b = good;
    b[0x211] = 0;  // a zImage
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "zImage");
    b = good;
    b[0x201] = 0x10;  // a header too short for protocol 2.15's fields
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "length");
    b = good;
    put<std::uint32_t>(b, 0x24c, 1 << 20);  // payload past the end
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "payload");
    b = good;
    b[0x1f1] = 200;  // setup sectors past the end of the file
    expect_malformed(plan_linux_bzimage(b, {}, kRam64M), "setup sectors");
    b = good;
    put<std::uint32_t>(b, 0x230, 0x3000);  // alignment not a power of two
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

Bytes with_size(Bytes stream, std::size_t size) {
    put<std::uint32_t>(stream, stream.size(), static_cast<std::uint32_t>(size));
    return stream;
}

Bytes sample(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 7) ^ (i >> 9));
    return b;
}

Bytes lz4_legacy(const Bytes &in) {
    Bytes out{0x02, 0x21, 0x4c, 0x18};
    constexpr std::size_t kBlock = 8u << 20;
    for (std::size_t at = 0; at < in.size(); at += kBlock) {
        const int n = static_cast<int>(std::min(kBlock, in.size() - at));
        Bytes block(static_cast<std::size_t>(LZ4_compressBound(n)));
        int c = LZ4_compress_default(reinterpret_cast<const char *>(in.data() + at),
                                     reinterpret_cast<char *>(block.data()), n,
                                     static_cast<int>(block.size()));
        put<std::uint32_t>(out, out.size(), static_cast<std::uint32_t>(c));
        out.insert(out.end(), block.begin(), block.begin() + c);
    }
    return with_size(out, in.size());
}

Bytes xz(const Bytes &in, bool alone) {
    Bytes out(in.size() + 4096);
    std::size_t pos = 0;
    if (alone) {
        lzma_options_lzma opt;
        lzma_lzma_preset(&opt, 6);
        lzma_stream s = LZMA_STREAM_INIT;
        EXPECT_EQ(lzma_alone_encoder(&s, &opt), LZMA_OK);
        s.next_in = in.data();
        s.avail_in = in.size();
        s.next_out = out.data();
        s.avail_out = out.size();
        EXPECT_EQ(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
        pos = s.total_out;
        lzma_end(&s);
    } else {
        EXPECT_EQ(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, nullptr, in.data(), in.size(),
                                          out.data(), &pos, out.size()),
                  LZMA_OK);
    }
    out.resize(pos);
    return with_size(out, in.size());
}

Bytes zstd(const Bytes &in) {
    Bytes out(ZSTD_compressBound(in.size()));
    out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
    return with_size(out, in.size());
}

Bytes gzip(const Bytes &in) {
    z_stream s{};
    EXPECT_EQ(deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    Bytes out(deflateBound(&s, in.size()) + 64);
    s.next_in = const_cast<Bytef *>(in.data());
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = out.data();
    s.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&s, Z_FINISH), Z_STREAM_END);
    out.resize(s.total_out);
    deflateEnd(&s);
    return out;  // gzip's own trailer ends with the size
}

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

}  // namespace
}  // namespace guestvm
