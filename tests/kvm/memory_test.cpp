// Guest and VMM address spaces with real guests: patterns both ways, read-only RAM,
// reservations served by handlers (C++ and libsel4vm's C callbacks), unowned memory, views,
// and every refusal.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>

#include "kvm_fixture.hpp"
#include "sel4vm/boot.h"
#include "sel4vm/guest_memory.h"
#include "sel4vm/guest_memory_helpers.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guest_vcpu_fault.h"
#include "sel4vm/guest_vm_exits.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

using test::Capture;

StopInfo start_and_run(Vm &vm, std::uint64_t entry) {
    EXPECT_TRUE(vm.start_core(0, entry, 0));
    return vm.run();
}

TEST(Memory, PatternsTravelBothWays) {
    GUESTVM_REQUIRE_KVM(host);
    Capture out;
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "mem_pattern", 1, &out, &entry, 8 << 20);
    ASSERT_TRUE(vm);
    std::vector<std::uint8_t> in(4096);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::uint8_t>(i ^ 0x5a);
    ASSERT_TRUE(vm->vspace().write(GuestPhysAddr(0x300000), in));
    EXPECT_EQ(start_and_run(*vm, entry).reason, StopReason::kPowerOff);
    unsigned long sum = std::accumulate(in.begin(), in.end(), 0ul);
    EXPECT_TRUE(out.contains(fmt::format("sum {:#010x}", sum))) << out.text();
    std::vector<std::uint8_t> got(8192);
    ASSERT_TRUE(vm->vspace().read(GuestPhysAddr(0x200000), got));
    for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i], static_cast<std::uint8_t>(i * 7 + 3)) << "byte " << i;
    }
    // The same bytes through a VMM view of the guest's memory.
    auto view = vm->vmm_vspace().map_view(GuestPhysAddr(0x200000), 8192, false, "check");
    ASSERT_TRUE(view) << view.error().message();
    EXPECT_EQ(std::memcmp(reinterpret_cast<const void *>(view->value()), got.data(), got.size()),
              0);
    EXPECT_EQ(vm->vmm_vspace().to_guest(HostVirtAddr(view->value() + 100))->value(),
              0x200000u + 100);
    ASSERT_TRUE(vm->vmm_vspace().unmap_view(*view));
}

TEST(Memory, GuestWritesToReadOnlyRamReachTheHandlerAndChangeNothing) {
    GUESTVM_REQUIRE_KVM(host);
    Capture out;
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "ro_write", 1, &out, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    struct Seen {
        std::uint64_t addr, data;
        unsigned size;
    };
    std::mutex mu;
    std::vector<Seen> seen;
    ASSERT_TRUE(vm->vspace().add_readonly_ram(GuestPhysAddr(0x400000), 0x1000, "rom",
                                              [&](ExitContext &, MmioAccess &a) {
                                                  std::uint64_t v = 0;
                                                  std::memcpy(&v, a.data.data(), a.data.size());
                                                  std::lock_guard lock(mu);
                                                  seen.push_back({a.addr, v, a.size});
                                                  EXPECT_TRUE(a.is_write);
                                                  return ExitAction::kContinue;
                                              }));
    std::vector<std::uint8_t> fill(0x1000, 0xa5);
    ASSERT_TRUE(vm->vspace().write(GuestPhysAddr(0x400000), fill));  // the VMM may write it
    EXPECT_EQ(start_and_run(*vm, entry).reason, StopReason::kPowerOff);
    EXPECT_TRUE(out.contains("ro read 0xa5a5a5a5a5a5a5a5")) << out.text();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].addr, 0x400010u);
    EXPECT_EQ(seen[0].size, 4u);
    EXPECT_EQ(seen[0].data, 0x11223344u);
    EXPECT_EQ(seen[1].addr, 0x400020u);
    EXPECT_EQ(seen[1].size, 1u);
    EXPECT_EQ(seen[1].data, 0x77u);
    std::vector<std::uint8_t> after(0x1000);
    ASSERT_TRUE(vm->vspace().read(GuestPhysAddr(0x400000), after));
    EXPECT_EQ(after, fill);
}

// A tiny register file: 64 bytes of storage plus an id register at +0x100.
struct Device {
    std::mutex mu;
    std::uint8_t regs[64] = {};
    std::vector<std::pair<unsigned, bool>> accesses;  // size, is_write
    ExitAction serve(MmioAccess &a) {
        std::lock_guard lock(mu);
        accesses.emplace_back(a.size, a.is_write);
        std::uint64_t off = a.addr - 0xd0000000;
        if (off == 0x100 && !a.is_write) {
            const std::uint32_t id = 0x67756573;
            std::memcpy(a.data.data(), &id, std::min<std::size_t>(4, a.data.size()));
            return ExitAction::kContinue;
        }
        if (off + a.size > sizeof regs) return ExitAction::kError;
        if (a.is_write)
            std::memcpy(regs + off, a.data.data(), a.size);
        else
            std::memcpy(a.data.data(), regs + off, a.size);
        return ExitAction::kContinue;
    }
};

TEST(Memory, ReservationHandlerServesEveryWidthBothWays) {
    GUESTVM_REQUIRE_KVM(host);
    Capture out;
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "mmio_dev", 1, &out, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    Device dev;
    ASSERT_TRUE(vm->vspace().reserve(GuestPhysAddr(0xd0000000), 0x1000, "dev",
                                     [&](ExitContext &, MmioAccess &a) { return dev.serve(a); }));
    EXPECT_EQ(start_and_run(*vm, entry).reason, StopReason::kPowerOff);
    EXPECT_TRUE(out.contains("mmio: 0xab 0xcdef 0x12345678 0x1122334455667788 id 0x67756573"))
        << out.text();
    std::vector<std::pair<unsigned, bool>> want = {{1, true},  {2, true},  {4, true},
                                                   {8, true},  {1, false}, {2, false},
                                                   {4, false}, {8, false}, {4, false}};
    EXPECT_EQ(dev.accesses, want);
}

TEST(Memory, UnownedAccessGoesToTheUnhandledMemoryHandler) {
    GUESTVM_REQUIRE_KVM(host);
    std::uint64_t entry = 0;
    auto vm = test::make_vm(host, "mmio_touch", 1, nullptr, &entry, 4 << 20);
    ASSERT_TRUE(vm);
    std::atomic<std::uint64_t> fault_addr{0}, reported{0};
    ASSERT_TRUE(vm->set_unhandled_memory_handler([&](ExitContext &, MmioAccess &a) {
        fault_addr = a.addr;
        EXPECT_FALSE(a.is_write);
        EXPECT_EQ(a.size, 8);
        const std::uint64_t v = 0xfeedfacecafebeef;
        std::memcpy(a.data.data(), &v, 8);
        return ExitAction::kContinue;
    }));
    ASSERT_TRUE(vm->add_io_handler(0x511, 4, "report", [&](ExitContext &, IoAccess &a) {
        std::uint32_t v = 0;
        std::memcpy(&v, a.data.data(), 4);
        reported = v;
        return ExitAction::kContinue;
    }));
    EXPECT_EQ(start_and_run(*vm, entry).reason, StopReason::kPowerOff);
    EXPECT_EQ(fault_addr.load(), 0xd0000000u);
    EXPECT_EQ(reported.load(), 0xcafebeefu);
}

TEST(Memory, RefusesOverlapsCrossingsAndStrangers) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = build_machine(host, test::config("refusals", 4 << 20));
    ASSERT_TRUE(vm);
    GuestVSpace &vs = (*vm)->vspace();
    auto handler = [](ExitContext &, MmioAccess &) { return ExitAction::kContinue; };
    EXPECT_EQ(vs.add_ram(GuestPhysAddr(0x3ff000), 0x2000, "x").error().code(),
              Errc::kAlreadyExists);
    EXPECT_EQ(vs.add_ram(GuestPhysAddr(0x1000), 0x1000, "x").error().code(), Errc::kAlreadyExists);
    EXPECT_EQ(vs.add_ram(GuestPhysAddr(0x800001), 0x1000, "x").error().code(),
              Errc::kInvalidArgument);
    EXPECT_EQ(vs.add_ram(GuestPhysAddr(0x800000), 0x1001, "x").error().code(),
              Errc::kInvalidArgument);
    EXPECT_EQ(vs.add_ram(GuestPhysAddr(~0ull & ~0xfffull), 0x2000, "x").error().code(),
              Errc::kInvalidArgument);
    ASSERT_TRUE(vs.reserve(GuestPhysAddr(0x800000), 0x1000, "dev", handler));
    EXPECT_EQ(vs.reserve(GuestPhysAddr(0x800000), 0x1000, "dev2", handler).error().code(),
              Errc::kAlreadyExists);
    EXPECT_EQ(vs.add_ram(GuestPhysAddr(0x7ff000), 0x2000, "x").error().code(),
              Errc::kAlreadyExists);
    EXPECT_EQ(vs.reserve(GuestPhysAddr(0x0), 0x1000, "on-ram", handler).error().code(),
              Errc::kAlreadyExists);
    EXPECT_EQ(vs.reserve(GuestPhysAddr(0x900000), 0x1000, "null", nullptr).error().code(),
              Errc::kInvalidArgument);
    // Ranges crossing a region's end, translations outside any region.
    std::uint8_t buf[16] = {};
    EXPECT_EQ(vs.read(GuestPhysAddr((4 << 20) - 8), buf).error().code(), Errc::kNotFound);
    EXPECT_EQ(vs.write(GuestPhysAddr((4 << 20) - 8), buf).error().code(), Errc::kNotFound);
    EXPECT_EQ(vs.translate(GuestPhysAddr(4 << 20)).error().code(), Errc::kNotFound);
    EXPECT_EQ(vs.translate(GuestPhysAddr(0x800000)).error().code(),
              Errc::kNotFound);  // reservation
    EXPECT_EQ(vs.copy(GuestPhysAddr(0x1000), GuestPhysAddr((4 << 20) - 8), 16).error().code(),
              Errc::kNotFound);
    EXPECT_TRUE(vs.copy(GuestPhysAddr(0x200000), GuestPhysAddr(0x100000), 4096));
    EXPECT_TRUE(vs.read(GuestPhysAddr((4 << 20) - 16), buf));
    EXPECT_EQ(vs.remove(GuestPhysAddr(0x123000)).error().code(), Errc::kNotFound);
    EXPECT_EQ(
        (*vm)->vmm_vspace().map_view(GuestPhysAddr(0x800000), 0x1000, true, "v").error().code(),
        Errc::kNotFound);
    EXPECT_EQ((*vm)->vmm_vspace().map_view(GuestPhysAddr(0x1001), 0x1000, true, "v").error().code(),
              Errc::kInvalidArgument);
    EXPECT_EQ((*vm)->vmm_vspace().unmap_view(HostVirtAddr(0x1000)).error().code(), Errc::kNotFound);
    EXPECT_EQ((*vm)->vmm_vspace().to_guest(HostVirtAddr(0x1000)).error().code(), Errc::kNotFound);
}

TEST(Memory, AnywhereRemoveViewsAndSlotReuse) {
    GUESTVM_REQUIRE_KVM(host);
    auto vm = build_machine(host, test::config("places", 4 << 20));
    ASSERT_TRUE(vm);
    GuestVSpace &vs = (*vm)->vspace();
    auto a = vs.add_ram_anywhere(0x2000, "a");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->value(), 4u << 20);  // the first free page at or above 1 MiB: after RAM at 0
    auto hole = vs.add_ram_anywhere(0x2000, "b", 4096, GuestPhysAddr((3ull << 30) - 0x1000));
    ASSERT_TRUE(hole);
    EXPECT_EQ(hole->value(), 4ull << 30);  // skipped the MMIO hole
    // A view writes through to the guest; removal waits until the view is gone.
    auto view = (*vm)->vmm_vspace().map_view(*a, 0x2000, true, "v");
    ASSERT_TRUE(view);
    std::memcpy(reinterpret_cast<void *>(view->value() + 0x1000), "hello", 6);
    char back[6] = {};
    ASSERT_TRUE(
        vs.read(GuestPhysAddr(a->value() + 0x1000), {reinterpret_cast<std::uint8_t *>(back), 6}));
    EXPECT_STREQ(back, "hello");
    EXPECT_EQ(vs.remove(*a).error().code(), Errc::kBadState);
    ASSERT_TRUE((*vm)->vmm_vspace().unmap_view(*view));
    const auto slots_before = vs.regions().size();
    ASSERT_TRUE(vs.remove(*a));
    EXPECT_EQ(vs.regions().size(), slots_before - 1);
    EXPECT_FALSE(vs.find(*a));
    EXPECT_FALSE((*vm)->vmm_vspace().find(*view));
    // Many add/remove cycles reuse slots instead of running out.
    for (int i = 0; i < 200; ++i) {
        auto r = vs.add_ram_anywhere(0x1000, "cycle");
        ASSERT_TRUE(r) << r.error().message();
        ASSERT_TRUE(vs.remove(*r));
    }
}

std::size_t memfd_mappings() {
    std::ifstream maps("/proc/self/maps");
    std::size_t n = 0;
    for (std::string line; std::getline(maps, line);)
        n += line.find("/memfd:") != std::string::npos;
    return n;
}

std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] auto &e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

TEST(Memory, EveryMappingAndDescriptorGoesAwayWithTheVm) {
    GUESTVM_REQUIRE_KVM(host);
    const std::size_t maps_before = memfd_mappings(), fds_before = open_fds();
    for (int round = 0; round < 3; ++round) {
        auto vm = build_machine(host, test::config("leak", 8 << 20, 2));
        ASSERT_TRUE(vm);
        auto extra = (*vm)->vspace().add_ram_anywhere(1 << 20, "extra");
        ASSERT_TRUE(extra);
        ASSERT_TRUE((*vm)->vspace().add_readonly_ram(GuestPhysAddr(0x40000000), 0x10000, "rom"));
        ASSERT_TRUE((*vm)->vmm_vspace().map_view(*extra, 0x10000, true, "v1"));
        ASSERT_TRUE((*vm)->vmm_vspace().map_view(GuestPhysAddr(0x100000), 0x1000, false, "v2"));
        EXPECT_GT(memfd_mappings(), maps_before);
        EXPECT_EQ((*vm)->vmm_vspace().mappings().size(), 5u);  // 3 backings + 2 views
    }  // views left mapped on purpose: the VM's destruction must unmap them
    EXPECT_EQ(memfd_mappings(), maps_before);
    EXPECT_EQ(open_fds(), fds_before);
}

// ---- the same through libsel4vm's C names ----

struct CDevice {
    std::uint64_t last_write = 0;
    int calls = 0;
};

memory_fault_result_t c_device(vm_t *, vm_vcpu_t *vcpu, uintptr_t addr, size_t len, void *cookie) {
    auto *dev = static_cast<CDevice *>(cookie);
    ++dev->calls;
    if (get_vcpu_fault_address(vcpu) != addr || get_vcpu_fault_size(vcpu) != len)
        return FAULT_ERROR;
    if (get_vcpu_fault_ip(vcpu) < 0x100000) return FAULT_ERROR;
    std::uint64_t off = addr - 0xd0000000;
    if (is_vcpu_read_fault(vcpu)) {
        // Reads return what was last written there (masked to the width), id at +0x100.
        set_vcpu_fault_data(vcpu, off == 0x100 ? 0x67756573 : dev->last_write >> (8 * (off % 8)));
        if (off != 0x100) emulate_vcpu_fault(vcpu, get_vcpu_fault_data(vcpu));
    } else {
        dev->last_write = emulate_vcpu_fault(vcpu, 0) << (8 * (off % 8));
        if (get_vcpu_fault_data(vcpu) !=
            (get_vcpu_fault_data(vcpu) & get_vcpu_fault_data_mask(vcpu)))
            return FAULT_ERROR;
    }
    advance_vcpu_fault(vcpu);
    return FAULT_HANDLED;
}

struct CVmHolder {
    vm_t vm{};
    ~CVmHolder() {
        if (vm.guestvm) vm_destroy(&vm);
    }
};

TEST(MemoryCApi, TouchReservationsAndFaultAccessors) {
    GUESTVM_REQUIRE_KVM(host);
    auto holder = std::make_unique<CVmHolder>();
    vm_t *vm = &holder->vm;
    std::string serial;
    guestvm_vm_options_t opts{};
    opts.ram_bytes = 8u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    opts.serial = [](int, const char *b, size_t n, void *cookie) {
        static_cast<std::string *>(cookie)->append(b, n);
    };
    opts.serial_cookie = &serial;
    ASSERT_EQ(guestvm_vm_init(vm, "c-mem", &opts), 0) << guestvm_last_error();
    ASSERT_EQ(guestvm_vm_load_elf(vm, test::guest_path("mem_pattern").c_str()), 0);
    // vm_ram_touch in the VMM→guest direction, across a page boundary.
    std::vector<std::uint8_t> in(4096);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::uint8_t>(i * 13);
    ASSERT_EQ(vm_ram_touch(vm, 0x300000, 2048, vm_guest_ram_write_callback, in.data()), 0);
    ASSERT_EQ(vm_ram_touch(vm, 0x300800, 2048, vm_guest_ram_write_callback, in.data() + 2048), 0);
    EXPECT_EQ(vm_ram_touch(vm, (8u << 20) - 16, 32, vm_guest_ram_read_callback, in.data()), -1);
    EXPECT_EQ(vm_ram_touch(vm, 0x300000, 16, nullptr, in.data()), -1);
    vm_vcpu_t *v = vm_create_vcpu(vm, 10);
    ASSERT_NE(v, nullptr);
    ASSERT_EQ(vcpu_start(v), 0);
    EXPECT_EQ(vm_run(vm), 0) << guestvm_last_error();
    EXPECT_NE(serial.find(fmt::format("sum {:#010x}", std::accumulate(in.begin(), in.end(), 0ul))),
              std::string::npos)
        << serial;
    // ...and guest→VMM, read back page by page.
    std::vector<std::uint8_t> got(8192);
    ASSERT_EQ(vm_ram_touch(vm, 0x200000, got.size(), vm_guest_ram_read_callback, got.data()), 0);
    for (std::size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], static_cast<std::uint8_t>(i * 7 + 3));
    // Fault accessors outside a fault answer nothing.
    EXPECT_EQ(get_vcpu_fault_address(v), 0u);
    EXPECT_FALSE(is_vcpu_read_fault(v));
    EXPECT_EQ(set_vcpu_fault_data(v, 1), -1);
    // RAM anywhere; a second VM for the device.
    uintptr_t extra = vm_ram_register(vm, 5000);
    EXPECT_GE(extra, 1u << 20);
    EXPECT_EQ(vm_ram_register(vm, 0), 0u);
    EXPECT_EQ(vm_ram_register(nullptr, 4096), 0u);

    auto holder2 = std::make_unique<CVmHolder>();
    vm_t *vm2 = &holder2->vm;
    serial.clear();
    ASSERT_EQ(guestvm_vm_init(vm2, "c-dev", &opts), 0);
    ASSERT_EQ(guestvm_vm_load_elf(vm2, test::guest_path("mmio_dev").c_str()), 0);
    CDevice dev;
    vm_memory_reservation_t *res = vm_reserve_memory_at(vm2, 0xd0000000, 0x1000, c_device, &dev);
    ASSERT_NE(res, nullptr) << guestvm_last_error();
    EXPECT_EQ(vm_reserve_memory_at(vm2, 0xd0000000, 0x1000, c_device, &dev), nullptr);  // overlap
    EXPECT_EQ(vm_reserve_memory_at(vm2, 0x1000, 0x1000, c_device, &dev), nullptr);      // on RAM
    uintptr_t at = 0;
    size_t size = 0;
    vm_get_reservation_memory_region(res, &at, &size);
    EXPECT_EQ(at, 0xd0000000u);
    EXPECT_EQ(size, 0x1000u);
    ASSERT_NE(vm_create_vcpu(vm2, 10), nullptr);
    ASSERT_EQ(vcpu_start(vm2->vcpus[0]), 0);
    EXPECT_EQ(vm_run(vm2), 0) << guestvm_last_error();
    EXPECT_EQ(dev.calls, 9);
    EXPECT_NE(serial.find("id 0x67756573"), std::string::npos) << serial;
    EXPECT_NE(serial.find("0x1122334455667788"), std::string::npos) << serial;
    EXPECT_EQ(vm_free_reserved_memory(vm2, res), 0);
    EXPECT_EQ(vm_free_reserved_memory(vm2, res), -1);
}

memory_fault_result_t c_unhandled(vm_t *, vm_vcpu_t *vcpu, uintptr_t addr, size_t, void *cookie) {
    *static_cast<uintptr_t *>(cookie) = addr;
    set_vcpu_fault_data(vcpu, 0x0123456789abcdefull);
    return FAULT_HANDLED;
}

TEST(MemoryCApi, UnhandledCallbackAndDefaultError) {
    GUESTVM_REQUIRE_KVM(host);
    for (bool with_error_callback : {false, true}) {
        auto holder = std::make_unique<CVmHolder>();
        vm_t *vm = &holder->vm;
        guestvm_vm_options_t opts{};
        opts.ram_bytes = 4u << 20;
        opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
        ASSERT_EQ(guestvm_vm_init(vm, "c-unowned", &opts), 0);
        ASSERT_EQ(guestvm_vm_load_elf(vm, test::guest_path("mmio_touch").c_str()), 0);
        uintptr_t seen = 0;
        ASSERT_EQ(vm_register_unhandled_mem_fault_callback(
                      vm, with_error_callback ? default_error_fault_callback : c_unhandled, &seen),
                  0);
        EXPECT_EQ(vm->mem.unhandled_mem_fault_cookie, &seen);
        // Port 0x511 (the guest's report) is nobody's: as in libsel4vm, the write is ignored.
        ASSERT_NE(vm_create_vcpu(vm, 10), nullptr);
        ASSERT_EQ(vcpu_start(vm->vcpus[0]), 0);
        int r = vm_run(vm);
        char why[256];
        guestvm_vm_stop_reason(vm, why, sizeof why);
        if (with_error_callback) {
            EXPECT_EQ(r, -1);
            EXPECT_EQ(vm->run.exit_reason, VM_GUEST_ERROR_EXIT);
            EXPECT_NE(std::string(why).find("0xd0000000"), std::string::npos) << why;
        } else {
            EXPECT_EQ(r, 0) << why;
            EXPECT_EQ(seen, 0xd0000000u);
        }
    }
}

}  // namespace
}  // namespace guestvm
