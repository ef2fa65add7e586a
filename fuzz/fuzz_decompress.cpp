// libFuzzer: kernel payload decompression (LZ4 legacy, xz, lzma, zstd, gzip), output capped.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    auto out = guestvm::decompress_kernel({data, size}, guestvm::fuzz::kMaxOutput);
    if (out && out->size() > guestvm::fuzz::kMaxOutput) __builtin_trap();
    return 0;
}
