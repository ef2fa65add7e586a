// guestvm — errors as values.
//
// Every fallible operation returns Result<T> (std::expected<T, Error>). An Error carries a
// code a program can branch on and a message naming the call and the object involved.
#pragma once
/* The library is built with hidden visibility; what this header declares is its interface. */
#pragma GCC visibility push(default)

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace guestvm {

/// What went wrong, in a form a caller can branch on.
enum class Errc {
    kOk = 0,
    kInvalidArgument,    ///< a parameter is out of range or malformed
    kNotFound,           ///< no object with that id / address
    kAlreadyExists,      ///< the slot, range or assignment is taken
    kNullCapability,     ///< invocation on seL4_CapNull
    kStaleCapability,    ///< the capability's object was deleted
    kWrongCapType,       ///< the capability names an object of another type
    kBadState,           ///< the object is not in a state that allows this
    kKvmUnavailable,     ///< /dev/kvm is missing, inaccessible or unusable
    kSystem,             ///< a system call failed (errno in the message)
    kMalformedImage,     ///< a guest image is truncated, inconsistent or unsupported
    kResourceExhausted,  ///< no free vCPU, slot or memory left
    kTimeout,            ///< a wait did not complete in time
};

/// Short stable name of an error code ("invalid-argument", ...).
std::string_view errc_name(Errc code) noexcept;

/// An error: a code plus a human-readable message naming the call and object.
class Error {
  public:
    Error(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

    Errc code() const noexcept { return code_; }
    const std::string &message() const noexcept { return message_; }

    /// Prepends context: "while X: <message>".
    Error &&context(std::string_view what) && {
        message_ = std::string(what) + ": " + message_;
        return std::move(*this);
    }

  private:
    Errc code_;
    std::string message_;
};

template <typename T>
using Result = std::expected<T, Error>;

/// Result of an operation with no value.
using Status = std::expected<void, Error>;

inline std::unexpected<Error> make_error(Errc code, std::string message) {
    return std::unexpected(Error(code, std::move(message)));
}

/// An error for a failed system call: "<call>: <strerror(err)> (<ERRNAME>)".
std::unexpected<Error> errno_error(std::string_view call, int err = errno);

}  // namespace guestvm

/// Evaluates a Result/Status expression; returns its error from the enclosing function.
#define GUESTVM_TRY(expr)                                                   \
    do {                                                                    \
        auto guestvm_try_result_ = (expr);                                  \
        if (!guestvm_try_result_) {                                         \
            return std::unexpected(std::move(guestvm_try_result_).error()); \
        }                                                                   \
    } while (0)

/// Evaluates a Result expression and binds its value to `var`, or returns its error.
#define GUESTVM_TRY_ASSIGN(var, expr)                             \
    auto var##_result_ = (expr);                                  \
    if (!var##_result_) {                                         \
        return std::unexpected(std::move(var##_result_).error()); \
    }                                                             \
    auto var = std::move(*var##_result_)

#pragma GCC visibility pop
