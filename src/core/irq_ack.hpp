// guestvm — interrupt acknowledgements: tells the VMM when the guest EOIs an interrupt line.
#pragma once

#include <array>
#include <atomic>
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
/// handler once per read of it: acknowledgements that pile up before the thread reads are one
/// event. An acknowledgement counts only when the VMM raised the line since the last one (or
/// holds it high): the guest can write an EOI for any line at any time, and those that
/// acknowledge nothing are dropped (note_level tells the watcher what the VMM drives). A
/// line's descriptors live as long as the watcher, so the thread never polls a closed or
/// reused descriptor; removing a handler only detaches the irqfd from the line.
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

    /// Records that the VMM drives line `irq` to `level`; call it before driving the line, so
    /// the acknowledgement of this raise cannot come first. Lines outside 0..kLines-1 are
    /// ignored. Any thread; lock-free.
    void note_level(int irq, bool level) noexcept;

  private:
    struct Line {
        kvm::UniqueFd trigger;   // the irqfd's own eventfd (never written: lines are driven
                                 // with KVM_IRQ_LINE)
        kvm::UniqueFd resample;  // signalled by KVM on each acknowledgement
        bool attached = false;   // the irqfd is assigned to the line
        Handler handler;
    };
    // A line's raise state: kHigh is only ever set together with kRaised.
    static constexpr std::uint8_t kRaised = 1;  // raised since the last acknowledgement
    static constexpr std::uint8_t kHigh = 2;    // driven high now
    void loop(std::stop_token stop);
    void wake() const noexcept;
    /// Whether an acknowledgement of `irq` acknowledges a raise; consumes the raise unless
    /// the line is still high.
    bool take_ack(int irq) noexcept;

    const kvm::VmFd &vm_;
    std::mutex mutex_;
    std::array<Line, kLines> lines_;  // guarded by mutex_
    std::array<std::atomic<std::uint8_t>, kLines> raised_{};
    kvm::UniqueFd wake_;   // makes the thread rebuild its poll set or stop
    std::jthread thread_;  // last: joined before the lines are closed
};

}  // namespace guestvm
