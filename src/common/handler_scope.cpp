#include "common/handler_scope.hpp"

namespace guestvm {

namespace {
thread_local bool tls_in_handler = false;
}

bool in_exit_handler() noexcept { return tls_in_handler; }

HandlerScope::HandlerScope() noexcept : outer_(tls_in_handler) { tls_in_handler = true; }
HandlerScope::~HandlerScope() { tls_in_handler = outer_; }

}  // namespace guestvm
