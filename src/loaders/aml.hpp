// guestvm — a small encoder of ACPI Machine Language (AML, ACPI 6.x chapter 20), enough for the
// definition blocks guestvm builds: names, integers, strings, packages, buffers, scopes and
// devices, and the resource descriptors a _CRS buffer holds. Each function returns the encoded
// bytes of one term; terms nest by passing one's bytes into another. Pure functions of their
// arguments; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "guestvm/error.hpp"

namespace guestvm::aml {

using Bytes = std::vector<std::uint8_t>;

/// An integer in its shortest encoding: ZeroOp, OneOp, OnesOp, or a Byte/Word/DWord/QWord
/// constant.
Bytes integer(std::uint64_t value);

/// A String constant: printable ASCII (0x01..0x7f, no NUL), NUL-terminated in the encoding.
Result<Bytes> string(std::string_view text);

/// A NameString: an optional root prefix '\' (or parent prefixes '^') and name segments joined
/// by '.', each 1..4 characters of [A-Z0-9_] not starting with a digit, padded with '_'
/// ("\_SB.COM1", "_S5", "^PCI0").
Result<Bytes> name_string(std::string_view path);

/// DefName: Name(path, object), where `object` is an encoded data object.
Result<Bytes> name(std::string_view path, const Bytes &object);

/// DefPackage of up to 255 encoded data objects.
Result<Bytes> package(std::span<const Bytes> elements);

/// DefBuffer holding `data`.
Result<Bytes> buffer(std::span<const std::uint8_t> data);

/// DefScope: Scope(path) { terms }.
Result<Bytes> scope(std::string_view path, const Bytes &terms);

/// DefDevice: Device(path) { terms }.
Result<Bytes> device(std::string_view path, const Bytes &terms);

/// EisaId("PNP0501"): three upper-case letters and four hex digits compressed into the DWord
/// a _HID compares against.
Result<Bytes> eisa_id(std::string_view id);

/// Resource descriptors for a _CRS buffer (ACPI 6.x section 6.4).
namespace resource {
/// A fixed I/O port range with 16-bit decode (ASL: IO(Decode16, base, base, 1, length)).
Bytes io(std::uint16_t base, std::uint8_t length);
/// An ISA interrupt, edge-triggered, active high, exclusive (ASL: IRQNoFlags() {line}); line
/// 0..15.
Result<Bytes> irq(unsigned line);
/// The descriptors followed by the end tag: the contents of a ResourceTemplate buffer.
Bytes template_of(std::span<const Bytes> descriptors);
}  // namespace resource

/// The PkgLength encoding for a body of `body_bytes` bytes (the length counts itself), or an
/// error past AML's 2^28 - 1 limit. Public for the unit tests.
Result<Bytes> pkg_length(std::size_t body_bytes);

}  // namespace guestvm::aml
