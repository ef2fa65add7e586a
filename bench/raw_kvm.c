/*
 * raw_kvm GUEST.elf — the whole-process baseline: runs a guestvm test guest on one vCPU with
 * nothing but the ioctls it needs (serial output, LSR, SYSTEM_OFF), then exits 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raw_kvm_lib.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: raw_kvm GUEST.elf\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(argv[1]);
        return 1;
    }
    char *image = malloc((size_t)st.st_size);
    if (image == NULL || read(fd, image, (size_t)st.st_size) != st.st_size) {
        perror("read");
        return 1;
    }
    close(fd);
    struct rawkvm vm;
    if (rawkvm_open(&vm, 64u << 20) < 0 || rawkvm_load_elf(&vm, image, (size_t)st.st_size) < 0 ||
        rawkvm_setup_long_mode(&vm, vm.entry) < 0) {
        perror("raw_kvm: setup");
        return 1;
    }
    free(image);
    char out[4096];
    size_t used = 0;
    for (;;) {
        int reason = rawkvm_run_once(&vm);
        if (reason != KVM_EXIT_IO) {
            fprintf(stderr, "raw_kvm: exit reason %d\n", reason);
            return 1;
        }
        uint8_t *data = (uint8_t *)vm.run + vm.run->io.data_offset;
        uint16_t port = vm.run->io.port;
        if (vm.run->io.direction == KVM_EXIT_IO_OUT && port == 0x3f8) {
            out[used++] = (char)data[0];
            if (data[0] == '\n' || used == sizeof(out)) {
                fwrite(out, 1, used, stdout);
                used = 0;
            }
        } else if (vm.run->io.direction == KVM_EXIT_IO_IN && port == 0x3fd) {
            data[0] = 0x60;
        } else if (port == 0x0ff0) { /* the platform call (docs/platform-call.md) */
            uint32_t fn = *(uint32_t *)data;
            if (fn == 0x84000008u) break;
            rawkvm_set_rax(&vm, fn == 0x84000000u ? 0x10000 : (uint64_t)-1);
        } else if (vm.run->io.direction == KVM_EXIT_IO_IN) {
            data[0] = 0;
        }
    }
    fwrite(out, 1, used, stdout);
    fflush(stdout);
    rawkvm_close(&vm);
    return 0;
}
