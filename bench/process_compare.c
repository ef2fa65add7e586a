/*
 * process_compare PAIRS GUEST GUESTVM RAW_KVM
 *
 * Whole-process comparison of `GUESTVM run GUEST` and `RAW_KVM GUEST`: process start to exit,
 * run alternately (the order flips every pair so drift on a shared machine hits both), each run
 * checked to exit 0 and print "hello from guestvm". Reports the medians, their ratio and both
 * peak RSS figures. Built static and small: a child's ru_maxrss includes the high-water mark of
 * the memory it had before exec, so the runner's own footprint (printed too) is the floor.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *expect = "hello from guestvm";

static int run(char *const argv[], double *ms, long *rss_kib) {
    int out[2];
    if (pipe(out) < 0) return -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = vfork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    char buf[4096];
    size_t used = 0;
    ssize_t n;
    while ((n = read(out[0], buf + used, sizeof(buf) - 1 - used)) > 0) used += (size_t)n;
    buf[used] = '\0';
    close(out[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    *rss_kib = ru.ru_maxrss;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strstr(buf, expect) == NULL) {
        fprintf(stderr, "process_compare: %s failed (status %d): %.200s\n", argv[0], status, buf);
        return -1;
    }
    return 0;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    if (argc != 5 || atoi(argv[1]) < 15 || atoi(argv[1]) > 1000) {
        fprintf(stderr, "usage: process_compare PAIRS(>=15) GUEST GUESTVM RAW_KVM\n");
        return 2;
    }
    int pairs = atoi(argv[1]);
    char *guestvm[] = {argv[3], "run", argv[2], NULL};
    char *raw[] = {argv[4], argv[2], NULL};
    double *tg = calloc((size_t)pairs, sizeof(double)), *tr = calloc((size_t)pairs, sizeof(double));
    long rg = 0, rr = 0, r;
    double ms;
    if (run(guestvm, &ms, &r) < 0 || run(raw, &ms, &r) < 0) return 1; /* warm-up */
    for (int i = 0; i < pairs; i++) {
        for (int k = 0; k < 2; k++) {
            int g = (i + k) % 2 == 0;
            if (run(g ? guestvm : raw, g ? &tg[i] : &tr[i], &r) < 0) return 1;
            if (g && r > rg) rg = r;
            if (!g && r > rr) rr = r;
        }
    }
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    double mg = median(tg, pairs), mr = median(tr, pairs);
    printf("pairs %d, alternating\n", pairs);
    printf("start-to-exit median: guestvm %.3f ms, raw %.3f ms, ratio %.2fx\n", mg, mr, mg / mr);
    printf("peak RSS: guestvm %.2f MiB, raw %.2f MiB (runner floor %.2f MiB)\n", rg / 1024.0,
           rr / 1024.0, self.ru_maxrss / 1024.0);
    return 0;
}
