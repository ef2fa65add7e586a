// guestvm — the host: owns /dev/kvm and the process's capability space.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <memory>
#include <string>

#include "guestvm/cspace.hpp"
#include "guestvm/error.hpp"

namespace guestvm {

/// How a Host is set up.
struct HostOptions {
    std::string kvm_path = "/dev/kvm";
    /// Signal used to kick vCPU threads out of KVM_RUN; 0 picks SIGRTMIN + 1.
    int kick_signal = 0;
};

/// Owns the KVM system descriptor and one CSpace shared by every VM made from it, as an seL4
/// VMM owns one CSpace. VMs keep their Host alive (shared_ptr). Thread-safe.
class Host {
  public:
    /// Opens KVM and checks it can run guests; Errc::kKvmUnavailable names the cause if not.
    static Result<std::shared_ptr<Host>> create(const HostOptions &options = {});
    /// The process-wide Host used by the C API when no allocators are given. Created on first
    /// use; a failure is returned, not cached, so a later call may succeed.
    static Result<std::shared_ptr<Host>> process_default();

    /// The KVM system descriptor (internal: src/core/host_state.hpp).
    struct State;

  private:
    struct PrivateTag {};

  public:
    /// Use create(); public only so make_shared can reach it.
    Host(PrivateTag, std::unique_ptr<State> state, int kick_signal);
    ~Host();
    Host(const Host &) = delete;
    Host &operator=(const Host &) = delete;

    CSpace &cspace() noexcept { return cspace_; }
    const CSpace &cspace() const noexcept { return cspace_; }
    /// Most vCPUs one VM may have on this host (KVM_CAP_MAX_VCPUS).
    int max_vcpus() const noexcept;
    int kick_signal() const noexcept { return kick_signal_; }

  private:
    friend const State &host_state(const Host &host) noexcept;
    std::unique_ptr<State> s_;
    int kick_signal_;
    CSpace cspace_;
};

}  // namespace guestvm

#pragma GCC visibility pop
