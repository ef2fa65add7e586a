// guestvm — interrupt acknowledgements: tells the VMM when the guest EOIs an interrupt line.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "guestvm/error.hpp"
#include "kvm/unique_fd.hpp"

namespace guestvm {

namespace kvm {
class VmFd;
}

/// Watches guest acknowledgements of interrupt lines through KVM resample irqfds: one thread,
/// started with the first handler, polls one eventfd per watched line and calls that line's
/// handler once per acknowledgement. A line's descriptors live as long as the watcher, so the
/// thread never polls a closed or reused descriptor; removing a handler only detaches the
/// irqfd from the line.
class IrqAckWatcher {
  public:
    using Handler = std::function<void(int irq)>;
    static constexpr int kLines = 24;

    explicit IrqAckWatcher(const kvm::VmFd &vm) : vm_(vm) {}
    ~IrqAckWatcher();
    IrqAckWatcher(const IrqAckWatcher &) = delete;
    IrqAckWatcher &operator=(const IrqAckWatcher &) = delete;

    /// Sets (or, with a null handler, removes) the handler of line `irq` (0..kLines-1). The
    /// VM must have the in-kernel irqchip. Callable from a handler.
    Status set(int irq, Handler handler);

  private:
    struct Line {
        kvm::UniqueFd trigger;   // the irqfd's own eventfd (never written: lines are driven
                                 // with KVM_IRQ_LINE)
        kvm::UniqueFd resample;  // signalled by KVM on each acknowledgement
        bool attached = false;   // the irqfd is assigned to the line
        Handler handler;
    };
    void loop(std::stop_token stop);
    void wake() const noexcept;

    const kvm::VmFd &vm_;
    std::mutex mutex_;
    std::array<Line, kLines> lines_;  // guarded by mutex_
    kvm::UniqueFd wake_;              // makes the thread rebuild its poll set or stop
    std::jthread thread_;             // last: joined before the lines are closed
};

}  // namespace guestvm
