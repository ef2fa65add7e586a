// guestvm — a frame: a page of host memory a capability names, mappable into guests.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "guestvm/cspace.hpp"
#include "guestvm/error.hpp"

namespace guestvm {

/// seL4's frame object on guestvm: 2^size_bits bytes of zeroed, shareable host memory (4 KiB,
/// 2 MiB or 1 GiB; pages are allocated on first touch). The VMM reads and writes it through
/// bytes(); GuestVSpace::map_frames maps it into guest-physical space, and the same frame can
/// be mapped into several places and VMs at once (a dataport): every mapping sees the same
/// memory. The memory lives as long as the frame or any mapping of it.
class Frame final : public KernelObject {
  public:
    static constexpr unsigned kSmallBits = 12, kLargeBits = 21, kHugeBits = 30;

    /// A new frame; kInvalidArgument unless size_bits is 12, 21 or 30.
    static Result<std::shared_ptr<Frame>> create(unsigned size_bits);

    unsigned size_bits() const noexcept { return size_bits_; }
    std::uint64_t size() const noexcept { return std::uint64_t{1} << size_bits_; }
    std::span<std::uint8_t> bytes() const noexcept { return {memory_.get(), size()}; }

  private:
    struct PrivateTag {};

  public:
    /// Use create(); public only so make_shared can reach it.
    Frame(PrivateTag, std::shared_ptr<std::uint8_t> memory, unsigned size_bits)
        : KernelObject(ObjectType::kFrame), memory_(std::move(memory)), size_bits_(size_bits) {}

  private:
    std::shared_ptr<std::uint8_t> memory_;  // the frame's own mapping of its memory
    unsigned size_bits_;
};

}  // namespace guestvm

#pragma GCC visibility pop
