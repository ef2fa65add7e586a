// guestvm — the vCPU run loop and exit dispatch (internal).
#pragma once

#include "common/handler_scope.hpp"
#include "guestvm/exits.hpp"
#include "kvm/exits.hpp"

namespace guestvm {

class Vcpu;

/// Runs a vCPU's guest and routes its exits. Friend of Vcpu and Vm; runs on the vCPU thread.
struct VcpuLoop {
    /// KVM_RUN until a kick, a handler that parks the vCPU, or a fatal exit.
    static void run_guest(Vcpu &vcpu);
    /// One exit → the action the loop takes. Stops the VM on fatal or unhandled exits.
    static ExitAction dispatch(Vcpu &vcpu, kvm::Exit &exit);
};

}  // namespace guestvm
