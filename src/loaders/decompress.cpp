// Kernel payload decompression on the host, with Debian's libraries.
#include <fmt/format.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "loaders/loader_util.hpp"

namespace guestvm {

namespace {

constexpr std::string_view kKind = "kernel payload";

bool starts_with(std::span<const std::uint8_t> data, std::initializer_list<std::uint8_t> magic) {
    return data.size() >= magic.size() && std::equal(magic.begin(), magic.end(), data.begin());
}

Status decode_lz4_legacy(std::span<const std::uint8_t> in, std::vector<std::uint8_t> &out) {
    constexpr std::uint32_t kMagic = 0x184c2102;
    constexpr std::uint64_t kBlock = 8u << 20;  // legacy blocks decode to at most 8 MiB
    std::uint64_t pos = 0, produced = 0;
    while (pos < in.size()) {
        auto word = loaders::read_le<std::uint32_t>(in, pos);
        if (!word) return loaders::malformed(kKind, "LZ4: truncated block header");
        pos += 4;
        if (*word == kMagic) continue;  // a new stream may follow the last
        std::uint64_t csize = *word;
        if (csize == 0 || csize > in.size() - pos ||
            csize > static_cast<std::uint64_t>(LZ4_compressBound(static_cast<int>(kBlock)))) {
            return loaders::malformed(kKind, fmt::format("LZ4: block of {:#x} bytes at {:#x} does "
                                                         "not fit the payload",
                                                         csize, pos - 4));
        }
        std::uint64_t room = std::min<std::uint64_t>(kBlock, out.size() - produced);
        int n = LZ4_decompress_safe(reinterpret_cast<const char *>(in.data() + pos),
                                    reinterpret_cast<char *>(out.data() + produced),
                                    static_cast<int>(csize), static_cast<int>(room));
        if (n < 0) {
            return loaders::malformed(
                kKind, fmt::format("LZ4: block at {:#x} is corrupt or larger than stated", pos));
        }
        produced += static_cast<std::uint64_t>(n);
        pos += csize;
    }
    if (produced != out.size()) {
        return loaders::malformed(
            kKind, fmt::format("LZ4: {:#x} bytes decoded, {:#x} stated", produced, out.size()));
    }
    return {};
}

Status decode_xz(std::span<const std::uint8_t> in, std::vector<std::uint8_t> &out, bool alone) {
    constexpr std::uint64_t kMemLimit = 256ull << 20;
    lzma_stream s = LZMA_STREAM_INIT;
    lzma_ret r = alone ? lzma_alone_decoder(&s, kMemLimit) : lzma_stream_decoder(&s, kMemLimit, 0);
    if (r != LZMA_OK) return make_error(Errc::kSystem, "liblzma: cannot create a decoder");
    s.next_in = in.data();
    s.avail_in = in.size();
    s.next_out = out.data();
    s.avail_out = out.size();
    r = lzma_code(&s, LZMA_FINISH);
    const std::uint64_t produced = s.total_out;
    lzma_end(&s);
    if (r != LZMA_STREAM_END || produced != out.size()) {
        return loaders::malformed(
            kKind, fmt::format("{}: corrupt or not the stated size (liblzma "
                               "{}, {:#x} of {:#x} bytes)",
                               alone ? "LZMA" : "XZ", static_cast<int>(r), produced, out.size()));
    }
    return {};
}

Status decode_zstd(std::span<const std::uint8_t> in, std::vector<std::uint8_t> &out) {
    std::size_t n = ZSTD_decompress(out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n) != 0 || n != out.size()) {
        return loaders::malformed(
            kKind, fmt::format("zstd: {}", ZSTD_isError(n) != 0 ? ZSTD_getErrorName(n)
                                                                : "not the stated size"));
    }
    return {};
}

Status decode_gzip(std::span<const std::uint8_t> in, std::vector<std::uint8_t> &out) {
    z_stream s{};
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) {
        return make_error(Errc::kSystem, "zlib: cannot create a decoder");
    }
    int r = Z_OK;
    std::uint64_t consumed = 0, produced = 0;
    // zlib counts in 32-bit units: feed and drain in chunks.
    constexpr std::uint64_t kChunk = 1u << 30;
    do {
        if (s.avail_in == 0 && consumed < in.size()) {
            s.next_in = const_cast<Bytef *>(in.data() + consumed);
            s.avail_in = static_cast<uInt>(std::min(kChunk, in.size() - consumed));
            consumed += s.avail_in;
        }
        if (s.avail_out == 0 && produced < out.size()) {
            s.next_out = out.data() + produced;
            s.avail_out = static_cast<uInt>(std::min(kChunk, out.size() - produced));
            produced += s.avail_out;
        }
        r = inflate(&s, Z_NO_FLUSH);
    } while (r == Z_OK && (s.avail_in != 0 || consumed < in.size()) &&
             (s.avail_out != 0 || produced < out.size()));
    const std::uint64_t total = produced - s.avail_out;
    inflateEnd(&s);
    if (r != Z_STREAM_END || total != out.size()) {
        return loaders::malformed(kKind, fmt::format("gzip: corrupt or not the stated size (zlib "
                                                     "{}, {:#x} of {:#x} bytes)",
                                                     r, total, out.size()));
    }
    return {};
}

}  // namespace

const char *compression_name(Compression c) noexcept {
    switch (c) {
        case Compression::kNone:
            return "none";
        case Compression::kGzip:
            return "gzip";
        case Compression::kXz:
            return "xz";
        case Compression::kLzma:
            return "lzma";
        case Compression::kZstd:
            return "zstd";
        case Compression::kLz4:
            return "lz4";
        case Compression::kBzip2:
            return "bzip2";
        case Compression::kLzo:
            return "lzo";
    }
    return "unknown";
}

Compression detect_compression(std::span<const std::uint8_t> d) noexcept {
    if (starts_with(d, {0x1f, 0x8b})) return Compression::kGzip;
    if (starts_with(d, {0xfd, '7', 'z', 'X', 'Z', 0x00})) return Compression::kXz;
    if (starts_with(d, {0x5d, 0x00, 0x00})) return Compression::kLzma;
    if (starts_with(d, {0x28, 0xb5, 0x2f, 0xfd})) return Compression::kZstd;
    if (starts_with(d, {0x02, 0x21, 0x4c, 0x18})) return Compression::kLz4;
    if (starts_with(d, {'B', 'Z', 'h'})) return Compression::kBzip2;
    if (starts_with(d, {0x89, 'L', 'Z', 'O'})) return Compression::kLzo;
    return Compression::kNone;
}

Result<std::vector<std::uint8_t>> decompress_kernel(std::span<const std::uint8_t> payload,
                                                    std::uint64_t max_output) {
    const Compression c = detect_compression(payload);
    if (c == Compression::kNone) {
        return loaders::malformed(kKind,
                                  "unknown compression (no gzip, xz, lzma, zstd or LZ4 "
                                  "magic)");
    }
    if (c == Compression::kBzip2 || c == Compression::kLzo) {
        return make_error(Errc::kMalformedImage,
                          fmt::format("kernel payload: {} compression is not supported; use a "
                                      "kernel built with gzip, xz, lzma, zstd or LZ4",
                                      compression_name(c)));
    }
    // The kernel build appends the uncompressed size (gzip's own trailer says the same).
    auto size =
        loaders::read_le<std::uint32_t>(payload, payload.size() < 4 ? 0 : payload.size() - 4);
    if (payload.size() < 8 || !size || *size == 0) {
        return loaders::malformed(kKind, "too short to hold a stream and its size");
    }
    if (*size > max_output) {
        return loaders::malformed(kKind, fmt::format("states {:#x} bytes uncompressed; the limit "
                                                     "is {:#x}",
                                                     *size, max_output));
    }
    std::vector<std::uint8_t> out(*size);
    auto stream = payload.first(payload.size() - 4);
    Status done;
    switch (c) {
        case Compression::kLz4:
            done = decode_lz4_legacy(stream.subspan(4), out);
            break;
        case Compression::kXz:
            done = decode_xz(stream, out, false);
            break;
        case Compression::kLzma:
            done = decode_xz(stream, out, true);
            break;
        case Compression::kZstd:
            done = decode_zstd(stream, out);
            break;
        case Compression::kGzip:
            done = decode_gzip(payload, out);
            break;
        default:
            break;
    }
    if (!done) return std::unexpected(std::move(done).error());
    return out;
}

}  // namespace guestvm
