#include "raw_kvm_lib.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int open_vm(struct rawkvm *vm, size_t ram_bytes, int irqchip) {
    memset(vm, 0, sizeof(*vm));
    vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) return -1;
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) return -1;
    vm->ram = mmap(NULL, ram_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (vm->ram == MAP_FAILED) {
        vm->ram = NULL;
        return -1;
    }
    vm->ram_size = ram_bytes;
    struct kvm_userspace_memory_region region = {.slot = 0,
                                                 .guest_phys_addr = 0,
                                                 .memory_size = ram_bytes,
                                                 .userspace_addr = (uint64_t)vm->ram};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) return -1;
    if (irqchip && ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) return -1;
    vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
    if (vm->vcpu_fd < 0) return -1;
    int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size <= 0) return -1;
    vm->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
    if (vm->run == MAP_FAILED) {
        vm->run = NULL;
        return -1;
    }
    vm->run_size = (size_t)size;
    return 0;
}

int rawkvm_open(struct rawkvm *vm, size_t ram_bytes) { return open_vm(vm, ram_bytes, 0); }

int rawkvm_open_with_irqchip(struct rawkvm *vm, size_t ram_bytes) {
    return open_vm(vm, ram_bytes, 1);
}

int rawkvm_load_elf(struct rawkvm *vm, const void *image, size_t size) {
    const Elf64_Ehdr *eh = image;
    if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
        eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
        (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff) {
        errno = EINVAL;
        return -1;
    }
    const Elf64_Phdr *ph = (const Elf64_Phdr *)((const uint8_t *)image + eh->e_phoff);
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD) continue;
        if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > size ||
            ph[i].p_filesz > size - ph[i].p_offset || ph[i].p_paddr > vm->ram_size ||
            ph[i].p_memsz > vm->ram_size - ph[i].p_paddr) {
            errno = EINVAL;
            return -1;
        }
        memcpy(vm->ram + ph[i].p_paddr, (const uint8_t *)image + ph[i].p_offset, ph[i].p_filesz);
        /* Fresh anonymous memory is zero: BSS needs no clearing. */
    }
    vm->entry = eh->e_entry;
    return 0;
}

static void flat(struct kvm_segment *s, uint16_t selector, int code) {
    memset(s, 0, sizeof(*s));
    s->limit = 0xffffffff;
    s->selector = selector;
    s->type = code ? 0xb : 0x3;
    s->present = 1;
    s->s = 1;
    s->g = 1;
    s->l = code;
    s->db = !code;
}

int rawkvm_setup_long_mode(struct rawkvm *vm, uint64_t entry) {
    uint64_t gdt[4] = {0, 0x00af9a000000ffffull, 0x00cf92000000ffffull, 0};
    memcpy(vm->ram + 0x500, gdt, sizeof(gdt));
    uint64_t *pml4 = (uint64_t *)(vm->ram + 0x1000), *pdpt = (uint64_t *)(vm->ram + 0x2000);
    uint64_t *pd = (uint64_t *)(vm->ram + 0x3000);
    pml4[0] = 0x2000 | 3;
    for (uint64_t g = 0; g < 4; g++) {
        pdpt[g] = (0x3000 + g * 0x1000) | 3;
        for (uint64_t i = 0; i < 512; i++) pd[g * 512 + i] = ((g << 30) | (i << 21)) | 0x83;
    }
    /* KVM refuses EFER.LME unless the guest's CPUID offers long mode. */
    size_t n = 128;
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(struct kvm_cpuid_entry2));
    if (cpuid == NULL) return -1;
    cpuid->nent = (uint32_t)n;
    int r = ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid);
    if (r == 0) r = ioctl(vm->vcpu_fd, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (r < 0) return -1;
    struct kvm_sregs s;
    if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0) return -1;
    flat(&s.cs, 0x08, 1);
    flat(&s.ds, 0x10, 0);
    s.es = s.fs = s.gs = s.ss = s.ds;
    s.gdt.base = 0x500;
    s.gdt.limit = 31;
    s.cr0 = 0x80050033;
    s.cr3 = 0x1000;
    s.cr4 = 0x20;
    s.efer = 0x500;
    if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0) return -1;
    struct kvm_regs regs = {.rip = entry, .rflags = 2};
    return ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs);
}

int rawkvm_run_once(struct rawkvm *vm) {
    if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) return -1;
    return (int)vm->run->exit_reason;
}

int rawkvm_set_rax(struct rawkvm *vm, uint64_t value) {
    struct kvm_regs regs;
    if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs) < 0) return -1;
    regs.rax = value;
    return ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs);
}

void rawkvm_close(struct rawkvm *vm) {
    if (vm->run) munmap(vm->run, vm->run_size);
    if (vm->ram) munmap(vm->ram, vm->ram_size);
    if (vm->vcpu_fd >= 0) close(vm->vcpu_fd);
    if (vm->vm_fd >= 0) close(vm->vm_fd);
    if (vm->kvm_fd >= 0) close(vm->kvm_fd);
    memset(vm, 0, sizeof(*vm));
}
