// Helpers shared by guestvm's benchmarks.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "guestvm/host.hpp"

namespace guestvm::bench {

/// A guest image built into GUESTVM_GUEST_DIR.
inline std::vector<std::uint8_t> guest_image(const char *name) {
    std::ifstream in(std::string(GUESTVM_GUEST_DIR) + "/" + name + ".elf", std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

/// One Host for the whole benchmark binary, or null without a usable /dev/kvm.
inline std::shared_ptr<Host> shared_host() {
    static auto host = Host::create();
    return host ? *host : nullptr;
}

/// Times a guest that exits continuously on its vCPU thread: each batch waits for `batch` more
/// events (read with `count`) and reports the per-event time (manual time).
template <typename Count>
void measure_event_rate(benchmark::State &state, Count &&count, std::uint64_t batch = 2000) {
    using Clock = std::chrono::steady_clock;
    while (state.KeepRunningBatch(static_cast<benchmark::IterationCount>(batch))) {
        const std::uint64_t from = count();
        const auto t0 = Clock::now();
        while (count() < from + batch) std::this_thread::sleep_for(std::chrono::microseconds(20));
        const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
        state.SetIterationTime(dt * static_cast<double>(batch) /
                               static_cast<double>(count() - from));
    }
}

}  // namespace guestvm::bench
