// Kernel payload decompression on the host, with Debian's libraries.
#include <fmt/format.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "loaders/loader_util.hpp"

namespace guestvm {

namespace {

constexpr std::string_view kKind = "kernel payload";

bool starts_with(std::span<const std::uint8_t> data, std::initializer_list<std::uint8_t> magic) {
    return data.size() >= magic.size() && std::equal(magic.begin(), magic.end(), data.begin());
}

// A decoder's output. It is never sized from what the payload states: it starts at a size the
// payload's own length makes plausible and doubles as decoded data fills it, never past the
// stated size (itself checked against the caller's limit), so a small payload that claims a
// huge kernel costs no more memory than what it really decodes to.
class Output {
  public:
    Output(std::uint64_t stated, std::uint64_t payload_size) : stated_(stated) {
        // Kernels compress 3-6:1; a payload 16 times smaller than it claims to decode to grows
        // into its size as the data arrives.
        constexpr std::uint64_t kFloor = 1u << 20, kRatio = 16;
        const std::uint64_t guess =
            payload_size > stated / kRatio ? stated : std::max(kFloor, payload_size * kRatio);
        buf_.resize(static_cast<std::size_t>(std::min(stated, guess)));
    }

    /// Free space for at least `want` more bytes, or for as many as the stated size leaves
    /// (empty when it is reached).
    std::span<std::uint8_t> room(std::uint64_t want = 1) {
        want = std::min(want, stated_ - size_);
        if (buf_.size() - size_ < want) {
            const std::uint64_t grown = std::max<std::uint64_t>(buf_.size() * 2, size_ + want);
            buf_.resize(static_cast<std::size_t>(std::min(grown, stated_)));
        }
        return std::span(buf_).subspan(size_);
    }
    void add(std::uint64_t n) noexcept { size_ += n; }
    std::uint64_t size() const noexcept { return size_; }
    std::uint64_t stated() const noexcept { return stated_; }

    std::vector<std::uint8_t> take() && {
        buf_.resize(size_);
        return std::move(buf_);
    }

  private:
    std::uint64_t stated_;
    std::uint64_t size_ = 0;
    std::vector<std::uint8_t> buf_;
};

std::unexpected<Error> larger_than_stated(std::string_view format, const Output &out) {
    return loaders::malformed(kKind, fmt::format("{}: decodes to more than the {:#x} bytes stated",
                                                 format, out.stated()));
}

std::unexpected<Error> corrupt(std::string_view format, std::string_view why, const Output &out) {
    return loaders::malformed(
        kKind,
        fmt::format("{}: corrupt or truncated ({}; {:#x} bytes decoded)", format, why, out.size()));
}

Status decode_lz4_legacy(std::span<const std::uint8_t> in, Output &out) {
    constexpr std::uint32_t kMagic = 0x184c2102;
    constexpr std::uint64_t kBlock = 8u << 20;  // legacy blocks decode to at most 8 MiB
    std::uint64_t pos = 0;
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
        auto room = out.room(kBlock);
        int n = LZ4_decompress_safe(reinterpret_cast<const char *>(in.data() + pos),
                                    reinterpret_cast<char *>(room.data()), static_cast<int>(csize),
                                    static_cast<int>(std::min<std::uint64_t>(room.size(), kBlock)));
        if (n < 0) {
            return loaders::malformed(
                kKind, fmt::format("LZ4: block at {:#x} is corrupt or larger than stated", pos));
        }
        out.add(static_cast<std::uint64_t>(n));
        pos += csize;
    }
    return {};
}

Status decode_xz(std::span<const std::uint8_t> in, Output &out, bool alone) {
    constexpr std::uint64_t kMemLimit = 256ull << 20;
    const char *format = alone ? "LZMA" : "XZ";
    lzma_stream s = LZMA_STREAM_INIT;
    lzma_ret r = alone ? lzma_alone_decoder(&s, kMemLimit) : lzma_stream_decoder(&s, kMemLimit, 0);
    if (r != LZMA_OK) return make_error(Errc::kSystem, "liblzma: cannot create a decoder");
    s.next_in = in.data();
    s.avail_in = in.size();
    // liblzma returns LZMA_OK while it makes progress and LZMA_BUF_ERROR once it cannot: then
    // either the output is at the stated size or the input ran out.
    do {
        auto room = out.room();
        s.next_out = room.data();
        s.avail_out = room.size();
        r = lzma_code(&s, LZMA_FINISH);
        out.add(room.size() - s.avail_out);
        if (r == LZMA_BUF_ERROR && room.empty()) {
            lzma_end(&s);
            return larger_than_stated(format, out);
        }
    } while (r == LZMA_OK);
    lzma_end(&s);
    if (r != LZMA_STREAM_END)
        return corrupt(format, fmt::format("liblzma error {}", static_cast<int>(r)), out);
    return {};
}

Status decode_zstd(std::span<const std::uint8_t> in, Output &out) {
    const std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(),
                                                                   &ZSTD_freeDCtx);
    if (!ctx) return make_error(Errc::kSystem, "libzstd: cannot create a decoder");
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    for (;;) {
        auto room = out.room();
        ZSTD_outBuffer output{room.data(), room.size(), 0};
        const std::size_t consumed = input.pos;
        const std::size_t r = ZSTD_decompressStream(ctx.get(), &output, &input);
        out.add(output.pos);
        if (ZSTD_isError(r) != 0) {
            return loaders::malformed(kKind, fmt::format("zstd: {}", ZSTD_getErrorName(r)));
        }
        if (r == 0 && input.pos == input.size) return {};  // every frame decoded and flushed
        if (output.pos == 0 && input.pos == consumed) {    // no progress: out of room or input
            return room.empty() ? larger_than_stated("zstd", out)
                                : corrupt("zstd", "the input ends inside a frame", out);
        }
    }
}

Status decode_gzip(std::span<const std::uint8_t> in, Output &out) {
    z_stream s{};
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK) {
        return make_error(Errc::kSystem, "zlib: cannot create a decoder");
    }
    // zlib counts in 32-bit units: feed and drain in chunks. It returns Z_OK while it makes
    // progress and Z_BUF_ERROR once it cannot: out of output room or out of input.
    constexpr std::uint64_t kChunk = 1u << 30;
    std::uint64_t consumed = 0;
    int r = Z_OK;
    bool full = false;
    do {
        if (s.avail_in == 0 && consumed < in.size()) {
            s.next_in = const_cast<Bytef *>(in.data() + consumed);
            s.avail_in = static_cast<uInt>(std::min(kChunk, in.size() - consumed));
            consumed += s.avail_in;
        }
        auto room = out.room();
        full = room.empty();
        s.next_out = room.data();
        s.avail_out = static_cast<uInt>(std::min<std::uint64_t>(kChunk, room.size()));
        const uInt given = s.avail_out;
        r = inflate(&s, Z_NO_FLUSH);
        out.add(given - s.avail_out);
    } while (r == Z_OK);
    const std::string why = fmt::format("zlib: {}", s.msg != nullptr ? s.msg : zError(r));
    inflateEnd(&s);
    if (r == Z_BUF_ERROR && full) return larger_than_stated("gzip", out);
    if (r != Z_STREAM_END) return corrupt("gzip", why, out);
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
    Output out(*size, payload.size());
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
    if (out.size() != *size) {
        return loaders::malformed(kKind, fmt::format("{}: {:#x} bytes decoded, {:#x} stated",
                                                     compression_name(c), out.size(), *size));
    }
    return std::move(out).take();
}

}  // namespace guestvm
