/* The boot sector and setup header of the bzImage-format guests (Linux boot protocol 2.15
 * unless BZ_VERSION says otherwise), then the start of their "protected-mode kernel":
 * startup_32 at offset 0 (unused: it halts) and startup_64 at 0x200, the 64-bit entry a loader
 * jumps to with RSI = boot_params; it calls bzimage_main(boot_params).
 * BZ_NO_PAYLOAD: payload_offset and payload_length are 0, as in an image that is no compressed
 * Linux (memtest86+, say). Otherwise the "payload" is startup_32's first 16 bytes. */
#ifndef BZ_VERSION
#define BZ_VERSION 0x020f
#endif
#ifdef BZ_NO_PAYLOAD
#define BZ_PAYLOAD_LENGTH 0
#else
#define BZ_PAYLOAD_LENGTH 16
#endif
    .section .bzheader, "a"
    .org 0x1f1
    .byte 1                 /* setup_sects: the setup is 2 sectors */
    .word 0                 /* root_flags */
    .long bz_syssize        /* syssize: the kernel's 16-byte paragraphs (bzimage.ld) */
    .word 0                 /* ram_size */
    .word 0xffff            /* vid_mode */
    .word 0                 /* root_dev */
    .word 0xaa55            /* boot_flag */
    .byte 0xeb              /* jump over the header: its length */
    .byte header_end - header_start
header_start:
    .ascii "HdrS"
    .word BZ_VERSION        /* version */
    .long 0                 /* realmode_swtch */
    .word 0                 /* start_sys_seg */
    .word 0                 /* kernel_version */
    .byte 0                 /* type_of_loader */
    .byte 0x01              /* loadflags: LOADED_HIGH */
    .word 0                 /* setup_move_size */
    .long 0x100000          /* code32_start */
    .long 0, 0              /* ramdisk_image, ramdisk_size */
    .long 0                 /* bootsect_kludge */
    .word 0                 /* heap_end_ptr */
    .byte 0, 0              /* ext_loader_ver, ext_loader_type */
    .long 0                 /* cmd_line_ptr */
    .long 0x7fffffff        /* initrd_addr_max */
    .long 0x200000          /* kernel_alignment */
    .byte 0                 /* relocatable_kernel: no, load at pref_address */
    .byte 0                 /* min_alignment */
    .word 0x0001            /* xloadflags: XLF_KERNEL_64 */
    .long 255               /* cmdline_size */
    .long 0                 /* hardware_subarch */
    .quad 0                 /* hardware_subarch_data */
    .long 0                 /* payload_offset: (not a compressed kernel: startup_32's bytes) */
    .long BZ_PAYLOAD_LENGTH /* payload_length */
    .quad 0                 /* setup_data */
    .quad 0x100000          /* pref_address */
    .long 0x40000           /* init_size */
    .long 0                 /* handover_offset */
    .long 0                 /* kernel_info_offset */
header_end:
    .org 1024

    .section .startup32, "ax"
    .code32
startup_32:
    hlt
    jmp startup_32

    .section .startup64, "ax"
    .code64
    .globl startup_64
startup_64:
    lea bz_stack_top(%rip), %rsp
    mov %rsi, %rdi
    call bzimage_main
1:  hlt
    jmp 1b

    .section .bss
    .balign 16
    .skip 8192
bz_stack_top:

    .section .note.GNU-stack, "", @progbits
