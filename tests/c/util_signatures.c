/* Compiles only if each util query has exactly libsel4vm's type; includes nothing else. */
#include <sel4vm/guest_vm_util.h>

seL4_CPtr (*const p_vm_get_vcpu_tcb)(vm_vcpu_t *) = vm_get_vcpu_tcb;
seL4_CPtr (*const p_vm_get_vcpu)(vm_t *, int) = vm_get_vcpu;
vm_vcpu_t *(*const p_vm_vcpu_for_target_cpu)(vm_t *, int) = vm_vcpu_for_target_cpu;
vm_vcpu_t *(*const p_vm_find_free_unassigned_vcpu)(vm_t *) = vm_find_free_unassigned_vcpu;
bool (*const p_is_vcpu_online)(vm_vcpu_t *) = is_vcpu_online;
vspace_t *(*const p_vm_get_vspace)(vm_t *) = vm_get_vspace;
vspace_t *(*const p_vm_get_vmm_vspace)(vm_t *) = vm_get_vmm_vspace;

int main(void) {
    /* Link check plus the NULL contract, in C. */
    if (p_vm_get_vcpu_tcb(NULL) != seL4_CapNull) return 1;
    if (p_vm_get_vcpu(NULL, -1) != seL4_CapNull) return 2;
    if (p_vm_vcpu_for_target_cpu(NULL, 0) != NULL) return 3;
    if (p_vm_find_free_unassigned_vcpu(NULL) != NULL) return 4;
    if (p_is_vcpu_online(NULL)) return 5;
    if (p_vm_get_vspace(NULL) != NULL || p_vm_get_vmm_vspace(NULL) != NULL) return 6;
    return 0;
}
