// guestvm CLI — standard input to the guest's COM1.
#include "console.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iterator>

#include "escape_keys.hpp"

namespace guestvm::cli {
namespace {

// The signals that end the process by default while the terminal is raw: each restores the
// terminal first.
constexpr int kRestoreSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT};
static_assert(std::size(kRestoreSignals) == 5, "RawTerminal::old_ has one slot per signal");

// What a signal handler needs to restore the terminal: written before g_raw_fd is set, and
// only read by the handler once it is.
struct termios g_saved_attrs;
volatile std::sig_atomic_t g_raw_fd = -1;

void restore_terminal_then_default(int signo) {
    const int fd = g_raw_fd;
    if (fd >= 0) ::tcsetattr(fd, TCSANOW, &g_saved_attrs);  // async-signal-safe
    ::signal(signo, SIG_DFL);
    ::raise(signo);  // delivered as the handler returns: the default action, as without us
}

}  // namespace

StdinUse stdin_use(const RunRequest &req) {
    struct stat st {};
    if (!req.forward_stdin || ::fstat(STDIN_FILENO, &st) != 0) return StdinUse::kNone;
    if (!::isatty(STDIN_FILENO)) return StdinUse::kBytes;
    // A terminal: not with --json (the document is the output, nothing shows what one types),
    // and not from a background job, which may not read it or change its mode. A terminal
    // that is not our controlling one has no foreground group: it is ours to use.
    const pid_t foreground = ::tcgetpgrp(STDIN_FILENO);
    if (req.json || (foreground >= 0 && foreground != ::getpgrp())) return StdinUse::kNone;
    return StdinUse::kConsole;
}

SerialSink RawOutput::sink() {
    return [this](int, std::string_view bytes) {
        if (bytes.empty()) return;
        std::fwrite(bytes.data(), 1, bytes.size(), stdout);
        std::fflush(stdout);
        mid_line_.store(bytes.back() != '\n');
    };
}

void RawOutput::finish_line() {
    if (mid_line_.exchange(false)) std::fputc('\n', stdout);
}

RawTerminal::RawTerminal(int fd) : fd_(fd) {
    struct termios attrs {};
    if (::tcgetattr(fd, &attrs) != 0) return;
    g_saved_attrs = attrs;
    g_raw_fd = fd;
    struct sigaction restore {};
    restore.sa_handler = restore_terminal_then_default;
    sigemptyset(&restore.sa_mask);
    for (std::size_t i = 0; i < std::size(kRestoreSignals); ++i) {
        ::sigaction(kRestoreSignals[i], &restore, &old_[i]);
        // A signal the caller ignores (nohup, a background shell) stays ignored.
        if (old_[i].sa_handler == SIG_IGN) ::sigaction(kRestoreSignals[i], &old_[i], nullptr);
    }
    struct termios raw = attrs;
    raw.c_iflag &=
        ~static_cast<tcflag_t>(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    raw.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag &= ~static_cast<tcflag_t>(CSIZE | PARENB);
    raw.c_cflag |= CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    raw_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
    if (!raw_) {
        for (std::size_t i = 0; i < std::size(kRestoreSignals); ++i) {
            ::sigaction(kRestoreSignals[i], &old_[i], nullptr);
        }
        g_raw_fd = -1;
    }
}

RawTerminal::~RawTerminal() {
    if (!raw_) return;
    // The terminal first: a signal that comes between the two still finds it restored.
    ::tcsetattr(fd_, TCSANOW, &g_saved_attrs);
    for (std::size_t i = 0; i < std::size(kRestoreSignals); ++i) {
        ::sigaction(kRestoreSignals[i], &old_[i], nullptr);
    }
    g_raw_fd = -1;
}

OwnedFd::~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
}

StdinForwarder::StdinForwarder(std::shared_ptr<SerialInput> input, Vm &vm, bool console)
    : input_(std::move(input)),
      vm_(vm),
      console_(console),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!input_) return;
    if (wake_.get() < 0) {
        std::fprintf(stderr, "guestvm: standard input is not forwarded: eventfd: %s\n",
                     std::strerror(errno));
        return;
    }
    thread_ = std::jthread([this](std::stop_token stop) { forward(stop); });
}

void StdinForwarder::close() {
    if (!thread_.joinable()) return;
    thread_.request_stop();  // the thread's stop callback writes the eventfd
    thread_.join();
}

void StdinForwarder::forward(std::stop_token stop) {
    std::stop_callback wake(stop, [this] {
        const std::uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof one);
    });
    EscapeKeys keys;
    std::array<std::uint8_t, 4096> buffer;
    while (!stop.stop_requested()) {
        pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents != 0) return;
        if (fds[0].revents == 0) continue;
        const ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return;  // end of input (or a terminal gone): the VM runs on
        const std::span<const std::uint8_t> got(buffer.data(), static_cast<std::size_t>(n));
        if (!console_) {
            if (!deliver(got, stop)) return;
            continue;
        }
        const Keys k = keys.feed(got);
        if (k.help) {
            std::fputs(escape_keys_help(), stderr);
            std::fflush(stderr);
        }
        const auto forward =
            std::span(reinterpret_cast<const std::uint8_t *>(k.forward.data()), k.forward.size());
        if (!deliver(forward, stop)) return;
        if (k.quit) {
            quit_.store(true);
            vm_.stop({StopReason::kRequested, std::string(kQuitMessage)});
            return;
        }
    }
}

// Hands `bytes` to the UART as the guest makes room; false when stopped or the VM is gone.
bool StdinForwarder::deliver(std::span<const std::uint8_t> bytes, const std::stop_token &stop) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        done += input_->write_all(bytes.subspan(done), stop, std::chrono::milliseconds(500));
        if (stop.stop_requested() || !input_->connected()) return false;
    }
    return true;
}

Console::Console(StdinUse use, std::shared_ptr<SerialInput> input, Vm &vm) {
    if (use == StdinUse::kNone || !input) return;
    if (use == StdinUse::kConsole) terminal_.emplace(STDIN_FILENO);
    forwarder_.emplace(std::move(input), vm, use == StdinUse::kConsole);
}

void Console::close() {
    if (forwarder_) forwarder_->close();
    terminal_.reset();
}

}  // namespace guestvm::cli
