/*
 * libsel4vm's one-thread semantics: a CMOS/RTC device model in camkes-vm's style, with no lock
 * and no atomics in its state, driven at once from port exits of two vCPUs (the rtc_hammer
 * guest) and from the notification callback (a "timer" thread signals the VMM every 200 us, as
 * camkes-vm's timer notifications tick its RTC). In the default mode every handler and callback
 * of the VM runs alone, so the model is race-free: run it under ThreadSanitizer (the tsan
 * preset) and nothing is reported; a detector built on atomics (not part of the model) also
 * counts handlers that overlapped, which must be none. `c_serialized_vmm GUEST parallel` runs
 * the opt-in parallel mode instead and reports the overlaps it saw (the model then races: not
 * for TSan). Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_serialized_vmm rtc_hammer.elf [parallel]
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sel4vm/arch/ioports.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_ram.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guest_vm_util.h>
#include <sel4vm/guestvm.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define X86_IO_RTC_START 0x70
#define X86_IO_RTC_END 0x71
#define ROUNDS 1500 /* the guest's, per core */
#define CORES 2

/* The device model: plain data, as libsel4vmmplatsupport's and camkes-vm's models are. */
static struct cmos {
    unsigned index;
    unsigned char regs[128];
    unsigned long seconds;
    unsigned long port_accesses;
    unsigned long ticks;
} cmos;

/* The overlap detector (not part of the model). */
static int busy;
static int overlaps;
static void enter(void) {
    if (__atomic_exchange_n(&busy, 1, __ATOMIC_ACQ_REL))
        __atomic_add_fetch(&overlaps, 1, __ATOMIC_RELAXED);
    for (volatile int i = 0; i < 300; ++i) {
    } /* long enough for another vCPU's exit to come */
}
static void leave(void) { __atomic_store_n(&busy, 0, __ATOMIC_RELEASE); }

static ioport_fault_result_t cmos_port_in(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                          unsigned int size, unsigned int *result) {
    (void)vcpu, (void)cookie, (void)size;
    enter();
    ++cmos.port_accesses;
    *result = port_no == X86_IO_RTC_START ? cmos.index : cmos.regs[cmos.index];
    leave();
    return IO_FAULT_HANDLED;
}

static ioport_fault_result_t cmos_port_out(vm_vcpu_t *vcpu, void *cookie, unsigned int port_no,
                                           unsigned int size, unsigned int value) {
    (void)vcpu, (void)cookie, (void)size;
    enter();
    ++cmos.port_accesses;
    if (port_no == X86_IO_RTC_START) {
        cmos.index = value & 0x7f;
    } else {
        cmos.regs[cmos.index] = (unsigned char)value;
    }
    leave();
    return IO_FAULT_HANDLED;
}

/* camkes-vm's handle_async_event: a timer badge ticks the clock. */
static int handle_async_event(vm_t *vm, seL4_Word badge, seL4_MessageInfo_t tag, void *cookie) {
    (void)vm, (void)tag, (void)cookie;
    if (badge != 1) return -1;
    enter();
    ++cmos.ticks;
    cmos.seconds += 1;
    cmos.regs[0] = (unsigned char)(cmos.seconds % 60);
    leave();
    return 0;
}

static vm_t vm;
static int run_over;

static void sleep_us(long us) {
    struct timespec t = {0, us * 1000};
    nanosleep(&t, NULL);
}

static void *timer(void *unused) {
    (void)unused;
    while (!__atomic_load_n(&run_over, __ATOMIC_ACQUIRE)) {
        (void)guestvm_vm_notify(&vm, 1); /* -1 once the VM has stopped */
        sleep_us(200);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const int parallel = argc > 2 && strcmp(argv[2], "parallel") == 0;
    alarm(600);
    guestvm_vm_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.devices = GUESTVM_DEVICE_PLATFORM_CALL; /* CPU_ON, CPU_OFF, SYSTEM_OFF */
    if (guestvm_vm_init(&vm, "rtc", &opts) != 0) {
        fprintf(stderr, "guestvm_vm_init failed (no usable /dev/kvm?): %s\n", guestvm_last_error());
        return 77;
    }
    if (parallel) {
        CHECK(guestvm_vm_set_handler_mode(&vm, GUESTVM_HANDLERS_PARALLEL) == 0, "%s",
              guestvm_last_error());
    }
    CHECK(guestvm_vm_set_handler_mode(&vm, (guestvm_handler_mode_t)7) == -1, "an unknown mode");
    vm_vcpu_t *boot = vm_create_vcpu(&vm, 0);
    vm_vcpu_t *second = vm_create_vcpu(&vm, 0);
    CHECK(boot != NULL && second != NULL, "%s", guestvm_last_error());
    if (boot == NULL || second == NULL) return 1;
    CHECK(vm_assign_vcpu_target(boot, 0) == 0, "%s", guestvm_last_error());
    CHECK(vm_register_notification_callback(&vm, handle_async_event, NULL) == 0, "%s",
          guestvm_last_error());
    vm_ioport_interface_t rtc = {NULL, cmos_port_in, cmos_port_out,
                                 "CMOS Registers / RTC Real-Time Clock / NMI Interrupts"};
    CHECK(vm_io_port_add_handler(&vm, (vm_ioport_range_t){X86_IO_RTC_START, X86_IO_RTC_END}, rtc) ==
              0,
          "%s", guestvm_last_error());
    CHECK(vm_ram_register_at(&vm, 0, 16u << 20, false) == 0, "%s", guestvm_last_error());
    CHECK(guestvm_vm_load_elf(&vm, argv[1]) == 0, "%s", guestvm_last_error());

    pthread_t timer_thread;
    CHECK(pthread_create(&timer_thread, NULL, timer, NULL) == 0, "pthread_create");
    CHECK(vcpu_start(boot) == 0, "%s", guestvm_last_error());
    /* Fixed once a vCPU runs. */
    CHECK(guestvm_vm_set_handler_mode(&vm, GUESTVM_HANDLERS_PARALLEL) == -1,
          "the mode changed while vCPUs run");
    char why[256];
    CHECK(vm_run(&vm) == 0, "vm_run: %s", guestvm_last_error());
    CHECK(guestvm_vm_stop_reason(&vm, why, sizeof why) == GUESTVM_STOP_POWER_OFF, "%s", why);
    __atomic_store_n(&run_over, 1, __ATOMIC_RELEASE);
    pthread_join(timer_thread, NULL);

    /* vm_run has returned: the model is the main thread's again. */
    /* Exact only when the handlers are serialized: in the parallel mode this lock-free model
     * loses updates, which is what the mode lets happen to a VMM that does not lock. */
    if (!parallel) {
        CHECK(cmos.port_accesses == 4ul * ROUNDS * CORES, "%lu port accesses", cmos.port_accesses);
        CHECK(cmos.seconds == cmos.ticks, "%lu seconds, %lu ticks", cmos.seconds, cmos.ticks);
    } else {
        CHECK(cmos.port_accesses > 0 && cmos.port_accesses <= 4ul * ROUNDS * CORES,
              "%lu port accesses", cmos.port_accesses);
    }
    CHECK(cmos.ticks > 0, "no notification arrived while the guest ran");
    const int seen = __atomic_load_n(&overlaps, __ATOMIC_RELAXED);
    printf("%s mode: %lu port accesses from %d vCPUs, %lu notifications, %d overlapping calls\n",
           parallel ? "parallel" : "serialized", cmos.port_accesses, CORES, cmos.ticks, seen);
    if (!parallel) CHECK(seen == 0, "%d handler calls overlapped in the serialized mode", seen);
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());
    return checks_done();
}
