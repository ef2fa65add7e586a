#include "guestvm/frame.hpp"

#include <fmt/format.h>

#include "kvm/mapping.hpp"

namespace guestvm {

Result<std::shared_ptr<Frame>> Frame::create(unsigned size_bits) {
    if (size_bits != kSmallBits && size_bits != kLargeBits && size_bits != kHugeBits) {
        return make_error(
            Errc::kInvalidArgument,
            fmt::format("frame of 2^{} bytes: sizes are 2^12, 2^21 and 2^30", size_bits));
    }
    auto memory = kvm::Mapping::shared_anonymous(std::size_t{1} << size_bits);
    if (!memory) return std::unexpected(std::move(memory).error());
    auto owner = std::make_shared<kvm::Mapping>(std::move(*memory));
    std::shared_ptr<std::uint8_t> bytes(owner, owner->data());
    return std::make_shared<Frame>(PrivateTag{}, std::move(bytes), size_bits);
}

}  // namespace guestvm
