/*
 * A C VMM against the forged_ack guest, which writes a specific EOI for IRQ 4 to the PIC in a
 * loop with no interrupt ever raised. The VMM registers a slow (50 us) ack callback for IRQ 4
 * and raises the line every 20 ms from another thread; after ~2 s the callback must have run
 * about once per raise (far fewer times than the guest wrote EOIs), the process must not have
 * grown, and guestvm_vm_stop and vm_destroy must each take effect within 1 s.
 * Exit status 0 pass, 1 fail, 77 no usable /dev/kvm.
 *
 *   c_forged_ack_vmm forged_ack.elf
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sel4vm/boot.h>
#include <sel4vm/guest_irq_controller.h>
#include <sel4vm/guest_vm.h>
#include <sel4vm/guest_vm_util.h>
#include <sel4vm/guestvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_us(long us) {
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

/* Resident set size in KiB, from /proc/self/status. */
static long rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    }
    if (f != NULL) fclose(f);
    return kib;
}

/* Serial output, from vCPU threads. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static char out[4096];
static size_t out_len;

static void on_serial(int vcpu, const char *bytes, size_t len, void *cookie) {
    (void)vcpu, (void)cookie;
    pthread_mutex_lock(&out_lock);
    if (len > sizeof out - 1 - out_len) len = sizeof out - 1 - out_len;
    memcpy(out + out_len, bytes, len);
    out_len += len;
    out[out_len] = '\0';
    pthread_mutex_unlock(&out_lock);
}

/* The guest-physical address of the guest's write counter, once it has printed it (or 0). */
static uint64_t counter_address(void) {
    static const char prefix[] = "forged_ack: counter at ";
    uint64_t addr = 0;
    pthread_mutex_lock(&out_lock);
    const char *at = strstr(out, prefix);
    if (at != NULL && strchr(at, '\n') != NULL) addr = strtoull(at + strlen(prefix), NULL, 16);
    pthread_mutex_unlock(&out_lock);
    return addr;
}

static int acks; /* callback calls; only vm_run's thread writes it */

static void slow_ack(vm_vcpu_t *vcpu, int irq, void *cookie) {
    (void)vcpu, (void)cookie;
    CHECK(irq == 4, "irq %d", irq);
    __atomic_add_fetch(&acks, 1, __ATOMIC_RELAXED);
    sleep_us(50);
}

static vm_t vm;
static int run_result = 1;
static int run_returned;

static void *runner(void *unused) {
    (void)unused;
    run_result = vm_run(&vm);
    __atomic_store_n(&run_returned, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Seconds until `flag` becomes non-zero; a hang (20 s) ends the test as failed. */
static double wait_for(const int *flag, const char *what) {
    double t0 = now();
    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
        if (now() - t0 > 20) {
            fprintf(stderr, "%s: still waiting after 20 s\n", what);
            _exit(1);
        }
        sleep_us(1000);
    }
    return now() - t0;
}

static int destroyed;
static void *destroyer(void *unused) {
    (void)unused;
    CHECK(vm_destroy(&vm) == 0, "%s", guestvm_last_error());
    __atomic_store_n(&destroyed, 1, __ATOMIC_RELEASE);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    guestvm_vm_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.ram_bytes = 64u << 20;
    opts.devices = GUESTVM_DEVICE_SERIAL | GUESTVM_DEVICE_PLATFORM_CALL;
    opts.serial = on_serial;
    if (guestvm_vm_init(&vm, "forged-ack", &opts) != 0) {
        fprintf(stderr, "guestvm_vm_init failed (no usable /dev/kvm?): %s\n", guestvm_last_error());
        return 77;
    }
    CHECK(vm_create_default_irq_controller(&vm) == 0, "%s", guestvm_last_error());
    CHECK(guestvm_vm_load_elf(&vm, argv[1]) == 0, "%s", guestvm_last_error());
    vm_vcpu_t *vcpu = vm_create_vcpu(&vm, 100);
    CHECK(vcpu != NULL, "%s", guestvm_last_error());
    if (failures != 0) return 1;
    CHECK(vm_register_irq(vcpu, 4, slow_ack, NULL) == 0, "%s", guestvm_last_error());
    const long rss_before = rss_kib();
    CHECK(vcpu_start(vcpu) == 0, "%s", guestvm_last_error());
    pthread_t run_thread;
    if (pthread_create(&run_thread, NULL, runner, NULL) != 0) return 1;

    uint64_t addr = 0;
    for (int i = 0; i < 1000 && (addr = counter_address()) == 0; ++i) sleep_us(10000);
    uint64_t host = 0;
    CHECK(addr != 0 && guestvm_vspace_translate(vm_get_vspace(&vm), addr, 8, &host) == 0,
          "no counter: %s", out);
    const volatile uint64_t *forged = (const volatile uint64_t *)(uintptr_t)host;

    int raises = 0;
    for (double t0 = now(); now() - t0 < 2; sleep_us(20000)) {
        CHECK(vm_inject_irq(vcpu, 4) == 0, "%s", guestvm_last_error());
        ++raises;
    }
    const uint64_t writes = forged != NULL ? *forged : 0;
    const int seen = __atomic_load_n(&acks, __ATOMIC_RELAXED);
    const long rss_after = rss_kib();
    printf("%llu forged EOIs, %d raises, %d ack callbacks, RSS %ld -> %ld KiB\n",
           (unsigned long long)writes, raises, seen, rss_before, rss_after);
    CHECK(writes > 20000, "the guest hardly ran: %llu EOIs", (unsigned long long)writes);
    CHECK(seen >= 1, "no raise was acknowledged");
    /* A raise overlapping an acknowledgement may be acknowledged twice, never more. */
    CHECK(seen <= 2 * raises + 1, "%d callbacks for %d raises", seen, raises);
    CHECK(rss_after < rss_before + 32 * 1024, "RSS grew from %ld to %ld KiB", rss_before,
          rss_after);

    CHECK(guestvm_vm_stop(&vm) == 0, "%s", guestvm_last_error());
    double took = wait_for(&run_returned, "vm_run after guestvm_vm_stop");
    CHECK(took < 1, "vm_run returned %.3f s after guestvm_vm_stop", took);
    pthread_join(run_thread, NULL);
    CHECK(run_result == 0, "vm_run: %d (%s)", run_result, guestvm_last_error());
    CHECK(guestvm_vm_stop_reason(&vm, NULL, 0) == GUESTVM_STOP_REQUESTED, "stop reason");

    pthread_t destroy_thread;
    if (pthread_create(&destroy_thread, NULL, destroyer, NULL) != 0) return 1;
    took = wait_for(&destroyed, "vm_destroy");
    CHECK(took < 1, "vm_destroy took %.3f s", took);
    pthread_join(destroy_thread, NULL);

    if (failures != 0) return 1;
    puts("all checks passed");
    return 0;
}
