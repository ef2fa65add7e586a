// guestvm — what a device sees of a port access: an offset in its own range, never the VM.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>

#include "guestvm/error.hpp"
#include "guestvm/exits.hpp"

namespace guestvm {

/// One access to a device's port range. For a read the device fills `data` (little-endian,
/// data.size() bytes). A device that fails says why with fail().
struct PortAccess {
    std::uint64_t offset = 0;  ///< from the base of the device's range
    std::span<std::uint8_t> data;
    bool is_write = false;
    int vcpu = -1;  ///< the logical id of the vCPU that made the access
    std::optional<Error> error;
    std::uint32_t elements = 1;  ///< accesses the instruction makes (string I/O: more than 1)

    ExitAction fail(Error why) {
        error = std::move(why);
        return ExitAction::kError;
    }
};

/// The handler that puts `device` on a VM's port bus at `base`: it hands the device the offset
/// and the vCPU id, and carries a failure's reason back. The handler owns the device.
/// `Device` needs `ExitAction io(PortAccess &)`.
template <typename Device>
IoHandler port_handler(std::uint16_t base, std::shared_ptr<Device> device) {
    return [base, device = std::move(device)](ExitContext &ctx, IoAccess &access) {
        PortAccess pa{static_cast<std::uint64_t>(access.port - base), access.data, access.is_write,
                      ctx.vcpu_id, std::nullopt};
        ExitAction action = device->io(pa);
        if (pa.error) ctx.error = std::move(pa.error);
        return action;
    };
}

}  // namespace guestvm
