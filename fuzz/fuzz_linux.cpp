// libFuzzer: the Linux planners over one input: the setup-header reader, the 64-bit boot
// protocol planner and the PVH planner (which decompresses a bzImage's payload, capped small
// here). The first byte picks the command line's length; a fixed initrd tests its placement.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size < 1) return 0;
    static const std::vector<std::uint8_t> initrd(3000, 0x5a);
    guestvm::LinuxBootOptions options;
    options.cmdline.assign(std::size_t{data[0]} * 12, 'c');
    options.initrd = initrd;
    options.max_kernel_bytes = guestvm::fuzz::kMaxOutput;
    std::span<const std::uint8_t> image(data + 1, size - 1);
    (void)guestvm::parse_bzimage(image);
    if (auto plan = guestvm::plan_linux_bzimage(image, options, guestvm::fuzz::ram())) {
        guestvm::fuzz::apply(*plan);
    }
    if (auto plan = guestvm::plan_linux_pvh(image, options, guestvm::fuzz::ram())) {
        guestvm::fuzz::apply(*plan);
    }
    return 0;
}
