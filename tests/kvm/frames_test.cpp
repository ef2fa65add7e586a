// Frames and anonymous memory through libsel4vm's C API: frames (guestvm_frame_*) mapped into
// reservations with vm_map_reservation / vm_map_reservation_frames, read-only frames whose
// guest writes still reach the reservation's callback, anonymous pools, and RAM from custom
// iterators. The frames32 guest reads and writes all of it and reports through port 0x524.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "guestvm/frame.hpp"
#include "kvm_fixture.hpp"
#include "sel4vm/arch/guest_x86_context.h"
#include "sel4vm/arch/ioports.h"
#include "sel4vm/arch/vmcs_fields.h"
#include "sel4vm/boot.h"
#include "sel4vm/guest_memory.h"
#include "sel4vm/guest_ram.h"
#include "sel4vm/guest_vcpu_fault.h"
#include "sel4vm/guest_vm_util.h"
#include "sel4vm/guestvm.h"

namespace guestvm {
namespace {

std::uint32_t word_at(seL4_CPtr frame, std::size_t offset) {
    std::uint32_t v = 0;
    std::memcpy(&v, static_cast<std::uint8_t *>(guestvm_frame_data(frame, nullptr)) + offset, 4);
    return v;
}
void put_word(seL4_CPtr frame, std::size_t offset, std::uint32_t v) {
    std::memcpy(static_cast<std::uint8_t *>(guestvm_frame_data(frame, nullptr)) + offset, &v, 4);
}

struct Access {
    uintptr_t addr;
    size_t size;
    bool read;
    seL4_Word data;
};

memory_fault_result_t record(vm_t *, vm_vcpu_t *vcpu, uintptr_t addr, size_t len, void *cookie) {
    auto *log = static_cast<std::vector<Access> *>(cookie);
    const bool read = is_vcpu_read_fault(vcpu);
    log->push_back({addr, len, read, read ? 0 : get_vcpu_fault_data(vcpu)});
    if (read) set_vcpu_fault_data(vcpu, 0x13579bdf);
    return FAULT_HANDLED;
}

ioport_fault_result_t echo_out(vm_vcpu_t *, void *cookie, unsigned int, unsigned int size,
                               unsigned int value) {
    if (size == 4) static_cast<std::vector<std::uint32_t> *>(cookie)->push_back(value);
    return IO_FAULT_HANDLED;
}

vm_frame_t read_only_frame(uintptr_t addr, void *cookie) {
    return vm_frame_t{*static_cast<seL4_CPtr *>(cookie), seL4_CanRead, addr, 12};
}

TEST(Frames, AllocateReadWriteAndFree) {
    GUESTVM_REQUIRE_KVM(host);
    seL4_CPtr small = guestvm_frame_alloc(12);
    ASSERT_NE(small, seL4_CapNull) << guestvm_last_error();
    size_t size = 0;
    auto *bytes = static_cast<std::uint8_t *>(guestvm_frame_data(small, &size));
    ASSERT_NE(bytes, nullptr);
    EXPECT_EQ(size, 4096u);
    EXPECT_EQ(std::count(bytes, bytes + size, 0), 4096);  // zeroed
    seL4_CPtr large = guestvm_frame_alloc(21);
    ASSERT_NE(large, seL4_CapNull);
    EXPECT_NE(guestvm_frame_data(large, &size), nullptr);
    EXPECT_EQ(size, 2u << 20);
    for (size_t bad : {0u, 11u, 13u, 20u, 64u, 1000u}) {
        EXPECT_EQ(guestvm_frame_alloc(bad), seL4_CapNull) << bad;
    }
    EXPECT_EQ(guestvm_frame_data(seL4_CapNull, &size), nullptr);
    EXPECT_EQ(guestvm_frame_free(seL4_CapNull), -1);
    EXPECT_EQ(guestvm_frame_free(small), 0);
    EXPECT_EQ(guestvm_frame_data(small, nullptr), nullptr);  // a deleted capability
    EXPECT_EQ(guestvm_frame_free(small), -1);
    EXPECT_EQ(guestvm_frame_free(large), 0);
    // A capability to something else is not a frame.
    vm_t vm{};
    vspace_t none{};
    ASSERT_EQ(vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "not-a-frame"), 0);
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    ASSERT_NE(vcpu, nullptr);
    EXPECT_EQ(guestvm_frame_data(vm_get_vcpu_tcb(vcpu), nullptr), nullptr);
    EXPECT_NE(std::string(guestvm_last_error()).find("TCB"), std::string::npos);
    EXPECT_EQ(guestvm_frame_free(vm_get_vcpu_tcb(vcpu)), -1);
    EXPECT_EQ(vm_destroy(&vm), 0);
}

TEST(Frames, TheGuestUsesMappedFramesReadOnlyFramesAndAnonymousReservations) {
    GUESTVM_REQUIRE_KVM(host);
    std::ifstream in(std::string(GUESTVM_GUEST_DIR) + "/frames32.bin", std::ios::binary);
    std::vector<char> image((std::istreambuf_iterator<char>(in)), {});
    ASSERT_FALSE(image.empty());

    vm_t vm{};
    vspace_t none{};
    ASSERT_EQ(vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "frames"), 0);
    ASSERT_EQ(guestvm_vm_add_platform_call(&vm), 0) << guestvm_last_error();  // SYSTEM_OFF
    ASSERT_EQ(vm_ram_register_at(&vm, 0, 2 << 20, false), 0);
    ASSERT_EQ(vm_ram_touch(&vm, 0x100000, image.size(), vm_guest_ram_write_callback, image.data()),
              0);

    // Two writable frames behind a reservation whose callback must never run once mapped.
    std::vector<Access> rw_faults, ro_faults, anon_faults;
    vm_memory_reservation_t *rw = vm_reserve_memory_at(&vm, 0xd0000000, 0x2000, record, &rw_faults);
    ASSERT_NE(rw, nullptr);
    seL4_CPtr pair[2] = {guestvm_frame_alloc(12), guestvm_frame_alloc(12)};
    put_word(pair[0], 0, 0x600dcafe);
    put_word(pair[0], 0xffc, 0xa5a5a5a5);
    ASSERT_EQ(vm_map_reservation_frames(&vm, rw, pair, 2, 12), 0) << guestvm_last_error();
    EXPECT_EQ(vm_map_reservation_frames(&vm, rw, pair, 2, 12), -1);  // mapped already
    // One read-only frame: the guest reads it; its write goes to the callback instead.
    vm_memory_reservation_t *ro = vm_reserve_memory_at(&vm, 0xd0100000, 0x1000, record, &ro_faults);
    ASSERT_NE(ro, nullptr);
    seL4_CPtr rom = guestvm_frame_alloc(12);
    put_word(rom, 0, 0x0badf00d);
    ASSERT_EQ(vm_map_reservation(&vm, ro, read_only_frame, &rom), 0) << guestvm_last_error();
    // An anonymous pool and a reservation placed in it, aligned to 64 KiB.
    ASSERT_EQ(vm_memory_make_anon(&vm, 0xe0000000, 1 << 20), 0) << guestvm_last_error();
    uintptr_t anon_at = 0;
    vm_memory_reservation_t *anon =
        vm_reserve_anon_memory(&vm, 100, 0x10000, record, &anon_faults, &anon_at);
    ASSERT_NE(anon, nullptr) << guestvm_last_error();
    EXPECT_EQ(anon_at, 0xe0000000u);
    uintptr_t where = 0;
    size_t how_big = 0;
    vm_get_reservation_memory_region(anon, &where, &how_big);
    EXPECT_EQ(where, anon_at);
    EXPECT_EQ(how_big, 4096u);  // rounded up to a page

    std::vector<std::uint32_t> echoed;
    vm_ioport_interface_t port{&echoed, nullptr, echo_out, "echo"};
    ASSERT_EQ(vm_io_port_add_handler(&vm, vm_ioport_range_t{0x524, 0x527}, port), 0);
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    ASSERT_NE(vcpu, nullptr);
    ASSERT_EQ(vm_set_vmcs_field(vcpu, VMX_GUEST_RIP, 0x100000), 0);
    ASSERT_EQ(vm_set_vmcs_field(vcpu, VMX_GUEST_RSP, 0x1ff000), 0);
    ASSERT_EQ(vm_set_thread_context_reg(vcpu, VCPU_CONTEXT_EBX, 0xd0000000), 0);
    ASSERT_EQ(vm_set_thread_context_reg(vcpu, VCPU_CONTEXT_ECX, 0xd0100000), 0);
    ASSERT_EQ(vm_set_thread_context_reg(vcpu, VCPU_CONTEXT_ESI, anon_at), 0);
    ASSERT_EQ(vcpu_start(vcpu), 0);
    EXPECT_EQ(vm_run(&vm), 0) << guestvm_last_error();

    const std::vector<std::uint32_t> want{0x600dcafe, 0xa5a5a5a5, 0x0badf00d,
                                          0x0badf00d, 0x13579bdf, 0xcafef00d};
    EXPECT_EQ(echoed, want);
    EXPECT_EQ(word_at(pair[1], 0), 0xcafef00du);  // the guest's write, seen through the frame
    EXPECT_TRUE(rw_faults.empty());               // mapped memory never faults
    ASSERT_EQ(ro_faults.size(), 1u);
    EXPECT_EQ(ro_faults[0].addr, 0xd0100000u);
    EXPECT_EQ(ro_faults[0].size, 4u);
    EXPECT_FALSE(ro_faults[0].read);
    EXPECT_EQ(ro_faults[0].data, 0x12345678u);
    EXPECT_EQ(word_at(rom, 0), 0x0badf00du);  // not changed by the refused write
    ASSERT_EQ(anon_faults.size(), 2u);
    EXPECT_EQ(anon_faults[0].addr, anon_at + 8);
    EXPECT_TRUE(anon_faults[0].read);
    EXPECT_EQ(anon_faults[1].addr, anon_at + 4);
    EXPECT_EQ(anon_faults[1].size, 2u);
    EXPECT_EQ(anon_faults[1].data, 0x55aau);

    // Unmapping keeps the frames (and their contents); the VM can go and they stay.
    EXPECT_EQ(vm_free_reserved_memory(&vm, rw), 0);
    EXPECT_EQ(vm_free_reserved_memory(&vm, ro), 0);
    EXPECT_EQ(vm_free_reserved_memory(&vm, anon), 0);
    EXPECT_EQ(vm_destroy(&vm), 0);
    EXPECT_EQ(word_at(pair[1], 0), 0xcafef00du);
    for (seL4_CPtr f : {pair[0], pair[1], rom}) EXPECT_EQ(guestvm_frame_free(f), 0);
}

struct Iter {
    std::vector<vm_frame_t> frames;
};
vm_frame_t from_list(uintptr_t addr, void *cookie) {
    for (const vm_frame_t &f : static_cast<Iter *>(cookie)->frames) {
        if (f.vaddr == addr) return f;
    }
    return vm_frame_t{};
}

TEST(Frames, MappingMisuseIsRefusedAndLeavesTheReservationUsable) {
    GUESTVM_REQUIRE_KVM(host);
    vm_t vm{};
    vspace_t none{};
    ASSERT_EQ(vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "map-misuse"), 0);
    std::vector<Access> faults;
    vm_memory_reservation_t *r = vm_reserve_memory_at(&vm, 0xd0000000, 0x2000, record, &faults);
    ASSERT_NE(r, nullptr);
    seL4_CPtr a = guestvm_frame_alloc(12), b = guestvm_frame_alloc(12),
              big = guestvm_frame_alloc(21);
    seL4_CPtr gone = guestvm_frame_alloc(12);
    ASSERT_EQ(guestvm_frame_free(gone), 0);
    seL4_CPtr two[2] = {a, b};

    EXPECT_EQ(vm_map_reservation(nullptr, r, from_list, nullptr), -1);
    EXPECT_EQ(vm_map_reservation(&vm, nullptr, from_list, nullptr), -1);
    EXPECT_EQ(vm_map_reservation(&vm, r, nullptr, nullptr), -1);
    EXPECT_EQ(vm_map_reservation_frames(&vm, r, nullptr, 2, 12), -1);
    EXPECT_EQ(vm_map_reservation_frames(&vm, r, two, 1, 12), -1);  // does not cover it
    EXPECT_NE(std::string(guestvm_last_error()).find("no frame"), std::string::npos);
    EXPECT_EQ(vm_map_reservation_frames(&vm, r, &big, 1, 21), -1);  // 2 MiB: too big, misaligned
    seL4_CPtr with_gone[2] = {a, gone};
    EXPECT_EQ(vm_map_reservation_frames(&vm, r, with_gone, 2, 12), -1);  // deleted capability
    Iter wrong_place{{{a, seL4_ReadWrite, 0xd0000000, 12}, {b, seL4_ReadWrite, 0xd0000000, 12}}};
    wrong_place.frames[1].vaddr = 0xd0001000;
    wrong_place.frames[1].size_bits = 21;  // not the frame's size
    EXPECT_EQ(vm_map_reservation(&vm, r, from_list, &wrong_place), -1);
    Iter mixed{{{a, seL4_ReadWrite, 0xd0000000, 12}, {b, seL4_CanRead, 0xd0001000, 12}}};
    EXPECT_EQ(vm_map_reservation(&vm, r, from_list, &mixed), -1);
    EXPECT_NE(std::string(guestvm_last_error()).find("rights differ"), std::string::npos);
    Iter write_only{{{a, seL4_CanWrite, 0xd0000000, 12}, {b, seL4_CanWrite, 0xd0001000, 12}}};
    EXPECT_EQ(vm_map_reservation(&vm, r, from_list, &write_only), -1);
    // None of that mapped anything: the reservation still faults, and maps fine now.
    std::vector<std::uint8_t> probe(4);
    EXPECT_EQ(vm_ram_touch(&vm, 0xd0000000, 4, vm_guest_ram_read_callback, probe.data()), -1);
    ASSERT_EQ(vm_map_reservation_frames(&vm, r, two, 2, 12), 0) << guestvm_last_error();
    // A mapped reservation is guest memory the VMM can touch: the frames' own bytes.
    put_word(b, 0x10, 0x31415926);
    ASSERT_EQ(vm_ram_touch(&vm, 0xd0001010, 4, vm_guest_ram_read_callback, probe.data()), 0);
    EXPECT_EQ(std::vector<std::uint8_t>(probe),
              (std::vector<std::uint8_t>{0x26, 0x59, 0x41, 0x31}));

    vm_t other{};
    ASSERT_EQ(vm_init(&other, nullptr, nullptr, none, nullptr, 0, "map-misuse-2"), 0);
    EXPECT_EQ(vm_map_reservation_frames(&other, r, two, 2, 12), -1);  // not its reservation
    EXPECT_EQ(vm_destroy(&other), 0);
    EXPECT_EQ(vm_destroy(&vm), 0);
    for (seL4_CPtr f : {a, b, big}) EXPECT_EQ(guestvm_frame_free(f), 0);
}

TEST(Frames, AnonymousPoolsPlaceReservationsAndRam) {
    GUESTVM_REQUIRE_KVM(host);
    vm_t vm{};
    vspace_t none{};
    ASSERT_EQ(vm_init(&vm, nullptr, nullptr, none, nullptr, 0, "anon"), 0);
    EXPECT_EQ(vm_memory_init(&vm), 0);
    EXPECT_EQ(vm_memory_init(nullptr), -1);
    ASSERT_EQ(vm_ram_register_at(&vm, 0, 1 << 20, false), 0);
    EXPECT_EQ(vm_memory_make_anon(nullptr, 0x40000000, 1 << 20), -1);
    EXPECT_EQ(vm_memory_make_anon(&vm, 0x40000001, 1 << 20), -1);  // misaligned
    EXPECT_EQ(vm_memory_make_anon(&vm, 0x40000000, 0), -1);
    EXPECT_EQ(vm_memory_make_anon(&vm, 0x80000, 1 << 20), -1);  // overlaps RAM
    std::vector<Access> faults;
    uintptr_t at = 0;
    // No pool yet: nothing to place a reservation in.
    EXPECT_EQ(vm_reserve_anon_memory(&vm, 4096, 4096, record, &faults, &at), nullptr);
    ASSERT_EQ(vm_memory_make_anon(&vm, 0x40000000, 0x10000), 0);
    EXPECT_EQ(vm_memory_make_anon(&vm, 0x4000f000, 0x2000), -1);  // overlaps the pool
    EXPECT_EQ(vm_reserve_memory_at(&vm, 0x40004000, 4096, record, &faults), nullptr);
    EXPECT_EQ(vm_ram_register_at(&vm, 0x4000c000, 4096, false), -1);
    EXPECT_EQ(vm_reserve_anon_memory(&vm, 4096, 4096, nullptr, &faults, &at), nullptr);
    EXPECT_EQ(vm_reserve_anon_memory(&vm, 4096, 4096, record, &faults, nullptr), nullptr);
    EXPECT_EQ(vm_reserve_anon_memory(&vm, 4096, 0x3000, record, &faults, &at), nullptr);  // not 2^n
    EXPECT_EQ(vm_reserve_anon_memory(&vm, 0x20000, 4096, record, &faults, &at), nullptr);  // room

    vm_memory_reservation_t *first = vm_reserve_anon_memory(&vm, 1, 0, record, &faults, &at);
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(at, 0x40000000u);
    vm_memory_reservation_t *second =
        vm_reserve_anon_memory(&vm, 4096, 0x8000, record, &faults, &at);
    ASSERT_NE(second, nullptr);
    EXPECT_EQ(at, 0x40008000u);  // aligned past the first
    // RAM comes from the pools once there are any (as in libsel4vm).
    uintptr_t ram = vm_ram_register(&vm, 0x2000);
    EXPECT_EQ(ram, 0x40001000u) << guestvm_last_error();
    EXPECT_EQ(vm_ram_register(&vm, 0x10000), 0u);  // no room left
    // A freed anonymous reservation goes back to its pool.
    EXPECT_EQ(vm_free_reserved_memory(&vm, first), 0);
    vm_memory_reservation_t *again = vm_reserve_anon_memory(&vm, 4096, 4096, record, &faults, &at);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(at, 0x40000000u);
    EXPECT_EQ(vm_destroy(&vm), 0);
}

TEST(Frames, RamFromACustomIteratorIsSharedBetweenVms) {
    GUESTVM_REQUIRE_KVM(host);
    vm_t a{}, b{};
    vspace_t none{};
    ASSERT_EQ(vm_init(&a, nullptr, nullptr, none, nullptr, 0, "dataport-a"), 0);
    ASSERT_EQ(vm_init(&b, nullptr, nullptr, none, nullptr, 0, "dataport-b"), 0);
    seL4_CPtr frames[2] = {guestvm_frame_alloc(12), guestvm_frame_alloc(12)};
    Iter at_a{
        {{frames[0], seL4_ReadWrite, 0x10000000, 12}, {frames[1], seL4_ReadWrite, 0x10001000, 12}}};
    Iter at_b{
        {{frames[0], seL4_ReadWrite, 0x20000000, 12}, {frames[1], seL4_ReadWrite, 0x20001000, 12}}};
    EXPECT_EQ(vm_ram_register_at_custom_iterator(nullptr, 0x10000000, 0x2000, from_list, &at_a),
              -1);
    EXPECT_EQ(vm_ram_register_at_custom_iterator(&a, 0x10000000, 0x2000, nullptr, &at_a), -1);
    // A failed mapping leaves nothing registered: the same range works afterwards.
    EXPECT_EQ(vm_ram_register_at_custom_iterator(&a, 0x10000000, 0x3000, from_list, &at_a), -1);
    ASSERT_EQ(vm_ram_register_at_custom_iterator(&a, 0x10000000, 0x2000, from_list, &at_a), 0)
        << guestvm_last_error();
    ASSERT_EQ(vm_ram_register_at_custom_iterator(&b, 0x20000000, 0x2000, from_list, &at_b), 0);
    ASSERT_EQ(a.mem.num_ram_regions, 1);
    EXPECT_EQ(a.mem.ram_regions[0].start, 0x10000000u);
    EXPECT_EQ(a.mem.ram_regions[0].size, 0x2000u);
    // Written in VM a across the frame boundary, read in VM b and through the frames.
    const char msg[] = "one dataport, two VMs";
    ASSERT_EQ(vm_ram_touch(&a, 0x10000ff8, sizeof msg, vm_guest_ram_write_callback,
                           const_cast<char *>(msg)),
              0);
    char back[sizeof msg] = {};
    ASSERT_EQ(vm_ram_touch(&b, 0x20000ff8, sizeof msg, vm_guest_ram_read_callback, back), 0);
    EXPECT_STREQ(back, msg);
    EXPECT_EQ(std::memcmp(static_cast<char *>(guestvm_frame_data(frames[1], nullptr)), msg + 8,
                          sizeof msg - 8),
              0);
    EXPECT_EQ(vm_destroy(&a), 0);
    EXPECT_EQ(vm_destroy(&b), 0);
    for (seL4_CPtr f : frames) EXPECT_EQ(guestvm_frame_free(f), 0);
}

}  // namespace
}  // namespace guestvm
