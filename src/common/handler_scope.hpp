// guestvm — knowing whether the current thread is inside an exit handler (internal).
#pragma once

namespace guestvm {

/// True while the calling thread runs an exit handler. Handlers must not add or remove
/// handlers, areas or reservations (those wait for handlers to finish): the mutators check this
/// and refuse instead of deadlocking.
bool in_exit_handler() noexcept;

/// Marks the calling thread as inside an exit handler for its lifetime.
class HandlerScope {
  public:
    HandlerScope() noexcept;
    ~HandlerScope();
    HandlerScope(const HandlerScope &) = delete;
    HandlerScope &operator=(const HandlerScope &) = delete;

  private:
    bool outer_;
};

}  // namespace guestvm
