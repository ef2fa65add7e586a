// guestvm — passthrough of the host's own I/O ports to a guest (libsel4vm's
// vm_enable_passthrough_ioport on Linux).
#pragma once

#include <cstdint>
#include <memory>

#include "devices/port_device.hpp"
#include "guestvm/error.hpp"
#include "guestvm/exits.hpp"

namespace guestvm {

/// The host's ports [base, base+count), put on a VM's port bus: each guest access is carried
/// out on the host with an IN or OUT of its own width, on the thread of the vCPU that made it.
/// Linux grants ports per thread with ioperm(2), which needs CAP_SYS_RAWIO and a kernel built
/// with CONFIG_X86_IOPL_IOPERM; each vCPU thread asks for itself at its first access. Owns
/// nothing but the range. Thread-safe.
class HostPorts {
  public:
    /// Checks on the calling thread that this process may use the range (ioperm); the error
    /// says why not: no ioperm in this kernel (ENOSYS), no CAP_SYS_RAWIO (EPERM).
    static Result<std::shared_ptr<HostPorts>> open(std::uint16_t base, std::uint32_t count);

    ExitAction io(PortAccess &access);

    HostPorts(std::uint16_t base, std::uint32_t count) : base_(base), count_(count) {}

  private:
    const std::uint16_t base_;
    const std::uint32_t count_;
};

}  // namespace guestvm
