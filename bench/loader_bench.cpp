// Loader costs on the host: planning an ELF guest, and Debian's kernel — its LZ4 payload
// decompressed by guestvm against a bare liblz4 loop over the same blocks (the floor), and the
// whole PVH and boot-protocol plans. Needs scripts/fetch-linux.sh's kernel for the Linux cases.
#include <benchmark/benchmark.h>
#include <lz4.h>

#include <cstring>
#include <memory>
#include <string>

#include "bench_util.hpp"
#include "guestvm/loader.hpp"

namespace {

const std::vector<guestvm::RamRange> kRam{{0, 512ull << 20}};

const std::vector<std::uint8_t> &debian_kernel() {
    static const auto bytes = guestvm::read_file(std::string(GUESTVM_LINUX_DIR) + "/vmlinuz");
    static const std::vector<std::uint8_t> empty;
    return bytes ? *bytes : empty;
}

void BM_PlanElfTiny(benchmark::State &state) {
    auto image = guestvm::bench::guest_image("tiny");
    for (auto _ : state) {
        auto plan = guestvm::plan_elf(image, kRam);
        benchmark::DoNotOptimize(plan);
    }
}
BENCHMARK(BM_PlanElfTiny);

void BM_DebianPayloadGuestvm(benchmark::State &state) {
    auto header = guestvm::parse_bzimage(debian_kernel());
    if (!header) return state.SkipWithError("no kernel: run scripts/fetch-linux.sh");
    std::size_t out = 0;
    for (auto _ : state) {
        auto vmlinux = guestvm::decompress_kernel(header->payload);
        if (!vmlinux) return state.SkipWithError(vmlinux.error().message().c_str());
        out = vmlinux->size();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * out));
}
BENCHMARK(BM_DebianPayloadGuestvm)->Unit(benchmark::kMillisecond);

// The floor: liblz4 over the same legacy blocks into fresh, uninitialised memory each time (a
// loader decompresses once, into memory it has not touched).
void BM_DebianPayloadBareLz4(benchmark::State &state) {
    auto header = guestvm::parse_bzimage(debian_kernel());
    if (!header) return state.SkipWithError("no kernel: run scripts/fetch-linux.sh");
    auto p = header->payload;
    std::uint32_t size;
    std::memcpy(&size, p.data() + p.size() - 4, 4);
    for (auto _ : state) {
        auto out = std::make_unique_for_overwrite<char[]>(size);
        std::size_t pos = 4, produced = 0;
        while (pos + 4 <= p.size() - 4) {
            std::uint32_t c;
            std::memcpy(&c, p.data() + pos, 4);
            pos += 4;
            int n = LZ4_decompress_safe(reinterpret_cast<const char *>(p.data() + pos),
                                        out.get() + produced, static_cast<int>(c),
                                        static_cast<int>(size - produced));
            if (n < 0) return state.SkipWithError("corrupt");
            produced += static_cast<std::size_t>(n);
            pos += c;
        }
        benchmark::DoNotOptimize(out.get());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(BM_DebianPayloadBareLz4)->Unit(benchmark::kMillisecond);

// A whole Linux plan of Debian's kernel by `planner` (PVH decompresses; bzImage does not).
template <auto Planner>
void BM_PlanDebianKernel(benchmark::State &state) {
    if (debian_kernel().empty())
        return state.SkipWithError("no kernel: run scripts/fetch-linux.sh");
    for (auto _ : state) {
        auto plan = Planner(debian_kernel(), {"console=ttyS0", {}}, kRam);
        if (!plan) return state.SkipWithError(plan.error().message().c_str());
        benchmark::DoNotOptimize(plan);
    }
}
BENCHMARK(BM_PlanDebianKernel<guestvm::plan_linux_pvh>)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlanDebianKernel<guestvm::plan_linux_bzimage>)->Unit(benchmark::kMicrosecond);

}  // namespace
