#include "core/irq_ack.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <vector>

#include "kvm/fault_injection.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm {

IrqAckWatcher::~IrqAckWatcher() {
    if (thread_.joinable()) {
        thread_.request_stop();
        wake();
        thread_.join();
    }
    for (int irq = 0; irq < kLines; ++irq) {
        Line &line = lines_[irq];
        if (line.attached) {
            (void)vm_.deassign_irqfd(static_cast<std::uint32_t>(irq), line.trigger.get());
        }
    }
}

void IrqAckWatcher::wake() const noexcept {
    const std::uint64_t one = 1;
    if (wake_.valid()) (void)!::write(wake_.get(), &one, sizeof one);
}

Status IrqAckWatcher::set(int irq, Handler handler) {
    if (irq < 0 || irq >= kLines) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("IRQ {} is not a line 0..{}", irq, kLines - 1));
    }
    std::lock_guard lock(mutex_);
    Line &line = lines_[irq];
    if (!handler) {
        if (line.attached) {
            GUESTVM_TRY(vm_.deassign_irqfd(static_cast<std::uint32_t>(irq), line.trigger.get()));
            line.attached = false;
        }
        line.handler = nullptr;
        return {};
    }
    if (!wake_.valid()) {
        auto fd = kvm::make_eventfd();
        if (!fd) return std::unexpected(std::move(fd).error());
        wake_ = std::move(*fd);
    }
    // The thread before the line: a failure leaves no line attached without its watcher.
    if (!thread_.joinable()) {
        try {
            kvm::fault::check_thread_create();
            thread_ = std::jthread([this](std::stop_token stop) { loop(stop); });
        } catch (const std::system_error &e) {
            return make_error(
                Errc::kResourceExhausted,
                fmt::format("IRQ {}: cannot create the acknowledgement thread: {}", irq, e.what()));
        }
    }
    if (!line.trigger.valid()) {
        auto trigger = kvm::make_eventfd();
        if (!trigger) return std::unexpected(std::move(trigger).error());
        auto resample = kvm::make_eventfd();
        if (!resample) return std::unexpected(std::move(resample).error());
        line.trigger = std::move(*trigger);
        line.resample = std::move(*resample);
    }
    if (!line.attached) {
        std::uint64_t stale = 0;  // acknowledgements from before a removal are not news
        (void)!::read(line.resample.get(), &stale, sizeof stale);
        GUESTVM_TRY(vm_.assign_resample_irqfd(static_cast<std::uint32_t>(irq), line.trigger.get(),
                                              line.resample.get()));
        line.attached = true;
    }
    line.handler = std::move(handler);
    wake();  // a new descriptor to poll
    return {};
}

void IrqAckWatcher::note_level(int irq, bool level) noexcept {
    if (irq < 0 || irq >= kLines) return;
    auto &state = raised_[static_cast<std::size_t>(irq)];
    if (level) {
        state.fetch_or(kRaised | kHigh);
    } else {
        state.fetch_and(static_cast<std::uint8_t>(~kHigh));
    }
}

bool IrqAckWatcher::take_ack(int irq) noexcept {
    auto &state = raised_[static_cast<std::size_t>(irq)];
    std::uint8_t seen = state.load();
    // A line still high stays raised; one raised and since lowered is acknowledged now.
    while (seen == kRaised && !state.compare_exchange_weak(seen, 0)) {
    }
    return seen != 0;
}

void IrqAckWatcher::loop(std::stop_token stop) {
    std::vector<pollfd> fds;
    std::vector<int> irqs;  // fds[i + 1] watches line irqs[i]
    while (!stop.stop_requested()) {
        fds.assign(1, pollfd{wake_.get(), POLLIN, 0});
        irqs.clear();
        {
            std::lock_guard lock(mutex_);
            for (int irq = 0; irq < kLines; ++irq) {
                if (lines_[irq].resample.valid()) {
                    fds.push_back(pollfd{lines_[irq].resample.get(), POLLIN, 0});
                    irqs.push_back(irq);
                }
            }
        }
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            return;  // cannot happen with valid descriptors; stop watching rather than spin
        }
        std::uint64_t count = 0;
        if ((fds[0].revents & POLLIN) != 0) (void)!::read(wake_.get(), &count, sizeof count);
        for (std::size_t i = 0; i < irqs.size(); ++i) {
            if ((fds[i + 1].revents & POLLIN) == 0) continue;
            count = 0;
            if (::read(fds[i + 1].fd, &count, sizeof count) != sizeof count) continue;
            // The counter adds up the EOIs since the last read, which the guest can repeat at
            // will: they are one event, and none at all unless the VMM raised the line.
            if (!take_ack(irqs[i])) continue;
            Handler handler;
            {
                std::lock_guard lock(mutex_);
                handler = lines_[irqs[i]].handler;
            }
            if (handler) handler(irqs[i]);
        }
    }
}

}  // namespace guestvm
