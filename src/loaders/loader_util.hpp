// Shared pieces of the planners: bounds-checked little-endian reads, the placement check every
// plan passes, the ELF reader and the memory map Linux guests are given.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "guestvm/loader.hpp"

namespace guestvm::loaders {

/// Little-endian field of `image` at `offset`, or nullopt when it runs past the end.
template <typename T>
std::optional<T> read_le(std::span<const std::uint8_t> image, std::uint64_t offset) noexcept {
    if (offset > image.size() || image.size() - offset < sizeof(T)) return std::nullopt;
    T value;
    std::memcpy(&value, image.data() + offset, sizeof(T));
    return value;
}

/// Writes a little-endian field into `buf` (the caller sized it).
template <typename T>
void put_le(std::vector<std::uint8_t> &buf, std::size_t offset, T value) noexcept {
    std::memcpy(buf.data() + offset, &value, sizeof(T));
}

/// Refuses a plan whose pieces are empty, wrap around, start below `reserved_below`, do not
/// lie inside one RAM range, or overlap each other (naming both).
Status check_placement(const LoadPlan &plan, std::span<const RamRange> ram,
                       std::uint64_t reserved_below, std::string_view image_kind);

/// The RAM range holding [gpa, gpa+size), or null.
const RamRange *ram_holding(std::span<const RamRange> ram, std::uint64_t gpa,
                            std::uint64_t size) noexcept;

/// One loadable segment of an ELF file.
struct ElfSegment {
    unsigned index = 0;
    std::uint64_t offset = 0, paddr = 0, vaddr = 0, filesz = 0, memsz = 0;
    bool exec = false;
};

/// What an ELF reader found. Segments are checked against the file, not against RAM.
struct ElfFile {
    int bits = 64;
    std::uint64_t entry = 0;
    std::vector<ElfSegment> segments;        ///< PT_LOAD with p_memsz > 0
    std::optional<std::uint64_t> pvh_entry;  ///< XEN_ELFNOTE_PHYS32_ENTRY, when present
};

/// Reads an ELF32 (i386) or ELF64 (x86-64) executable's headers and notes.
Result<ElfFile> read_elf(std::span<const std::uint8_t> image, std::string_view kind);

/// Adds the file's segments to `plan` as pieces.
void add_segments(LoadPlan &plan, const ElfFile &elf, std::span<const std::uint8_t> image);

/// The PC memory map of `ram`: low memory up to the EBDA usable, the legacy hole
/// [0x9fc00, 1 MiB) reserved, every other RAM range usable.
std::vector<MemoryMapEntry> pc_memory_map(std::span<const RamRange> ram);

/// Where a blob of `size` bytes goes: the highest page-aligned address in RAM below `limit`
/// whose end is at or below `limit`, above `floor`. nullopt if nothing fits.
std::optional<std::uint64_t> place_high(std::span<const RamRange> ram, std::uint64_t size,
                                        std::uint64_t floor, std::uint64_t limit);

std::unexpected<Error> malformed(std::string_view kind, std::string what);

}  // namespace guestvm::loaders
