// Well-formed guest images built in memory — ELF64, bzImage-shaped files and compressed kernel
// payloads — for the loader unit tests and the fuzzers' seed corpus. Tests break one thing at a
// time; the fuzzers start from them.
#pragma once

#include <elf.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "guestvm/loader.hpp"

namespace guestvm::test_images {

using Bytes = std::vector<std::uint8_t>;

inline const std::vector<RamRange> kRam64M{{0, 64ull << 20}};

template <typename T>
inline void put(Bytes &b, std::size_t off, T v) {
    if (b.size() < off + sizeof(T)) b.resize(off + sizeof(T));
    std::memcpy(b.data() + off, &v, sizeof(T));
}

/// An executable's ELF header of class `cls` for `machine`, little-endian, entry `entry`.
template <typename Ehdr, typename Phdr = std::conditional_t<sizeof(Ehdr) == sizeof(Elf64_Ehdr),
                                                            Elf64_Phdr, Elf32_Phdr>>
inline void init_elf_header(Ehdr &eh, unsigned char cls, std::uint16_t machine,
                            std::uint64_t entry) {
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = cls;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = machine;
    eh.e_version = EV_CURRENT;
    eh.e_entry = static_cast<decltype(eh.e_entry)>(entry);
    eh.e_phentsize = sizeof(Phdr);
}

// A minimal, valid ELF64 x86-64 executable: one RX segment of `code` at `paddr` (vaddr ==
// paddr) with `bss` extra bytes, entry at its start. Tests then break one thing at a time.
struct Elf64Builder {
    Elf64_Ehdr eh{};
    std::vector<Elf64_Phdr> ph;
    Bytes payload;

    explicit Elf64Builder(std::uint64_t paddr = 0x100000, std::size_t code = 64,
                          std::size_t bss = 0) {
        init_elf_header(eh, ELFCLASS64, EM_X86_64, paddr);
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

// A bzImage-shaped file: boot sector, setup header (protocol `version`), one setup sector,
// then `kernel` bytes of protected-mode code whose first `payload.size()` bytes are the payload.
inline Bytes make_bzimage(std::uint16_t version, const Bytes &payload, std::size_t kernel = 4096) {
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

/// An encoder that fails to set up is a bug in these helpers.
template <typename A, typename B>
inline void check(A got, B want) {
    if (got != static_cast<A>(want)) std::abort();
}

inline Bytes with_size(Bytes stream, std::size_t size) {
    put<std::uint32_t>(stream, stream.size(), static_cast<std::uint32_t>(size));
    return stream;
}

inline Bytes sample(std::size_t n) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 7) ^ (i >> 9));
    return b;
}

inline Bytes lz4_legacy(const Bytes &in) {
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

inline Bytes xz(const Bytes &in, bool alone) {
    Bytes out(in.size() + 4096);
    std::size_t pos = 0;
    if (alone) {
        lzma_options_lzma opt;
        lzma_lzma_preset(&opt, 6);
        lzma_stream s = LZMA_STREAM_INIT;
        check(lzma_alone_encoder(&s, &opt), LZMA_OK);
        s.next_in = in.data();
        s.avail_in = in.size();
        s.next_out = out.data();
        s.avail_out = out.size();
        check(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
        pos = s.total_out;
        lzma_end(&s);
    } else {
        check(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, nullptr, in.data(), in.size(),
                                      out.data(), &pos, out.size()),
              LZMA_OK);
    }
    out.resize(pos);
    return with_size(out, in.size());
}

inline Bytes zstd(const Bytes &in) {
    Bytes out(ZSTD_compressBound(in.size()));
    out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
    return with_size(out, in.size());
}

inline Bytes gzip(const Bytes &in) {
    z_stream s{};
    check(deflateInit2(&s, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    Bytes out(deflateBound(&s, in.size()) + 64);
    s.next_in = const_cast<Bytef *>(in.data());
    s.avail_in = static_cast<uInt>(in.size());
    s.next_out = out.data();
    s.avail_out = static_cast<uInt>(out.size());
    check(deflate(&s, Z_FINISH), Z_STREAM_END);
    out.resize(s.total_out);
    deflateEnd(&s);
    return out;  // gzip's own trailer ends with the size
}

}  // namespace guestvm::test_images
