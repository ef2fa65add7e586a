// guestvm — the kernel objects a vCPU's capabilities name.
#pragma once

#include "guestvm/cspace.hpp"

namespace guestvm {

class Vcpu;

/// A TCB: the host thread that runs one vCPU. Holds its Vcpu until revoked.
class TcbObject final : public KernelObject {
  public:
    explicit TcbObject(Vcpu *vcpu) : KernelObject(ObjectType::kTcb), vcpu(vcpu) {}
    Vcpu *const vcpu;
};

/// A VCPU: the KVM vCPU's architectural state. Holds its Vcpu until revoked.
class VcpuObject final : public KernelObject {
  public:
    explicit VcpuObject(Vcpu *vcpu) : KernelObject(ObjectType::kVcpu), vcpu(vcpu) {}
    Vcpu *const vcpu;
};

}  // namespace guestvm
