// libFuzzer: the ELF planner. Whatever it accepts must fit the RAM it was given: the plan is
// written into a buffer the size of that RAM, so AddressSanitizer catches any piece outside it.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    auto plan = guestvm::plan_elf({data, size}, guestvm::fuzz::ram());
    if (plan) guestvm::fuzz::apply(*plan);
    return 0;
}
