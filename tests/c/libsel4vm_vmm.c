/*
 * A VMM written only against libsel4vm's x86 API (no guestvm header): it registers RAM, copies
 * a flat 32-bit guest in with vm_ram_touch, serves ports with vm_io_port_add_handler and the
 * unhandled-port callback, enters the guest by writing VMCS fields and the thread context, and
 * checks every value on both sides, including vm_run's error exit. Misuse gets libsel4vm's
 * error values. Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_libsel4vm_vmm ports32.bin
 */
#include <sel4vm/arch/guest_x86_context.h>
#include <sel4vm/arch/ioports.h>
#include <sel4vm/arch/vmcs_fields.h>
#include <sel4vm/arch/vmexit_reasons.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_memory.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vcpu_fault.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guest_vm_exits.h>
#include <sel4vm/guest_vm_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                              \
        }                                                                            \
    } while (0)

/* What the guest did, in order. */
struct access {
    unsigned port, size, value;
};
static struct access outs[24];
static int n_outs;
static unsigned unhandled_out_port, unhandled_out_value;

static ioport_fault_result_t port_in(vm_vcpu_t *vcpu, void *cookie, unsigned port, unsigned size,
                                     unsigned *result) {
    CHECK(vcpu != NULL && vcpu->vcpu_id == 0);
    CHECK(cookie == (void *)&outs);
    CHECK(port == 0x520);
    *result = size == 1 ? 0xa5u : size == 2 ? 0xbeefu : 0xcafef00du;
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t port_out(vm_vcpu_t *vcpu, void *cookie, unsigned port, unsigned size,
                                      unsigned value) {
    (void)cookie;
    CHECK(vcpu != NULL);
    if (n_outs < 24) outs[n_outs++] = (struct access){port, size, value};
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t failing_out(vm_vcpu_t *vcpu, void *cookie, unsigned port,
                                         unsigned size, unsigned value) {
    (void)vcpu, (void)cookie, (void)port, (void)size, (void)value;
    return IO_FAULT_ERROR;
}

/* The device at 0xd0000000, served through the fault accessors. */
static struct access mmio_writes[4];
static int n_mmio_writes;

static memory_fault_result_t device(vm_t *vm, vm_vcpu_t *vcpu, uintptr_t addr, size_t len,
                                    void *cookie) {
    CHECK(vm != NULL && vcpu != NULL && cookie == (void *)mmio_writes);
    CHECK(get_vcpu_fault_address(vcpu) == addr && get_vcpu_fault_size(vcpu) == len);
    CHECK(get_vcpu_fault_ip(vcpu) >= 0x100000 && get_vcpu_fault_ip(vcpu) < 0x101000);
    if (is_vcpu_read_fault(vcpu)) {
        /* 4 bytes at +4, 2 at +8, 1 at +0xc: answer with a size-dependent pattern */
        seL4_Word value = len == 4 ? 0x89abcdefu : len == 2 ? 0x4321u : 0x5au;
        CHECK(set_vcpu_fault_data(vcpu, value) == 0);
    } else if (n_mmio_writes < 4) {
        mmio_writes[n_mmio_writes++] =
            (struct access){(unsigned)(addr - 0xd0000000u), (unsigned)len,
                            (unsigned)(get_vcpu_fault_data(vcpu) & get_vcpu_fault_data_mask(vcpu))};
    }
    return FAULT_HANDLED;
}

static ioport_fault_result_t unhandled(vm_vcpu_t *vcpu, unsigned port, bool is_in, unsigned *value,
                                       size_t size, void *cookie) {
    (void)vcpu, (void)cookie;
    if (is_in && port == 0x530 && size == 4) {
        *value = 0x12345678u;
        return IO_FAULT_HANDLED;
    }
    if (!is_in) {
        unhandled_out_port = port;
        unhandled_out_value = *value;
        return IO_FAULT_HANDLED;
    }
    return IO_FAULT_UNHANDLED; /* 0x532: reads all ones */
}

_Static_assert(EXIT_REASON_IO_INSTRUCTION == 30 && VM_EXIT_REASON_NUM == 59,
               "libsel4vm's exit-reason numbers");

/* libsel4vm's pretty-printing table of exit reasons. */
static const struct {
    int reason;
    const char *name;
} exit_names[] = {VMX_EXIT_REASONS};

static const char *exit_name(int reason) {
    for (size_t i = 0; i < sizeof exit_names / sizeof exit_names[0]; ++i) {
        if (exit_names[i].reason == reason) return exit_names[i].name;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) return 1;
    static unsigned char image[4096];
    size_t image_size = fread(image, 1, sizeof image, f);
    fclose(f);

    CHECK(sizeof exit_names / sizeof exit_names[0] == 40);
    CHECK(strcmp(exit_name(EXIT_REASON_IO_INSTRUCTION), "IO_INSTRUCTION") == 0);
    CHECK(strcmp(exit_name(EXIT_REASON_EPT_VIOLATION), "EPT_VIOLATION") == 0);
    CHECK(exit_name(3) == NULL);

    vspace_t host_vspace;
    memset(&host_vspace, 0, sizeof host_vspace);
    CHECK(vm_init(NULL, NULL, NULL, host_vspace, NULL, 0, "x") == -1);
    vm_t vm;
    if (vm_init(&vm, NULL, NULL, host_vspace, NULL, 0, "c-libsel4vm") != 0) {
        fprintf(stderr, "vm_init failed (no usable /dev/kvm?)\n");
        return 77;
    }
    CHECK(vm.run.exit_reason == VM_GUEST_UNKNOWN_EXIT && vm.vm_initialised);
    CHECK(vm.arch.vmcall_num_handlers == 0 && vm.arch.i8259_gs == NULL);
    CHECK(vm_ram_register_at(&vm, 0x1001, 0, false) == -1); /* empty (unaligned is fine) */
    CHECK(vm_ram_register_at(&vm, 0, 4 << 20, false) == 0);
    CHECK(vm_ram_register_at(&vm, 1 << 20, 4096, false) == -1); /* overlaps */
    CHECK(vm_ram_touch(&vm, 0x100000, image_size, vm_guest_ram_write_callback, image) == 0);
    CHECK(vm_ram_touch(&vm, (4 << 20) - 16, 64, vm_guest_ram_write_callback, image) == -1);
    unsigned char back[64];
    CHECK(vm_ram_touch(&vm, 0x100000, sizeof back, vm_guest_ram_read_callback, back) == 0);
    CHECK(memcmp(back, image, sizeof back) == 0);

    /* RAM bookkeeping in vm->mem.ram_regions. */
    uintptr_t free_at = 1;
    size_t free_size = 0;
    CHECK(vm_ram_find_largest_free_region(&vm, &free_at, &free_size) == 0);
    CHECK(free_at == 0 && free_size == 4u << 20);
    vm_ram_mark_allocated(&vm, 0x100000, 0x1000); /* the guest image */
    CHECK(vm.mem.num_ram_regions == 3);
    CHECK(vm.mem.ram_regions[1].start == 0x100000 && vm.mem.ram_regions[1].size == 0x1000 &&
          vm.mem.ram_regions[1].allocated && !vm.mem.ram_regions[0].allocated);
    CHECK(vm_ram_find_largest_free_region(&vm, &free_at, &free_size) == 0);
    CHECK(free_at == 0x101000 && free_size == (4u << 20) - 0x101000);
    CHECK(vm_ram_allocate(&vm, 0x200000) == 0x101000); /* [0, 1 MiB) is too small */
    vm_ram_mark_allocated(&vm, 0x100800, 0x1000);      /* already allocated: nothing */
    CHECK(vm.mem.num_ram_regions == 3);
    CHECK(vm_ram_allocate(&vm, 8u << 20) == 0); /* nothing that large */
    vm_ram_free(&vm, 0x100000, 0x201000);
    CHECK(vm.mem.num_ram_regions == 1 && !vm.mem.ram_regions[0].allocated);
    CHECK(vm_ram_find_largest_free_region(NULL, &free_at, &free_size) == -1);

    CHECK(vm_reserve_memory_at(&vm, 0xd0000000u, 0x1000, NULL, NULL) == NULL);
    CHECK(vm_reserve_memory_at(&vm, 0x1000, 0x1000, device, mmio_writes) == NULL); /* RAM */
    CHECK(vm_reserve_memory_at(&vm, 0xd0000000u, 0x1000, device, mmio_writes) != NULL);

    vm_ioport_range_t ports = {0x520, 0x527};
    vm_ioport_interface_t iface = {&outs, port_in, port_out, "test ports"};
    CHECK(vm_io_port_add_handler(NULL, ports, iface) == -1);
    CHECK(vm_io_port_add_handler(&vm, ports, iface) == 0);
    vm_ioport_range_t overlapping = {0x527, 0x528};
    CHECK(vm_io_port_add_handler(&vm, overlapping, iface) == -1);
    vm_ioport_range_t shares_one = {0x510, 0x520};
    CHECK(vm_io_port_add_handler(&vm, shares_one, iface) == -1); /* 0x520 is taken */
    vm_ioport_range_t backwards = {0x540, 0x530};
    CHECK(vm_io_port_add_handler(&vm, backwards, iface) == -1);
    vm_ioport_range_t error_port = {0x528, 0x528};
    vm_ioport_interface_t error_iface = {NULL, NULL, failing_out, "fails"};
    CHECK(vm_io_port_add_handler(&vm, error_port, error_iface) == 0);
    vm_ioport_range_t low = {0x510, 0x511};
    CHECK(vm_io_port_add_handler(&vm, low, iface) == 0);
    /* vm->arch.ioport_list: every handler, sorted by first port, as libsel4vm keeps it. */
    CHECK(vm.arch.ioport_list.num_ioports == 3);
    CHECK(vm.arch.ioport_list.ioports[0].range.start == 0x510 &&
          vm.arch.ioport_list.ioports[1].range.start == 0x520 &&
          vm.arch.ioport_list.ioports[1].range.end == 0x527 &&
          vm.arch.ioport_list.ioports[2].range.start == 0x528 &&
          vm.arch.ioport_list.ioports[2].interface.port_out == failing_out);
    CHECK(vm_register_unhandled_ioport_callback(NULL, unhandled, NULL) == -1);
    CHECK(vm_register_unhandled_ioport_callback(&vm, unhandled, &vm) == 0);
    CHECK(vm.arch.unhandled_ioport_callback == unhandled &&
          vm.arch.unhandled_ioport_callback_cookie == &vm);

    CHECK(vm_create_vcpu(NULL, 100) == NULL);
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    CHECK(vcpu != NULL);
    if (vcpu == NULL) return 1;
    CHECK(vm.num_vcpus == 1 && vm.vcpus[0] == vcpu && vcpu->vm == &vm && vcpu->vcpu_id == 0);
    CHECK(vcpu->target_cpu == -1 && !vcpu->vcpu_online);
    CHECK(vcpu->vcpu_arch.guest_state == NULL && vcpu->vcpu_arch.lapic == NULL);
    CHECK(vm_enable_passthrough_ioport(vcpu, 0x64, 0x60) == -1); /* backwards */

    /* Enter the guest as a libsel4vm VMM does: VMCS fields and the thread context. */
    CHECK(vm_set_vmcs_field(vcpu, VMX_GUEST_RIP, 0x100000) == 0);
    CHECK(vm_set_vmcs_field(vcpu, VMX_GUEST_RSP, 0x200000) == 0);
    CHECK(vm_set_vmcs_field(vcpu, VMX_CONTROL_EXCEPTION_BITMAP, 0) == -1); /* no KVM meaning */
    CHECK(vm_set_thread_context_reg(vcpu, VCPU_CONTEXT_EBX, 0xb0b0cafe) == 0);
    seL4_Word rip = 0;
    CHECK(vm_get_vmcs_field(vcpu, VMX_GUEST_RIP, &rip) == 0 && rip == 0x100000);
    CHECK(vm_assign_vcpu_target(vcpu, 0) == 0);
    CHECK(vcpu->target_cpu == 0 && vm_vcpu_for_target_cpu(&vm, 0) == vcpu);
    CHECK(vcpu_start(vcpu) == 0);
    CHECK(vcpu_start(vcpu) == -1); /* already online (or, if it was that quick, stopped) */
    /* (Its vcpu_online field is not read here: the vCPU's thread may be changing it.) */

    /* The handler for port 0x528 reports an error: vm_run returns -1 with an error exit. */
    CHECK(vm_run(&vm) == -1);
    CHECK(vm.run.exit_reason == VM_GUEST_ERROR_EXIT);
    CHECK(!vcpu->vcpu_online && !is_vcpu_online(vcpu)); /* every vCPU thread has been joined */

    const struct access want[] = {
        {0x520, 1, 0x11},       {0x520, 2, 0x2233},     {0x520, 4, 0x44556677},
        {0x524, 4, 0xa5},       {0x524, 4, 0xbeef},     {0x524, 4, 0xcafef00d},
        {0x524, 4, 0xb0b0cafe}, {0x524, 4, 0x12345678}, {0x524, 4, 0xffffffff},
        {0x524, 4, 0x89abcdef}, {0x524, 4, 0x4321},     {0x524, 4, 0x5a},
    };
    CHECK(n_outs == (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < n_outs && i < (int)(sizeof want / sizeof want[0]); ++i) {
        if (outs[i].port != want[i].port || outs[i].size != want[i].size ||
            outs[i].value != want[i].value) {
            fprintf(stderr, "out %d: port %#x size %u value %#x; wanted %#x %u %#x\n", i,
                    outs[i].port, outs[i].size, outs[i].value, want[i].port, want[i].size,
                    want[i].value);
            ++failures;
        }
    }
    CHECK(unhandled_out_port == 0x531 && (unhandled_out_value & 0xff) == 0x5a);
    const struct access want_mmio[] = {{0x0, 4, 0x11223344}, {0x10, 2, 0x5566}, {0x20, 1, 0x77}};
    CHECK(n_mmio_writes == 3);
    for (int i = 0; i < n_mmio_writes && i < 3; ++i) {
        CHECK(mmio_writes[i].port == want_mmio[i].port &&
              mmio_writes[i].size == want_mmio[i].size &&
              mmio_writes[i].value == want_mmio[i].value);
    }

    /* Read after the run: the state the guest left. */
    seL4_Word ebx = 0, cr0 = 0;
    CHECK(vm_get_thread_context_reg(vcpu, VCPU_CONTEXT_EBX, &ebx) == 0 && ebx == 0xb0b0cafe);
    CHECK(vm_get_vmcs_field(vcpu, VMX_GUEST_CR0, &cr0) == 0 && (cr0 & 0x80000001u) == 1);
    CHECK(vm_get_vmcs_field(vcpu, VMX_GUEST_RIP, &rip) == 0 && rip > 0x100000 &&
          rip < 0x100000 + image_size);
    CHECK(vm_destroy(&vm) == 0);
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    puts("libsel4vm C VMM: all checks passed");
    return 0;
}
