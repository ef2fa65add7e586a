// Failure walks: for each public creation path (C++ and libsel4vm's C API) count the system calls
// it makes on KVM (kvm::fault), then make the 1st, 2nd, ... Nth of them fail in turn, and check
// that the path reports an error naming the call, publishes nothing half-made, leaks no
// descriptor, thread or KVM/guest-memory mapping, and leaves the VM usable: a tiny guest still
// runs (or, where the VM itself failed, a new one does).
#include <dirent.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "guestvm/frame.hpp"
#include "kvm/fault_injection.hpp"
#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_irq_controller.h"
#include "sel4vm/guest_memory.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guest_vm_util.h"
#include "sel4vm/guestvm.h"
#include "support/process_usage.hpp"

namespace guestvm {
namespace {

using kvm::fault::Injection;
using kvm::fault::Match;
using kvm::fault::Rule;

constexpr std::uint64_t kRam = 4ull << 20;
constexpr std::uint64_t kExtraGpa = 16ull << 20;  // above kRam: where walks add memory
constexpr const char *kHello = "hello from guestvm";

// ---- what the process holds ----

int count_dir(const char *path) {
    int n = 0;
    if (DIR *d = ::opendir(path)) {
        while (const dirent *e = ::readdir(d)) n += e->d_name[0] != '.';
        ::closedir(d);
    }
    return n;
}

/// Mappings of KVM objects (kvm_run areas), guest RAM (memfds) and frames (shared anonymous
/// memory). Not every mapping: malloc arenas and cached thread stacks come and go on their own.
int vmm_mappings() {
    std::ifstream maps("/proc/self/maps");
    int n = 0;
    for (std::string line; std::getline(maps, line);) {
        n += line.find("anon_inode:kvm") != std::string::npos ||
             line.find("/memfd:") != std::string::npos ||
             line.find("/dev/zero") != std::string::npos;
    }
    return n;
}

struct Footprint {
    int fds = 0;
    int threads = 0;
    int mappings = 0;
    bool operator==(const Footprint &) const = default;
};

std::ostream &operator<<(std::ostream &os, const Footprint &f) {
    return os << "{fds " << f.fds << ", threads " << f.threads << ", VMM mappings " << f.mappings
              << "}";
}

Footprint footprint() {
    return {test::process_usage().fds, count_dir("/proc/self/task"), vmm_mappings()};
}

/// The footprint once it equals `want`, or after 2 s (a joined thread can linger briefly in
/// /proc/self/task).
Footprint settled(const Footprint &want) {
    Footprint now = footprint();
    for (int i = 0; i < 200 && !(now == want); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        now = footprint();
    }
    return now;
}

// ---- outcomes ----

struct Outcome {
    bool ok = false;
    std::string message;
};

Outcome outcome(const Status &s) { return {s.has_value(), s ? "" : s.error().message()}; }
template <typename T>
Outcome outcome(const Result<T> &r) {
    return {r.has_value(), r ? "" : r.error().message()};
}
/// A C function's documented failure value, with guestvm_last_error().
Outcome c_outcome(bool ok) { return {ok, ok ? "" : guestvm_last_error()}; }

/// What an error message must contain to name the failed call.
std::string named_as(const std::string &call) {
    return call == "thread creation" ? "thread" : call;
}

/// The one call whose failure a path may absorb: KVM_CHECK_EXTENSION answers "absent" and the
/// VMM goes on without the optional feature (its required capabilities are checked by name).
bool absorbable(const std::string &call) { return call == "KVM_CHECK_EXTENSION"; }

std::string joined(const std::vector<std::string> &calls) {
    std::string out;
    for (const auto &c : calls) out += (out.empty() ? "" : ", ") + c;
    return out;
}

/// The walk. `setup()` builds a context (not injected), `act(ctx)` runs the path under test
/// (injected), `check(ctx, outcome)` asserts the state afterwards and that the VM is usable
/// (not injected); the context is destroyed before the footprint is compared. Returns the
/// names of the calls the path made when nothing failed.
template <typename Setup, typename Act, typename Check>
std::vector<std::string> walk(Setup setup, Act act, Check check) {
    std::vector<std::string> calls;
    {
        auto ctx = setup();
        Outcome clean;
        {
            Injection count(Rule::count(Match{}));
            clean = act(*ctx);
            calls = count.calls();
        }
        EXPECT_TRUE(clean.ok) << "without injected failures: " << clean.message;
        check(*ctx, clean);
    }
    const Footprint before = footprint();  // after one full round: caches are warm
    for (std::size_t n = 1; n <= calls.size(); ++n) {
        SCOPED_TRACE("failing call " + std::to_string(n) + " of " + std::to_string(calls.size()) +
                     " (" + calls[n - 1] + "); the path's calls: " + joined(calls));
        {
            auto ctx = setup();
            Outcome got;
            std::string failed;
            {
                Injection inject(Rule::fail_nth(Match{}, n));
                got = act(*ctx);
                failed = inject.last_failed();
            }
            EXPECT_EQ(failed, calls[n - 1]) << "the path made other calls this time";
            if (got.ok) {
                EXPECT_TRUE(absorbable(failed)) << "succeeded although " << failed << " failed";
            } else {
                EXPECT_NE(got.message.find(named_as(failed)), std::string::npos)
                    << "the error does not name " << failed << ": " << got.message;
                if (!absorbable(failed)) {  // a required capability reads as missing
                    EXPECT_NE(got.message.find(std::strerror(EIO)), std::string::npos)
                        << got.message;
                }
            }
            check(*ctx, got);
            if (::testing::Test::HasFatalFailure()) return calls;
        }
        EXPECT_EQ(settled(before), before) << "leaked after failing " << calls[n - 1];
    }
    return calls;
}

// ---- C++ paths ----

struct CppVm {
    test::Capture capture;
    std::unique_ptr<Vm> vm;
    std::uint64_t entry = 0;
};

MachineConfig walk_config(test::Capture &capture, int vcpus, bool irqchip) {
    MachineConfig c = test::config("walk", kRam, vcpus);
    c.serial_sink = capture.sink();
    c.irqchip = irqchip;
    return c;
}

/// Loads tiny.elf into `vm` and returns its entry point.
std::uint64_t load_tiny(Vm &vm) {
    auto image = read_file(test::guest_path("tiny"));
    EXPECT_TRUE(image) << (image ? "" : image.error().message());
    if (!image) return 0;
    auto loaded = load_elf(vm.vspace(), *image);
    EXPECT_TRUE(loaded) << (loaded ? "" : loaded.error().message());
    return loaded ? loaded->entry.rip : 0;
}

std::unique_ptr<CppVm> cpp_vm(int vcpus, bool irqchip) {
    std::string why;
    auto out = std::make_unique<CppVm>();
    auto vm = build_machine(test::shared_host(&why), walk_config(out->capture, vcpus, irqchip));
    EXPECT_TRUE(vm) << (vm ? "" : vm.error().message());
    if (!vm) return out;
    out->vm = std::move(*vm);
    out->entry = load_tiny(*out->vm);
    return out;
}

/// Starts core 0 (adding a vCPU if there is none) and runs the guest to its power-off.
void runs_tiny(CppVm &c) {
    ASSERT_TRUE(c.vm);
    if (c.vm->vcpu_count() == 0) {
        ASSERT_TRUE(c.vm->add_vcpu());
    }
    // Only a vCPU that never started: one the act started may already have run tiny to its end.
    if (c.vm->vcpu(0)->state() == VcpuState::kCreated) {
        auto started = c.vm->start_core(0, c.entry, 0);
        ASSERT_TRUE(started) << started.error().message();
    }
    StopInfo info = c.vm->run();
    EXPECT_EQ(info.reason, StopReason::kPowerOff) << info.message;
    EXPECT_TRUE(c.capture.contains(kHello)) << c.capture.text();
}

/// A walk of a factory: `make()` returns a Result; `use(value)` checks what it made, if it did.
template <typename Make, typename Use>
std::vector<std::string> walk_factory(Make make, Use use) {
    struct Ctx {
        std::optional<decltype(make())> made;
    };
    return walk([] { return std::make_unique<Ctx>(); },
                [&](Ctx &c) { return outcome(c.made.emplace(make())); },
                [&](Ctx &c, const Outcome &o) {
                    if (o.ok) use(**c.made);
                });
}

TEST(FailureInjection, HostCreate) {
    GUESTVM_REQUIRE_KVM(host);
    auto calls = walk_factory([] { return Host::create(); },
                              [](const std::shared_ptr<Host> &made) {
                                  CppVm vm;
                                  auto created =
                                      build_machine(made, walk_config(vm.capture, 1, false));
                                  ASSERT_TRUE(created) << created.error().message();
                                  vm.vm = std::move(*created);
                                  vm.entry = load_tiny(*vm.vm);
                                  runs_tiny(vm);
                              });
    EXPECT_GE(calls.size(), 5u) << joined(calls);
    EXPECT_EQ(calls.front(), "open");
}

void walk_vm_create(bool irqchip) {
    struct Ctx {
        CppVm vm;
    };
    auto calls = walk([] { return std::make_unique<Ctx>(); },
                      [irqchip](Ctx &c) {
                          std::string why;
                          auto made = build_machine(test::shared_host(&why),
                                                    walk_config(c.vm.capture, 1, irqchip));
                          if (made) c.vm.vm = std::move(*made);
                          return outcome(made);
                      },
                      [](Ctx &c, const Outcome &o) {
                          if (!o.ok) {
                              // Nothing of it is left (the footprint says so); a new VM works.
                              auto again = cpp_vm(1, false);
                              runs_tiny(*again);
                              return;
                          }
                          c.vm.entry = load_tiny(*c.vm.vm);
                          runs_tiny(c.vm);
                      });
    EXPECT_NE(std::find(calls.begin(), calls.end(), "KVM_CREATE_VCPU"), calls.end());
    EXPECT_EQ(std::find(calls.begin(), calls.end(), "KVM_CREATE_IRQCHIP") != calls.end(), irqchip);
}

TEST(FailureInjection, VmCreateWithRam) {
    GUESTVM_REQUIRE_KVM(host);
    walk_vm_create(false);
}

TEST(FailureInjection, VmCreateWithRamAndIrqchip) {
    GUESTVM_REQUIRE_KVM(host);
    walk_vm_create(true);
}

TEST(FailureInjection, AddVcpu) {
    GUESTVM_REQUIRE_KVM(host);
    walk([] { return cpp_vm(0, false); }, [](CppVm &c) { return outcome(c.vm->add_vcpu()); },
         [](CppVm &c, const Outcome &o) {
             if (!o.ok) {
                 EXPECT_EQ(c.vm->vcpu_count(), 0);
                 EXPECT_EQ(c.vm->vcpu(0), nullptr);
                 EXPECT_EQ(c.vm->free_unassigned_vcpu(), nullptr);
                 EXPECT_EQ(c.vm->vcpu_cap(0), kNullCap);
                 auto again = c.vm->add_vcpu();
                 ASSERT_TRUE(again) << "after the failure: " << again.error().message();
             }
             runs_tiny(c);
         });
}

void walk_start_core(bool irqchip) {
    auto calls = walk([irqchip] { return cpp_vm(1, irqchip); },
                      [](CppVm &c) { return outcome(c.vm->start_core(0, c.entry, 0)); },
                      [](CppVm &c, const Outcome &o) {
                          if (!o.ok) {
                              EXPECT_FALSE(c.vm->vcpu(0)->online());
                              EXPECT_EQ(c.vm->vcpu(0)->state(), VcpuState::kCreated);
                          }
                          runs_tiny(c);
                      });
    EXPECT_EQ(calls.back(), "thread creation");
    EXPECT_EQ(std::find(calls.begin(), calls.end(), "KVM_SET_MP_STATE") != calls.end(), irqchip);
}

TEST(FailureInjection, StartCore) {
    GUESTVM_REQUIRE_KVM(host);
    walk_start_core(false);
}

TEST(FailureInjection, StartCoreWithIrqchip) {
    GUESTVM_REQUIRE_KVM(host);
    walk_start_core(true);
}

/// Whether guest-physical `gpa` is RAM the guest and VMM can use (a read and write through
/// the vspace reach the same bytes).
bool usable_ram(Vm &vm, std::uint64_t gpa) {
    const std::uint8_t in[4] = {1, 2, 3, 4};
    std::uint8_t out[4] = {};
    return vm.vspace().write(GuestPhysAddr(gpa), in) && vm.vspace().read(GuestPhysAddr(gpa), out) &&
           std::equal(std::begin(in), std::end(in), std::begin(out));
}

TEST(FailureInjection, VspaceAddRam) {
    GUESTVM_REQUIRE_KVM(host);
    walk([] { return cpp_vm(1, false); },
         [](CppVm &c) {
             return outcome(c.vm->vspace().add_ram(GuestPhysAddr(kExtraGpa), 2 << 20, "extra"));
         },
         [](CppVm &c, const Outcome &o) {
             if (!o.ok) {
                 EXPECT_FALSE(c.vm->vspace().find(GuestPhysAddr(kExtraGpa)));
                 EXPECT_EQ(c.vm->vspace().regions().size(), 1u);
                 auto again = c.vm->vspace().add_ram(GuestPhysAddr(kExtraGpa), 2 << 20, "extra");
                 ASSERT_TRUE(again) << again.error().message();
             }
             EXPECT_TRUE(usable_ram(*c.vm, kExtraGpa));
             runs_tiny(c);
         });
}

TEST(FailureInjection, VspaceReserveMakesNoKvmCall) {
    GUESTVM_REQUIRE_KVM(host);
    auto c = cpp_vm(1, false);
    Injection count(Rule::count(Match{}));
    EXPECT_TRUE(
        c->vm->vspace().reserve(GuestPhysAddr(kExtraGpa), 8192, "r",
                                [](ExitContext &, MmioAccess &) { return ExitAction::kContinue; }));
    EXPECT_EQ(count.seen(), 0u) << joined(count.calls());
}

TEST(FailureInjection, FrameCreate) {
    GUESTVM_REQUIRE_KVM(host);
    auto calls = walk_factory([] { return Frame::create(Frame::kSmallBits); },
                              [](const std::shared_ptr<Frame> &frame) {
                                  EXPECT_EQ(frame->bytes()[0], 0);  // zeroed, readable
                              });
    EXPECT_EQ(calls, std::vector<std::string>{"mmap"});
}

TEST(FailureInjection, VspaceMapFrames) {
    GUESTVM_REQUIRE_KVM(host);
    struct Ctx {
        std::unique_ptr<CppVm> c;
        std::vector<std::shared_ptr<Frame>> frames;
    };
    auto calls = walk(
        [] {
            auto ctx = std::make_unique<Ctx>();
            ctx->c = cpp_vm(1, false);
            for (int i = 0; i < 2; ++i) ctx->frames.push_back(*Frame::create(Frame::kSmallBits));
            EXPECT_TRUE(ctx->c->vm->vspace().reserve(
                GuestPhysAddr(kExtraGpa), 8192, "frames",
                [](ExitContext &, MmioAccess &) { return ExitAction::kContinue; }));
            return ctx;
        },
        [](Ctx &x) {
            return outcome(x.c->vm->vspace().map_frames(GuestPhysAddr(kExtraGpa), x.frames, true));
        },
        [](Ctx &x, const Outcome &o) {
            Vm &vm = *x.c->vm;
            if (!o.ok) {
                EXPECT_FALSE(vm.vspace().find(GuestPhysAddr(kExtraGpa)));  // still a reservation
                auto again = vm.vspace().map_frames(GuestPhysAddr(kExtraGpa), x.frames, true);
                ASSERT_TRUE(again) << again.error().message();
            }
            ASSERT_TRUE(usable_ram(vm, kExtraGpa + 4096));
            EXPECT_EQ(x.frames[1]->bytes()[0], 1);  // the frame itself was written
            runs_tiny(*x.c);
        });
    EXPECT_NE(std::find(calls.begin(), calls.end(), "mremap"), calls.end()) << joined(calls);
}

TEST(FailureInjection, SetIrqAckHandler) {
    GUESTVM_REQUIRE_KVM(host);
    auto handler = [](int) {};
    auto calls = walk([] { return cpp_vm(1, true); },
                      [&](CppVm &c) { return outcome(c.vm->set_irq_ack_handler(5, handler)); },
                      [&](CppVm &c, const Outcome &o) {
                          if (!o.ok) {
                              auto again = c.vm->set_irq_ack_handler(5, handler);
                              ASSERT_TRUE(again) << again.error().message();
                          }
                          // A second line: the watcher is in working order.
                          auto other = c.vm->set_irq_ack_handler(6, handler);
                          ASSERT_TRUE(other) << other.error().message();
                          runs_tiny(c);
                      });
    EXPECT_NE(std::find(calls.begin(), calls.end(), "KVM_IRQFD"), calls.end()) << joined(calls);
    EXPECT_NE(std::find(calls.begin(), calls.end(), "thread creation"), calls.end());
}

TEST(FailureInjection, LoadingMakesNoKvmCall) {
    GUESTVM_REQUIRE_KVM(host);
    auto c = cpp_vm(1, false);
    auto image = read_file(test::guest_path("tiny"));
    ASSERT_TRUE(image);
    Injection count(Rule::count(Match{}));
    auto plan = plan_elf(*image, ram_ranges(c->vm->vspace()));
    ASSERT_TRUE(plan);
    EXPECT_TRUE(write_plan(c->vm->vspace(), *plan));
    EXPECT_TRUE(load_elf(c->vm->vspace(), *image));
    EXPECT_EQ(count.seen(), 0u) << joined(count.calls());
}

// ---- the C API ----

struct CVm {
    vm_t vm{};
    std::mutex mu;
    std::string serial;
    bool initialised = false;
    ~CVm() {
        if (vm.guestvm != nullptr) {
            EXPECT_EQ(vm_destroy(&vm), 0) << guestvm_last_error();
        }
    }
    bool has_hello() {
        std::lock_guard lock(mu);
        return serial.find(kHello) != std::string::npos;
    }
};

void c_serial(int, const char *bytes, size_t len, void *cookie) {
    auto *c = static_cast<CVm *>(cookie);
    std::lock_guard lock(c->mu);
    c->serial.append(bytes, len);
}

guestvm_vm_options_t c_options(CVm &c, std::uint64_t ram) {
    guestvm_vm_options_t o{};
    o.ram_bytes = ram;
    o.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    o.serial = c_serial;
    o.serial_cookie = &c;
    return o;
}

void count_ack(vm_vcpu_t *, int, void *) {}

/// A C VM: `ram` bytes at 0, tiny.elf loaded when there is RAM, `vcpus` vCPUs.
std::unique_ptr<CVm> c_vm(std::uint64_t ram, int vcpus, bool irqchip = false) {
    auto c = std::make_unique<CVm>();
    auto opts = c_options(*c, ram);
    EXPECT_EQ(guestvm_vm_init(&c->vm, "c-walk", &opts), 0) << guestvm_last_error();
    if (irqchip) {
        EXPECT_EQ(vm_create_default_irq_controller(&c->vm), 0) << guestvm_last_error();
    }
    if (ram != 0) {
        EXPECT_EQ(guestvm_vm_load_elf(&c->vm, test::guest_path("tiny").c_str()), 0);
    }
    for (int i = 0; i < vcpus; ++i) EXPECT_NE(vm_create_vcpu(&c->vm, 100), nullptr);
    return c;
}

/// Loads tiny if needed, starts vCPU 0 (creating it if needed) and runs to the power-off.
void c_runs_tiny(CVm &c, bool load = false) {
    if (load) {
        ASSERT_EQ(guestvm_vm_load_elf(&c.vm, test::guest_path("tiny").c_str()), 0);
    }
    if (c.vm.num_vcpus == 0) {
        ASSERT_NE(vm_create_vcpu(&c.vm, 100), nullptr) << guestvm_last_error();
    }
    // Only a vCPU that never started: one the act started may already have run tiny to its end.
    if (static_cast<Vcpu *>(c.vm.vcpus[0]->guestvm)->state() == VcpuState::kCreated) {
        ASSERT_EQ(vcpu_start(c.vm.vcpus[0]), 0) << guestvm_last_error();
    }
    EXPECT_EQ(vm_run(&c.vm), 0) << guestvm_last_error();
    EXPECT_TRUE(c.has_hello()) << c.serial;
}

// vm_init is guestvm_vm_init with zeroed options (no serial sink): the walk takes the latter to
// see the guest's output.
TEST(FailureInjection, CVmInit) {
    GUESTVM_REQUIRE_KVM(host);
    c_vm(0, 0);  // the process's default host exists from here on, as in every later round
    auto calls = walk([] { return std::make_unique<CVm>(); },
                      [](CVm &c) {
                          auto opts = c_options(c, 0);
                          return c_outcome(guestvm_vm_init(&c.vm, "c-walk", &opts) == 0);
                      },
                      [](CVm &c, const Outcome &o) {
                          if (!o.ok) {
                              EXPECT_EQ(c.vm.guestvm, nullptr);
                              EXPECT_FALSE(c.vm.vm_initialised);
                              auto opts = c_options(c, 0);
                              ASSERT_EQ(guestvm_vm_init(&c.vm, "again", &opts), 0)
                                  << guestvm_last_error();
                          }
                          ASSERT_EQ(vm_ram_register_at(&c.vm, 0, kRam, false), 0);
                          c_runs_tiny(c, true);
                      });
    EXPECT_EQ(calls.front(), "KVM_CREATE_VM");
}

TEST(FailureInjection, CVmRamRegisterAt) {
    GUESTVM_REQUIRE_KVM(host);
    walk([] { return c_vm(0, 0); },
         [](CVm &c) { return c_outcome(vm_ram_register_at(&c.vm, 0, kRam, false) == 0); },
         [](CVm &c, const Outcome &o) {
             if (!o.ok) {
                 EXPECT_EQ(c.vm.mem.num_ram_regions, 0);
                 EXPECT_EQ(guestvm_vspace_regions(&c.vm.mem.vm_vspace, nullptr, 0), 0);
                 ASSERT_EQ(vm_ram_register_at(&c.vm, 0, kRam, false), 0) << guestvm_last_error();
             }
             EXPECT_EQ(c.vm.mem.num_ram_regions, 1);
             c_runs_tiny(c, true);
         });
}

TEST(FailureInjection, CVmRamRegister) {
    GUESTVM_REQUIRE_KVM(host);
    walk([] { return c_vm(kRam, 0); },
         [](CVm &c) { return c_outcome(vm_ram_register(&c.vm, 1 << 20) != 0); },
         [](CVm &c, const Outcome &o) {
             if (!o.ok) {
                 EXPECT_EQ(guestvm_vspace_regions(&c.vm.mem.vm_vspace, nullptr, 0), 1);
                 ASSERT_EQ(c.vm.mem.num_ram_regions, 1);
                 EXPECT_EQ(c.vm.mem.ram_regions[0].size, kRam);
                 ASSERT_NE(vm_ram_register(&c.vm, 1 << 20), 0u) << guestvm_last_error();
             }
             EXPECT_EQ(guestvm_vspace_regions(&c.vm.mem.vm_vspace, nullptr, 0), 2);
             ASSERT_EQ(c.vm.mem.num_ram_regions, 1);  // adjacent: one region
             EXPECT_EQ(c.vm.mem.ram_regions[0].size, kRam + (1 << 20));
             c_runs_tiny(c);
         });
}

TEST(FailureInjection, CVmCreateVcpu) {
    GUESTVM_REQUIRE_KVM(host);
    auto calls = walk([] { return c_vm(kRam, 0); },
                      [](CVm &c) { return c_outcome(vm_create_vcpu(&c.vm, 100) != nullptr); },
                      [](CVm &c, const Outcome &o) {
                          if (!o.ok) {
                              EXPECT_EQ(c.vm.num_vcpus, 0u);
                              EXPECT_EQ(c.vm.vcpus[0], nullptr);
                              EXPECT_EQ(vm_find_free_unassigned_vcpu(&c.vm), nullptr);
                              EXPECT_EQ(vm_get_vcpu(&c.vm, 0), seL4_CapNull);
                              EXPECT_EQ(vm_vcpu_for_target_cpu(&c.vm, 0), nullptr);
                              ASSERT_NE(vm_create_vcpu(&c.vm, 100), nullptr)
                                  << guestvm_last_error();
                          }
                          EXPECT_EQ(c.vm.num_vcpus, 1u);
                          EXPECT_EQ(vm_find_free_unassigned_vcpu(&c.vm), c.vm.vcpus[0]);
                          c_runs_tiny(c);
                      });
    // libsel4vm's order lets the irqchip come after vm_create_vcpu: the KVM vCPU is made later.
    EXPECT_TRUE(calls.empty()) << joined(calls);
}

// vcpu_start makes the KVM vCPU (it was deferred): a failure anywhere leaves it startable.
TEST(FailureInjection, CVcpuStart) {
    GUESTVM_REQUIRE_KVM(host);
    auto calls = walk([] { return c_vm(kRam, 1); },
                      [](CVm &c) { return c_outcome(vcpu_start(c.vm.vcpus[0]) == 0); },
                      [](CVm &c, const Outcome &o) {
                          if (!o.ok) {
                              EXPECT_FALSE(is_vcpu_online(c.vm.vcpus[0]));
                          }
                          c_runs_tiny(c);
                      });
    EXPECT_EQ(calls.front(), "KVM_CREATE_VCPU");
    EXPECT_NE(std::find(calls.begin(), calls.end(), "KVM_SET_SREGS"), calls.end());
}

// The controller after vm_create_vcpu (camkes-vm's order), with an IRQ registered before it.
TEST(FailureInjection, CVmCreateDefaultIrqControllerAfterVcpu) {
    GUESTVM_REQUIRE_KVM(host);
    walk(
        [] {
            auto c = c_vm(kRam, 1);
            EXPECT_EQ(vm_register_irq(c->vm.vcpus[0], 5, count_ack, nullptr), 0);
            return c;
        },
        [](CVm &c) { return c_outcome(vm_create_default_irq_controller(&c.vm) == 0); },
        [](CVm &c, const Outcome &o) {
            if (!o.ok) {
                ASSERT_EQ(vm_create_default_irq_controller(&c.vm), 0)
                    << "after the failure: " << guestvm_last_error();
            }
            EXPECT_EQ(vm_inject_irq(c.vm.vcpus[0], 5), 0) << guestvm_last_error();
            c_runs_tiny(c);
        });
}

TEST(FailureInjection, CVmCreateDefaultIrqController) {
    GUESTVM_REQUIRE_KVM(host);
    auto calls =
        walk([] { return c_vm(kRam, 0); },
             [](CVm &c) { return c_outcome(vm_create_default_irq_controller(&c.vm) == 0); },
             [](CVm &c, const Outcome &o) {
                 if (!o.ok) {
                     ASSERT_EQ(vm_create_default_irq_controller(&c.vm), 0)
                         << "after the failure: " << guestvm_last_error();
                 }
                 c_runs_tiny(c);
             });
    // No KVM_CREATE_PIT2: the C API leaves the PIT to the VMM.
    EXPECT_EQ(calls, (std::vector<std::string>{"KVM_CREATE_IRQCHIP"}));
}

TEST(FailureInjection, CVmRegisterIrq) {
    GUESTVM_REQUIRE_KVM(host);
    walk([] { return c_vm(kRam, 1, true); },
         [](CVm &c) {
             return c_outcome(vm_register_irq(c.vm.vcpus[0], 5, count_ack, nullptr) == 0);
         },
         [](CVm &c, const Outcome &o) {
             if (!o.ok) {
                 ASSERT_EQ(vm_register_irq(c.vm.vcpus[0], 5, count_ack, nullptr), 0)
                     << guestvm_last_error();
             }
             c_runs_tiny(c);
         });
}

memory_fault_result_t ignore_fault(vm_t *, vm_vcpu_t *, uintptr_t, size_t, void *) {
    return FAULT_HANDLED;
}

TEST(FailureInjection, CVmMapReservationFrames) {
    GUESTVM_REQUIRE_KVM(host);
    struct Ctx {
        std::unique_ptr<CVm> c;
        vm_memory_reservation_t *r = nullptr;
        std::vector<seL4_CPtr> frames;
        ~Ctx() {
            c.reset();
            for (seL4_CPtr f : frames) EXPECT_EQ(guestvm_frame_free(f), 0);
        }
    };
    walk(
        [] {
            auto x = std::make_unique<Ctx>();
            x->c = c_vm(kRam, 1);
            {
                Injection none(Rule::count(Match{}));
                x->r = vm_reserve_memory_at(&x->c->vm, kExtraGpa, 8192, ignore_fault, nullptr);
                EXPECT_EQ(none.seen(), 0u) << "vm_reserve_memory_at: " << joined(none.calls());
            }
            EXPECT_NE(x->r, nullptr) << guestvm_last_error();
            for (int i = 0; i < 2; ++i) x->frames.push_back(guestvm_frame_alloc(12));
            return x;
        },
        [](Ctx &x) {
            return c_outcome(vm_map_reservation_frames(&x.c->vm, x.r, x.frames.data(), 2, 12) == 0);
        },
        [](Ctx &x, const Outcome &o) {
            if (!o.ok) {
                ASSERT_EQ(vm_map_reservation_frames(&x.c->vm, x.r, x.frames.data(), 2, 12), 0)
                    << "after the failure: " << guestvm_last_error();
            }
            std::uint64_t host = 0;
            EXPECT_EQ(guestvm_vspace_translate(&x.c->vm.mem.vm_vspace, kExtraGpa, 8192, &host), 0)
                << guestvm_last_error();
            c_runs_tiny(*x.c);
        });
}

TEST(FailureInjection, CNotifyAndLoadMakeNoKvmCall) {
    GUESTVM_REQUIRE_KVM(host);
    auto c = c_vm(kRam, 0);
    Injection count(Rule::count(Match{}));
    EXPECT_EQ(guestvm_vm_load_elf(&c->vm, test::guest_path("tiny").c_str()), 0);
    EXPECT_EQ(guestvm_vm_notify(&c->vm, 1), 0) << guestvm_last_error();
    EXPECT_EQ(count.seen(), 0u) << joined(count.calls());
}

// ---- the run loop ----

TEST(FailureInjection, KvmRunFailureStopsTheVmWithAnError) {
    GUESTVM_REQUIRE_KVM(host);
    auto c = cpp_vm(1, false);
    Rule rule = Rule::fail_every(Match{kvm::fault::Op::kIoctl, KVM_RUN}, EFAULT);
    rule.all_threads = true;  // KVM_RUN is made on the vCPU's thread
    Injection inject(rule);
    ASSERT_TRUE(c->vm->start_core(0, c->entry, 0));
    StopInfo info = c->vm->run();
    EXPECT_EQ(info.reason, StopReason::kError) << info.message;
    EXPECT_NE(info.message.find("KVM_RUN"), std::string::npos) << info.message;
    EXPECT_NE(info.message.find("EFAULT"), std::string::npos) << info.message;
    EXPECT_GE(inject.failed(), 1u);
}

}  // namespace
}  // namespace guestvm
