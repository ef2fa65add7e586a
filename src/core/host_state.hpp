// guestvm — what a Host owns beyond its capability space (internal to src/core).
#pragma once

#include <memory>

#include "guestvm/host.hpp"
#include "kvm/system.hpp"

namespace guestvm {

/// The KVM system descriptor. Immutable after Host::create; any thread.
struct Host::State {
    std::unique_ptr<kvm::System> kvm;
};

/// The Host's internals, for the core's own use.
const Host::State &host_state(const Host &host) noexcept;

/// The KVM system descriptor a Host owns.
inline const kvm::System &host_kvm(const Host &host) noexcept { return *host_state(host).kvm; }

}  // namespace guestvm
