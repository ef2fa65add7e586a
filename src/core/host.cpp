#include "guestvm/host.hpp"

#include <signal.h>

#include <mutex>

#include "core/host_state.hpp"
#include "kvm/system.hpp"
#include "kvm/vcpu_fd.hpp"

namespace guestvm {

Host::Host(PrivateTag, std::unique_ptr<State> state, int kick_signal)
    : s_(std::move(state)), kick_signal_(kick_signal) {}

const Host::State &host_state(const Host &host) noexcept { return *host.s_; }

Host::~Host() = default;

Result<std::shared_ptr<Host>> Host::create(const HostOptions &options) {
    auto sys = kvm::System::open(options.kvm_path.c_str());
    if (!sys) return std::unexpected(std::move(sys).error());
    int signo = options.kick_signal != 0 ? options.kick_signal : SIGRTMIN + 1;
    if (signo <= 0 || signo > SIGRTMAX) {
        return make_error(Errc::kInvalidArgument, "kick signal out of range");
    }
    GUESTVM_TRY(kvm::VcpuFd::install_kick_handler(signo));
    auto owned = std::make_unique<kvm::System>(std::move(*sys));
    return std::make_shared<Host>(PrivateTag{}, std::make_unique<State>(State{std::move(owned)}),
                                  signo);
}

Result<std::shared_ptr<Host>> Host::process_default() {
    static std::mutex mu;
    // Kept for the life of the process: its CSpace must outlive every cptr handed out, so a
    // stale cptr can never name an object of a re-created default host.
    static std::shared_ptr<Host> cached;
    std::lock_guard lock(mu);
    if (cached) return cached;
    auto host = create();
    if (host) cached = *host;
    return host;
}

int Host::max_vcpus() const noexcept { return s_->kvm->max_vcpus(); }

}  // namespace guestvm
