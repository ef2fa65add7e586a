#include <fmt/format.h>

#include "loaders/loader_util.hpp"

namespace guestvm {

Result<LoadPlan> plan_flat(std::span<const std::uint8_t> image, std::span<const RamRange> ram,
                           std::uint64_t load_addr) {
    constexpr std::string_view kKind = "flat binary";
    constexpr std::uint64_t kRealModeLimit = 0x100000;
    if (image.empty()) return loaders::malformed(kKind, "the image is empty");
    if (load_addr >= kRealModeLimit) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("flat binary: load address {:#x} is not below 1 MiB, where "
                                      "real mode starts",
                                      load_addr));
    }
    LoadPlan plan;
    plan.format = "flat";
    plan.pieces.push_back({"image", load_addr, image.size(), image});
    GUESTVM_TRY(loaders::check_placement(plan, ram, 0, kKind));
    plan.entry.mode = BootMode::kReal16;
    plan.entry.rip = load_addr;
    return plan;
}

}  // namespace guestvm
