// vm_init → 2 vCPUs → 8 MiB RAM + image → one vCPU running → vm_destroy, 10 000 times on one
// vm_t: the time per cycle, and what the process holds afterwards compared with before
// (descriptors, threads, resident KiB — all should stay at 0).
#include <benchmark/benchmark.h>

#include <string>

#include "sel4vm/boot.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guestvm.h"
#include "support/process_usage.hpp"

namespace {

bool cycle(vm_t &vm, const std::string &guest) {
    vspace_t none{};
    if (vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "cycle") != 0) return false;
    vm_vcpu_t *a = vm_create_vcpu(&vm, 100);
    bool ok = a != nullptr && vm_create_vcpu(&vm, 100) != nullptr &&
              vm_ram_register_at(&vm, 0, 8 << 20, false) == 0 &&
              guestvm_vm_load_elf(&vm, guest.c_str()) == 0 && vm_assign_vcpu_target(a, 0) == 0 &&
              vcpu_start(a) == 0;
    return vm_destroy(&vm) == 0 && ok;
}

void BM_init_run_destroy_cycle(benchmark::State &state) {
    const std::string guest = std::string(GUESTVM_GUEST_DIR) + "/spin.elf";
    vm_t vm{};
    for (int i = 0; i < 20; ++i) {
        if (!cycle(vm, guest)) return state.SkipWithError(guestvm_last_error());
    }
    const auto before = guestvm::test::process_usage();
    for (auto _ : state) {
        if (!cycle(vm, guest)) return state.SkipWithError(guestvm_last_error());
    }
    const auto after = guestvm::test::process_usage();
    state.counters["fds_delta"] = after.fds - before.fds;
    state.counters["threads_delta"] = after.threads - before.threads;
    state.counters["rss_delta_KiB"] =
        static_cast<double>(after.rss_kib) - static_cast<double>(before.rss_kib);
}
BENCHMARK(BM_init_run_destroy_cycle)->Iterations(10000)->Unit(benchmark::kMillisecond);

}  // namespace
