// Guest-driven SMP: how long a guest takes to bring up N cores through CPU_ON (from starting
// core 0 to the VM's stop; VM creation excluded), and what one platform call costs against a
// raw-KVM port-I/O round trip (see exit_roundtrip_bench for the raw side in the same run).
#include <benchmark/benchmark.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <thread>

#include "guestvm/loader.hpp"
#include "guestvm/vm.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::uint8_t> image(const char *name) {
    std::ifstream in(std::string(GUESTVM_GUEST_DIR) + "/" + name + ".elf", std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

std::shared_ptr<guestvm::Host> host_or_null() {
    static auto host = guestvm::Host::create();
    return host ? *host : nullptr;
}

void BM_guest_brings_up_cores(benchmark::State &state) {
    auto host = host_or_null();
    if (!host) return state.SkipWithError("no usable /dev/kvm");
    const int n = static_cast<int>(state.range(0));
    if (n > host->max_vcpus()) return state.SkipWithError("more vCPUs than KVM allows");
    auto elf = image("bringup");
    for (auto _ : state) {
        guestvm::VmConfig config;
        config.ram_bytes = 16 << 20;
        config.vcpus = n;
        auto vm = guestvm::Vm::create(host, config);
        if (!vm) return state.SkipWithError(vm.error().message().c_str());
        auto loaded = guestvm::load_elf64((*vm)->vspace(), elf);
        if (!loaded) return state.SkipWithError(loaded.error().message().c_str());
        auto t0 = Clock::now();
        if (!(*vm)->start_core(0, loaded->entry, 0)) return state.SkipWithError("start failed");
        auto stop = (*vm)->run();
        state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
        if (stop.reason != guestvm::StopReason::kPowerOff)
            return state.SkipWithError(stop.message.c_str());
    }
    state.counters["cores"] = n;
}
BENCHMARK(BM_guest_brings_up_cores)
    ->Arg(2)
    ->Arg(64)
    ->Arg(1024)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_guestvm_platform_call(benchmark::State &state) {
    auto host = host_or_null();
    if (!host) return state.SkipWithError("no usable /dev/kvm");
    guestvm::VmConfig config;
    config.ram_bytes = 4 << 20;
    auto vm = guestvm::Vm::create(host, config);
    auto loaded = vm ? guestvm::load_elf64((*vm)->vspace(), image("pcall_loop"))
                     : std::unexpected(vm.error());
    if (!loaded || !(*vm)->start_core(0, loaded->entry, 0))
        return state.SkipWithError("set-up failed");
    guestvm::Vcpu &vcpu = *(*vm)->vcpu(0);
    auto calls = [&] { return vcpu.exit_counts()[guestvm::ExitKind::kPlatformCall]; };
    constexpr std::uint64_t kBatch = 2000;
    while (state.KeepRunningBatch(kBatch)) {
        std::uint64_t from = calls();
        auto t0 = Clock::now();
        while (calls() < from + kBatch) std::this_thread::sleep_for(std::chrono::microseconds(20));
        double dt = std::chrono::duration<double>(Clock::now() - t0).count();
        state.SetIterationTime(dt * kBatch / static_cast<double>(calls() - from));
    }
    (*vm)->stop();
    (*vm)->run();
}
BENCHMARK(BM_guestvm_platform_call)->UseManualTime()->MinTime(2.0);

}  // namespace
