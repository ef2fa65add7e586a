// guestvm CLI — standard input to the guest's COM1: raw mode and escape keys on a terminal,
// plain bytes from a pipe or file.
#pragma once

#include <termios.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <thread>

#include "guestvm/serial.hpp"
#include "guestvm/vm.hpp"
#include "run_request.hpp"

namespace guestvm::cli {

// The stop message of a VM the console's Ctrl-A x stopped.
inline constexpr std::string_view kQuitMessage = "quit from the console (Ctrl-A x)";

// What a run does with standard input.
enum class StdinUse {
    kNone,     // not read: --stdin none, --json on a terminal, or a terminal we do not own
    kBytes,    // a pipe or file, forwarded as it is; EOF ends forwarding, not the VM
    kConsole,  // the terminal in the foreground: raw mode, escape keys, output unbuffered
};

/// The use `req` and what file descriptor 0 is make.
StdinUse stdin_use(const RunRequest &req);

// The guest's serial bytes straight to stdout as they come (a console shows a prompt that has
// no '\n' yet). Must outlive the VM whose sink it is.
class RawOutput {
  public:
    SerialSink sink();
    /// Ends the guest's last line if it did not (before the report).
    void finish_line();

  private:
    std::atomic<bool> mid_line_{false};
};

// Terminal `fd` in raw mode for as long as this lives: no echo, no line editing, keys such as
// Ctrl-C go to the guest; output processing stays, so '\n' still starts a line. The saved
// attributes come back on destruction, and on SIGINT, SIGTERM, SIGHUP, SIGQUIT or SIGABRT
// before the signal takes its default course. One at a time; one thread.
class RawTerminal {
  public:
    explicit RawTerminal(int fd);
    ~RawTerminal();
    RawTerminal(const RawTerminal &) = delete;
    RawTerminal &operator=(const RawTerminal &) = delete;

  private:
    int fd_;
    bool raw_ = false;
    struct sigaction old_[5] = {};
};

// A file descriptor this owns (closed on destruction); -1 for none.
class OwnedFd {
  public:
    explicit OwnedFd(int fd = -1) : fd_(fd) {}
    ~OwnedFd();
    OwnedFd(const OwnedFd &) = delete;
    OwnedFd &operator=(const OwnedFd &) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

// Forwards file descriptor 0 to `input` on a thread of its own, which waits in poll() on it and
// an eventfd, so that stopping it never waits on a read. With `console`, escape keys apply and
// Ctrl-A x stops `vm`. Construct, close and destroy on one thread; `vm` must outlive it.
class StdinForwarder {
  public:
    StdinForwarder(std::shared_ptr<SerialInput> input, Vm &vm, bool console);
    ~StdinForwarder() { close(); }
    StdinForwarder(const StdinForwarder &) = delete;
    StdinForwarder &operator=(const StdinForwarder &) = delete;

    /// Stops forwarding and joins the thread.
    void close();
    /// Whether Ctrl-A x stopped the VM.
    bool quit() const { return quit_.load(); }

  private:
    void forward(std::stop_token stop);
    bool deliver(std::span<const std::uint8_t> bytes, const std::stop_token &stop);

    std::shared_ptr<SerialInput> input_;
    Vm &vm_;
    const bool console_;
    std::atomic<bool> quit_{false};
    OwnedFd wake_;         // an eventfd: the thread's poll() returns when it is written
    std::jthread thread_;  // last: starts once the members it uses exist
};

// Standard input wired to the guest for one run, as `use` says: the terminal's raw mode and
// the forwarder. Closing (or destroying) it stops the forwarder and restores the terminal.
class Console {
  public:
    Console(StdinUse use, std::shared_ptr<SerialInput> input, Vm &vm);
    void close();
    bool quit() const { return forwarder_ && forwarder_->quit(); }

  private:
    std::optional<RawTerminal> terminal_;
    std::optional<StdinForwarder> forwarder_;  // after terminal_: stops before it is restored
};

}  // namespace guestvm::cli
