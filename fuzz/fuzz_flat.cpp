// libFuzzer: the flat-binary planner. The first two bytes choose the load address (in 16-byte
// units below 1 MiB and a little past it); the rest is the image.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 2) return 0;
    const std::uint64_t at = (std::uint64_t{data[0]} | std::uint64_t{data[1]} << 8) << 5;
    auto plan = guestvm::plan_flat({data + 2, size - 2}, guestvm::fuzz::ram(), at);
    if (plan) guestvm::fuzz::apply(*plan);
    return 0;
}
