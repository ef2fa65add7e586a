// ACPI Machine Language encoding (ACPI 6.x, chapter 20: the AML grammar).
#include "loaders/aml.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace guestvm::aml {

namespace {

// Opcodes and prefixes (ACPI 6.x section 20.3).
constexpr std::uint8_t kZeroOp = 0x00, kOneOp = 0x01, kOnesOp = 0xff, kNameOp = 0x08,
                       kBytePrefix = 0x0a, kWordPrefix = 0x0b, kDWordPrefix = 0x0c,
                       kStringPrefix = 0x0d, kQWordPrefix = 0x0e, kScopeOp = 0x10, kBufferOp = 0x11,
                       kPackageOp = 0x12, kExtOpPrefix = 0x5b, kDeviceOp = 0x82, kRootChar = 0x5c,
                       kParentPrefixChar = 0x5e, kDualNamePrefix = 0x2e, kMultiNamePrefix = 0x2f,
                       kNullName = 0x00;
constexpr std::size_t kMaxPkgLength = (1u << 28) - 1;

std::unexpected<Error> invalid(std::string what) {
    return make_error(Errc::kInvalidArgument, fmt::format("AML: {}", what));
}

void append(Bytes &out, std::span<const std::uint8_t> more) {
    out.insert(out.end(), more.begin(), more.end());
}

template <typename T>
void append_le(Bytes &out, T value) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        out.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> (8 * i)));
    }
}

bool name_lead(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) { return name_lead(c) || (c >= '0' && c <= '9'); }

// One NameSeg: 1..4 characters, padded to 4 with '_'.
Status append_segment(Bytes &out, std::string_view seg, std::string_view path) {
    if (seg.empty() || seg.size() > 4 || !name_lead(seg[0]) ||
        !std::all_of(seg.begin(), seg.end(), name_char)) {
        return invalid(
            fmt::format("\"{}\" in \"{}\" is not a name segment (1-4 of [A-Z0-9_], "
                        "not starting with a digit)",
                        seg, path));
    }
    for (std::size_t i = 0; i < 4; ++i) out.push_back(i < seg.size() ? seg[i] : '_');
    return {};
}

// `opcode` (one or two bytes), then PkgLength, then `body`.
Result<Bytes> with_pkg_length(std::initializer_list<std::uint8_t> opcode, const Bytes &body) {
    GUESTVM_TRY_ASSIGN(length, pkg_length(body.size()));
    Bytes out(opcode);
    append(out, length);
    append(out, body);
    return out;
}

}  // namespace

Result<Bytes> pkg_length(std::size_t body_bytes) {
    // One byte holds lengths up to 63; with n more bytes the lead byte keeps 4 bits and each
    // following byte 8 more. The encoded length includes the PkgLength bytes themselves.
    for (std::size_t extra = 0; extra <= 3; ++extra) {
        const std::size_t total = body_bytes + 1 + extra;
        const std::size_t limit = extra == 0 ? 0x3f : (std::size_t{1} << (4 + 8 * extra)) - 1;
        if (body_bytes > kMaxPkgLength || total > limit) continue;
        Bytes out;
        if (extra == 0) {
            out.push_back(static_cast<std::uint8_t>(total));
            return out;
        }
        out.push_back(static_cast<std::uint8_t>((extra << 6) | (total & 0x0f)));
        for (std::size_t i = 0; i < extra; ++i) {
            out.push_back(static_cast<std::uint8_t>(total >> (4 + 8 * i)));
        }
        return out;
    }
    return invalid(fmt::format("{:#x} bytes do not fit in a PkgLength (at most {:#x})", body_bytes,
                               kMaxPkgLength));
}

Bytes integer(std::uint64_t value) {
    if (value == 0) return {kZeroOp};
    if (value == 1) return {kOneOp};
    if (value == ~std::uint64_t{0}) return {kOnesOp};
    Bytes out;
    if (value <= 0xff) {
        out.push_back(kBytePrefix);
        append_le<std::uint8_t>(out, static_cast<std::uint8_t>(value));
    } else if (value <= 0xffff) {
        out.push_back(kWordPrefix);
        append_le<std::uint16_t>(out, static_cast<std::uint16_t>(value));
    } else if (value <= 0xffffffff) {
        out.push_back(kDWordPrefix);
        append_le<std::uint32_t>(out, static_cast<std::uint32_t>(value));
    } else {
        out.push_back(kQWordPrefix);
        append_le<std::uint64_t>(out, value);
    }
    return out;
}

Result<Bytes> string(std::string_view text) {
    for (char c : text) {
        if (c == '\0' || static_cast<unsigned char>(c) > 0x7f) {
            return invalid("a String holds ASCII 0x01..0x7f only");
        }
    }
    // Sized first and filled in place: GCC 12's -Warray-bounds misreads an insert into the
    // one-byte vector under the sanitizer presets' optimisation.
    Bytes out(text.size() + 2, 0);
    out[0] = kStringPrefix;
    std::copy(text.begin(), text.end(), out.begin() + 1);
    return out;
}

Result<Bytes> name_string(std::string_view path) {
    Bytes out;
    std::string_view rest = path;
    if (!rest.empty() && rest.front() == '\\') {
        out.push_back(kRootChar);
        rest.remove_prefix(1);
    } else {
        while (!rest.empty() && rest.front() == '^') {
            out.push_back(kParentPrefixChar);
            rest.remove_prefix(1);
        }
    }
    std::vector<std::string_view> segments;
    while (!rest.empty()) {
        const std::size_t dot = rest.find('.');
        segments.push_back(rest.substr(0, dot));
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
        if (rest.empty()) segments.push_back(rest);  // a trailing '.' names an empty segment
    }
    if (segments.empty()) {
        if (out.empty()) return invalid("an empty name");
        out.push_back(kNullName);  // "\" alone: the root itself
        return out;
    }
    if (segments.size() > 255) return invalid(fmt::format("\"{}\" has over 255 segments", path));
    if (segments.size() == 2) out.push_back(kDualNamePrefix);
    if (segments.size() > 2) {
        out.push_back(kMultiNamePrefix);
        out.push_back(static_cast<std::uint8_t>(segments.size()));
    }
    for (std::string_view seg : segments) GUESTVM_TRY(append_segment(out, seg, path));
    return out;
}

Result<Bytes> name(std::string_view path, const Bytes &object) {
    GUESTVM_TRY_ASSIGN(encoded, name_string(path));
    Bytes out{kNameOp};
    append(out, encoded);
    append(out, object);
    return out;
}

Result<Bytes> package(std::span<const Bytes> elements) {
    if (elements.size() > 255) {
        return invalid(fmt::format("a Package of {} elements (at most 255)", elements.size()));
    }
    Bytes body{static_cast<std::uint8_t>(elements.size())};
    for (const Bytes &e : elements) append(body, e);
    return with_pkg_length({kPackageOp}, body);
}

Result<Bytes> buffer(std::span<const std::uint8_t> data) {
    Bytes body = integer(data.size());
    append(body, data);
    return with_pkg_length({kBufferOp}, body);
}

Result<Bytes> scope(std::string_view path, const Bytes &terms) {
    GUESTVM_TRY_ASSIGN(body, name_string(path));
    append(body, terms);
    return with_pkg_length({kScopeOp}, body);
}

Result<Bytes> device(std::string_view path, const Bytes &terms) {
    GUESTVM_TRY_ASSIGN(body, name_string(path));
    append(body, terms);
    return with_pkg_length({kExtOpPrefix, kDeviceOp}, body);
}

Result<Bytes> eisa_id(std::string_view id) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    const bool ok =
        id.size() == 7 &&
        std::all_of(id.begin(), id.begin() + 3, [](char c) { return c >= 'A' && c <= 'Z'; }) &&
        std::all_of(id.begin() + 3, id.end(), [&](char c) { return hex(c) >= 0; });
    if (!ok) {
        return invalid(
            fmt::format("EisaId \"{}\" is not three letters A-Z and four hex digits "
                        "0-9A-F",
                        id));
    }
    // The vendor letters, 5 bits each (A = 1), big-endian in the first two bytes; then the
    // product number's hex digits, two per byte, in their written order.
    const unsigned vendor =
        (unsigned(id[0] - '@') << 10) | (unsigned(id[1] - '@') << 5) | unsigned(id[2] - '@');
    const std::uint32_t value = (vendor >> 8) | ((vendor & 0xff) << 8) |
                                (std::uint32_t(hex(id[3]) << 4 | hex(id[4])) << 16) |
                                (std::uint32_t(hex(id[5]) << 4 | hex(id[6])) << 24);
    Bytes out{kDWordPrefix};
    append_le<std::uint32_t>(out, value);
    return out;
}

namespace resource {

namespace {
// Small resource data types (ACPI 6.x section 6.4.2): tag = type << 3 | length.
constexpr std::uint8_t kIrqNoFlagsTag = 0x22, kIoTag = 0x47, kEndTag = 0x79;
constexpr std::uint8_t kDecode16 = 0x01;
}  // namespace

Bytes io(std::uint16_t base, std::uint8_t length) {
    Bytes out{kIoTag, kDecode16};
    append_le<std::uint16_t>(out, base);  // minimum base
    append_le<std::uint16_t>(out, base);  // maximum base: the range is fixed
    out.push_back(1);                     // alignment
    out.push_back(length);
    return out;
}

Result<Bytes> irq(unsigned line) {
    if (line > 15) return invalid(fmt::format("IRQ {} is not an ISA interrupt (0..15)", line));
    Bytes out{kIrqNoFlagsTag};
    append_le<std::uint16_t>(out, static_cast<std::uint16_t>(1u << line));
    return out;
}

Bytes template_of(std::span<const Bytes> descriptors) {
    Bytes out;
    for (const Bytes &d : descriptors) append(out, d);
    out.push_back(kEndTag);
    out.push_back(0);  // checksum 0: "treat as correct" (section 6.4.2.9)
    return out;
}

}  // namespace resource

}  // namespace guestvm::aml
