// The seven util queries through the C API, at 1, 64 and 1024 vCPUs: each must be O(1).
#include <benchmark/benchmark.h>

#include <memory>

#include "sel4vm/boot.h"
#include "sel4vm/guest_vm_util.h"
#include "sel4vm/guestvm.h"

namespace {

// A VM with n vCPUs, all but the last assigned (core i on vCPU i), so the free-vCPU query has
// to find the last one.
struct Fixture {
    std::unique_ptr<vm_t> vm = std::make_unique<vm_t>();
    bool ok = false;
    explicit Fixture(int n) {
        guestvm_vm_options_t opts{};
        opts.ram_bytes = 4u << 20;
        opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
        if (guestvm_vm_init(vm.get(), "bench", &opts) != 0) return;
        for (int i = 0; i < n; ++i) {
            vm_vcpu_t *v = vm_create_vcpu(vm.get(), 0);
            if (v == nullptr) return;
            if (i + 1 < n && vm_assign_vcpu_target(v, i) != 0) return;
        }
        ok = true;
    }
    ~Fixture() {
        if (vm->guestvm) vm_destroy(vm.get());
    }
};

Fixture &fixture(int n) {
    static std::unique_ptr<Fixture> f1, f64, f1024;
    auto &slot = n == 1 ? f1 : n == 64 ? f64 : f1024;
    if (!slot) slot = std::make_unique<Fixture>(n);
    return *slot;
}

#define FIXTURE_OR_SKIP(state, f)                           \
    Fixture &f = fixture(static_cast<int>(state.range(0))); \
    if (!f.ok) {                                            \
        state.SkipWithError(guestvm_last_error());          \
        return;                                             \
    }

void BM_vm_get_vcpu(benchmark::State &state) {
    FIXTURE_OR_SKIP(state, f);
    const int last = static_cast<int>(state.range(0)) - 1;
    int id = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(vm_get_vcpu(f.vm.get(), id));
        id = id == last ? 0 : id + 1;
    }
}

void BM_vm_get_vcpu_tcb(benchmark::State &state) {
    FIXTURE_OR_SKIP(state, f);
    vm_vcpu_t *v = f.vm->vcpus[state.range(0) - 1];
    for (auto _ : state) benchmark::DoNotOptimize(vm_get_vcpu_tcb(v));
}

void BM_vm_vcpu_for_target_cpu(benchmark::State &state) {
    FIXTURE_OR_SKIP(state, f);
    // The highest assigned core: a linear scan (libsel4vm's inline version) would be slowest.
    const int core = std::max(0, static_cast<int>(state.range(0)) - 2);
    for (auto _ : state) benchmark::DoNotOptimize(vm_vcpu_for_target_cpu(f.vm.get(), core));
}

void BM_vm_find_free_unassigned_vcpu(benchmark::State &state) {
    FIXTURE_OR_SKIP(state, f);
    for (auto _ : state) benchmark::DoNotOptimize(vm_find_free_unassigned_vcpu(f.vm.get()));
}

void BM_is_vcpu_online(benchmark::State &state) {
    FIXTURE_OR_SKIP(state, f);
    vm_vcpu_t *v = f.vm->vcpus[state.range(0) - 1];
    for (auto _ : state) benchmark::DoNotOptimize(is_vcpu_online(v));
}

void BM_vm_get_vspace(benchmark::State &state) {
    FIXTURE_OR_SKIP(state, f);
    for (auto _ : state) benchmark::DoNotOptimize(vm_get_vspace(f.vm.get()));
}

void BM_vm_get_vmm_vspace(benchmark::State &state) {
    FIXTURE_OR_SKIP(state, f);
    for (auto _ : state) benchmark::DoNotOptimize(vm_get_vmm_vspace(f.vm.get()));
}

#define QUERY_BENCH(fn) BENCHMARK(fn)->Arg(1)->Arg(64)->Arg(1024)
QUERY_BENCH(BM_vm_get_vcpu);
QUERY_BENCH(BM_vm_get_vcpu_tcb);
QUERY_BENCH(BM_vm_vcpu_for_target_cpu);
QUERY_BENCH(BM_vm_find_free_unassigned_vcpu);
QUERY_BENCH(BM_is_vcpu_online);
QUERY_BENCH(BM_vm_get_vspace);
QUERY_BENCH(BM_vm_get_vmm_vspace);

}  // namespace
