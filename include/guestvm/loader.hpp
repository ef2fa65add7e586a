// guestvm — guest image loaders.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "guestvm/error.hpp"

namespace guestvm {

class GuestVSpace;

/// Where an image went and where it starts.
struct LoadedImage {
    std::uint64_t entry = 0;  ///< guest-physical entry point
    struct Segment {
        std::uint64_t paddr, filesz, memsz;
    };
    std::vector<Segment> segments;
};

/// Checks an ELF64 x86-64 executable completely, then copies its PT_LOAD segments to their
/// physical addresses and zeroes BSS. A malformed image is refused with Errc::kMalformedImage
/// and guest memory is left untouched. Segments may not overlap each other or [0, reserved).
Result<LoadedImage> load_elf64(GuestVSpace &memory, std::span<const std::uint8_t> image,
                               std::uint64_t reserved_below = 0x10000);

/// Reads a whole file (a clear error naming the path when it cannot).
Result<std::vector<std::uint8_t>> read_file(const std::string &path);

}  // namespace guestvm
