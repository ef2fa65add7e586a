// guestvm — invoking capabilities: what a TCB cap and a VCPU cap can do.
//
// Each call looks the cptr up in the CSpace, checks the object's type and that it is live,
// and acts on it. A null, deleted (stale) or wrongly typed cap gives an Error
// (kNullCapability, kStaleCapability, kWrongCapType), never a crash.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <string>

#include "guestvm/cspace.hpp"
#include "guestvm/error.hpp"
#include "guestvm/registers.hpp"

namespace guestvm {

namespace tcb {
/// Pauses the thread's guest execution (an online vCPU); returns once it is paused.
Status suspend(const CSpace &cspace, CPtr tcb);
/// Continues a suspended thread where it stopped.
Status resume(const CSpace &cspace, CPtr tcb);
/// The user-visible registers (pauses the vCPU briefly if it is running).
Result<Registers> read_registers(const CSpace &cspace, CPtr tcb);
Status write_registers(const CSpace &cspace, CPtr tcb, const Registers &regs);
/// Names the host thread (shown in /proc, debuggers; at most 15 characters are kept).
Status set_name(const CSpace &cspace, CPtr tcb, std::string name);
/// seL4 priority 0..255, mapped onto the host thread's nice value.
Status set_priority(const CSpace &cspace, CPtr tcb, int priority);
/// Pins the host thread to one host CPU (-1 unpins).
Status set_affinity(const CSpace &cspace, CPtr tcb, int host_cpu);
}  // namespace tcb

namespace vcpu_object {
/// The vCPU's architectural state: control registers, segments, descriptor tables, EFER.
Result<SpecialRegisters> read_state(const CSpace &cspace, CPtr vcpu);
Status write_state(const CSpace &cspace, CPtr vcpu, const SpecialRegisters &state);
}  // namespace vcpu_object

}  // namespace guestvm

#pragma GCC visibility pop
