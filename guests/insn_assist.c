/* Runs, at CPL 0, each instruction the VMM completes for a host emulator that refuses it
 * (int3, fwait, ldmxcsr, stmxcsr, clac, stac) in the forms and fault cases a kernel meets:
 * every addressing form of the memory operand, an operand across a page boundary, and the
 * faults the CPU raises instead of completing (#NM, #GP, #PF with CR2). Prints one line per
 * check ("ok NAME" or "FAIL NAME ...") and then "insn_assist: N of M checks passed". On a host
 * with hardware virtualisation the same instructions run natively and the same checks hold. */
#include "guest.h"
#include "irq.h"

unsigned long last_vector, last_error, last_rip, last_cr2, exc_count, resume;

/* Exception stubs: record vector, error code, faulting RIP and CR2; return to `resume` when it
 * is set (then clear it), else to where the CPU points (after a trap). RAX is preserved. */
__asm__(
    ".text\nexc_3:\n push $0\n push $3\n jmp exc_common\n"
    "exc_7:\n push $0\n push $7\n jmp exc_common\n"
    "exc_6:\n push $0\n push $6\n jmp exc_common\n"
    "exc_16:\n push $0\n push $16\n jmp exc_common\n"
    "exc_13:\n push $13\n jmp exc_common\n"
    "exc_14:\n push $14\n jmp exc_common\n"
    "exc_common:\n"
    "  push %rax\n"
    "  mov 8(%rsp), %rax\n  mov %rax, last_vector(%rip)\n"
    "  mov 16(%rsp), %rax\n  mov %rax, last_error(%rip)\n"
    "  mov 24(%rsp), %rax\n  mov %rax, last_rip(%rip)\n"
    "  mov %cr2, %rax\n  mov %rax, last_cr2(%rip)\n"
    "  incq exc_count(%rip)\n"
    "  mov resume(%rip), %rax\n"
    "  test %rax, %rax\n  jz 1f\n"
    "  mov %rax, 24(%rsp)\n  movq $0, resume(%rip)\n"
    "1:\n  pop %rax\n  add $16, %rsp\n  iretq\n");
extern char exc_3[], exc_6[], exc_7[], exc_13[], exc_14[], exc_16[];

static int passed, total;

static void check(int ok, const char *name, unsigned long got, unsigned long want) {
    ++total;
    if (ok) {
        ++passed;
        serial_puts("ok ");
        serial_puts(name);
        serial_puts("\n");
        return;
    }
    serial_puts("FAIL ");
    serial_puts(name);
    serial_puts(" got ");
    serial_put_hex(got, 8);
    serial_puts(" want ");
    serial_put_hex(want, 8);
    serial_puts("\n");
}

/* Two pages so that an operand can straddle them. */
static unsigned char page_pair[8192] __attribute__((aligned(4096)));
static unsigned int words[128];
unsigned int rip_in, rip_out; /* global: named from inline asm */

static inline unsigned int read_mxcsr_via_stmxcsr(void) {
    unsigned int v = 0;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static inline unsigned long rflags(void) {
    unsigned long f;
    __asm__ volatile("pushf; pop %0" : "=r"(f));
    return f;
}

extern char after_int3[], fwait_nm[], fwait_nm_done[], ld_gp[], ld_gp_done[], ld_pf[], ld_pf_done[],
    st_pf[], st_pf_done[];

__attribute__((noipa)) static void test_int3(void) {
    unsigned long before = exc_count;
    __asm__ volatile("int3\n.globl after_int3\nafter_int3:\n" ::: "memory");
    check(exc_count == before + 1 && last_vector == 3, "int3 raises #BP", last_vector, 3);
    check(last_rip == (unsigned long)after_int3, "int3 returns after itself", last_rip,
          (unsigned long)after_int3);
}

__attribute__((noipa)) static void test_fwait(void) {
    unsigned long before = exc_count;
    __asm__ volatile("fwait" ::: "memory");
    check(exc_count == before, "fwait completes", exc_count - before, 0);
    /* CR0.MP and TS set: fwait raises #NM at itself. */
    resume = (unsigned long)fwait_nm_done;
    __asm__ volatile(
        "mov %%cr0, %%rax\n or $0xa, %%rax\n mov %%rax, %%cr0\n"
        ".globl fwait_nm\nfwait_nm: fwait\n"
        ".globl fwait_nm_done\nfwait_nm_done:\n clts\n" ::
            : "rax", "memory");
    check(exc_count == before + 1 && last_vector == 7 && last_rip == (unsigned long)fwait_nm,
          "fwait with CR0.TS raises #NM", last_vector, 7);
}

__attribute__((noipa)) static void test_mxcsr(void) {
    unsigned long cr4;
    __asm__ volatile("mov %%cr4, %0\n or $0x200, %0\n mov %0, %%cr4" : "=r"(cr4)::"memory");
    const unsigned int v1 = 0x5f80, v2 = 0x3fa0, v3 = 0x1f81, v4 = 0x7f80, v5 = 0x9f80;

    /* RIP-relative: the operand is a static. */
    rip_in = v1;
    __asm__ volatile("ldmxcsr rip_in(%%rip)\n stmxcsr rip_out(%%rip)\n" ::: "memory");
    check(rip_out == v1, "ldmxcsr/stmxcsr rip-relative", rip_out, v1);

    /* base + disp8, then SIB with index*4 + disp32. */
    words[1] = v2;
    __asm__ volatile("ldmxcsr 4(%0)" ::"b"(words) : "memory");
    check(read_mxcsr_via_stmxcsr() == v2, "ldmxcsr base+disp8", read_mxcsr_via_stmxcsr(), v2);
    words[64 + 3] = v3;
    __asm__ volatile("ldmxcsr 0x100(%0,%1,4)" ::"b"(words), "c"(3L) : "memory");
    check(read_mxcsr_via_stmxcsr() == v3, "ldmxcsr base+index*4+disp32", read_mxcsr_via_stmxcsr(),
          v3);

    /* REX.B and REX.X: r13 as base (needs a displacement), r14 as index. */
    words[10] = v4;
    __asm__ volatile(
        "mov %0, %%r13\n mov $4, %%r14\n ldmxcsr 8(%%r13,%%r14,8)\n"
        "stmxcsr 12(%%r13)\n" ::"r"(words)
        : "r13", "r14", "memory");
    check(words[3] == v4, "ldmxcsr/stmxcsr through r13/r14", words[3], v4);

    /* A GS override: the operand is at GS base + disp32 (no base register). */
    words[20] = v5;
    unsigned long gs = (unsigned long)&words[16];
    __asm__ volatile("wrmsr" ::"c"(0xc0000101u), "a"((unsigned)gs), "d"((unsigned)(gs >> 32)));
    __asm__ volatile("ldmxcsr %%gs:16" ::: "memory");
    check(read_mxcsr_via_stmxcsr() == v5, "ldmxcsr gs:disp32", read_mxcsr_via_stmxcsr(), v5);

    /* An operand across a page boundary, both ways. */
    unsigned char *edge = page_pair + 4094;
    edge[0] = 0x80, edge[1] = 0x3f, edge[2] = 0, edge[3] = 0;
    __asm__ volatile("ldmxcsr (%0)" ::"r"(edge) : "memory");
    check(read_mxcsr_via_stmxcsr() == 0x3f80, "ldmxcsr across pages", read_mxcsr_via_stmxcsr(),
          0x3f80);
    __asm__ volatile("ldmxcsr rip_in(%%rip)\n stmxcsr (%0)" ::"r"(edge + 1) : "memory");
    unsigned int crossed =
        edge[1] | edge[2] << 8 | (unsigned)edge[3] << 16 | (unsigned)edge[4] << 24;
    check(crossed == v1, "stmxcsr across pages", crossed, v1);

    /* A reserved bit: #GP(0) at the instruction, MXCSR unchanged. */
    words[0] = 0x10000 | 0x1f80;
    unsigned long before = exc_count;
    resume = (unsigned long)ld_gp_done;
    __asm__ volatile(
        ".globl ld_gp\nld_gp: ldmxcsr (%0)\n.globl ld_gp_done\nld_gp_done:\n" ::"r"(words)
        : "memory");
    check(exc_count == before + 1 && last_vector == 13 && last_error == 0 &&
              last_rip == (unsigned long)ld_gp,
          "ldmxcsr reserved bit raises #GP(0)", last_vector, 13);
    check(read_mxcsr_via_stmxcsr() == v1, "MXCSR unchanged after #GP", read_mxcsr_via_stmxcsr(),
          v1);

    /* Unmapped operands (512 GiB: no page tables there): #PF with CR2 and the error code. */
    const unsigned long hole = 0x8000000000ul;
    before = exc_count;
    resume = (unsigned long)ld_pf_done;
    __asm__ volatile(
        ".globl ld_pf\nld_pf: ldmxcsr (%0)\n.globl ld_pf_done\nld_pf_done:\n" ::"r"(hole)
        : "memory");
    check(exc_count == before + 1 && last_vector == 14 && last_rip == (unsigned long)ld_pf,
          "ldmxcsr unmapped raises #PF", last_vector, 14);
    check(last_cr2 == hole && last_error == 0, "#PF CR2 and error code (read)", last_cr2, hole);
    resume = (unsigned long)st_pf_done;
    __asm__ volatile(
        ".globl st_pf\nst_pf: stmxcsr (%0)\n.globl st_pf_done\nst_pf_done:\n" ::"r"(hole + 8)
        : "memory");
    check(last_vector == 14 && last_rip == (unsigned long)st_pf && last_cr2 == hole + 8 &&
              last_error == 2,
          "stmxcsr unmapped raises #PF (write)", last_error, 2);
}

__attribute__((noipa)) static void test_ac(void) {
    __asm__ volatile("stac" ::: "memory");
    check((rflags() & (1ul << 18)) != 0, "stac sets RFLAGS.AC", rflags(), 1ul << 18);
    __asm__ volatile("clac" ::: "memory");
    check((rflags() & (1ul << 18)) == 0, "clac clears RFLAGS.AC", rflags(), 0);
}

void guest_main(unsigned long core) {
    (void)core;
    (void)interrupts_init; /* irq.h's PIC set-up: this guest takes only exceptions */
    set_gate(3, exc_3);
    set_gate(6, exc_6);
    set_gate(7, exc_7);
    set_gate(13, exc_13);
    set_gate(14, exc_14);
    set_gate(16, exc_16);
    struct __attribute__((packed)) {
        unsigned short limit;
        unsigned long base;
    } idtr = {sizeof(idt) - 1, (unsigned long)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
    test_int3();
    test_fwait();
    test_mxcsr();
    test_ac();
    check(exc_count == 5, "no stray exceptions", exc_count, 5);
    serial_puts("insn_assist: ");
    serial_put_dec(passed);
    serial_puts(" of ");
    serial_put_dec(total);
    serial_puts(" checks passed\n");
    guest_power_off();
}
