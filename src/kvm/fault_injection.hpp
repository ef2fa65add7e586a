// guestvm::kvm::fault — makes a chosen system call of the VMM fail, for tests of error paths.
//
// Every ioctl, mmap, mremap, open, memfd_create and eventfd that src/kvm makes goes through the
// wrappers below, and src/core asks before creating a thread. Disarmed (always, outside tests)
// a check is one relaxed atomic load. Armed with a Rule, the checks count the calls the rule
// matches and fail the chosen ones: the wrapper returns -1 (MAP_FAILED for mmap) with errno set
// to the rule's error, so the caller reports it exactly as it would a real failure.
#pragma once

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace guestvm::kvm::fault {

/// The kinds of call that can be made to fail.
enum class Op : std::uint8_t {
    kAny,  ///< in a Match: every kind below
    kIoctl,
    kMmap,
    kMremap,
    kOpen,
    kMemfd,
    kEventfd,
    kThreadCreate,
};

/// Which calls a rule looks at: those of kind `op`; for kIoctl, only request `request` unless
/// it is 0.
struct Match {
    Op op = Op::kAny;
    unsigned long request = 0;
};

/// What to do with the calls a Match selects.
struct Rule {
    Match match;
    std::uint64_t nth = 0;  ///< fail the nth matching call (1-based); 0: fail none, only count
    bool every = false;     ///< fail every matching call
    int error = EIO;        ///< the errno the failed call reports
    /// false: only calls made by the thread that armed the rule count (a vCPU thread running
    /// a guest does not disturb a walk); true: calls from every thread.
    bool all_threads = false;

    static Rule count(Match m) { return Rule{m}; }
    static Rule fail_nth(Match m, std::uint64_t n, int error = EIO) {
        return Rule{m, n, false, error};
    }
    static Rule fail_every(Match m, int error = EIO) { return Rule{m, 0, true, error}; }
};

/// Arms one rule for its lifetime. One at a time: arming a second while one is armed throws
/// std::logic_error. Queries are thread-safe.
class Injection {
  public:
    explicit Injection(Rule rule);
    ~Injection();
    Injection(const Injection &) = delete;
    Injection &operator=(const Injection &) = delete;

    /// Matching calls so far, the failed ones included.
    std::uint64_t seen() const;
    /// Calls failed so far.
    std::uint64_t failed() const;
    /// The names of the matching calls so far, in order ("KVM_CREATE_VCPU", "mmap", ...).
    std::vector<std::string> calls() const;
    /// The name of the last call failed, or empty.
    std::string last_failed() const;
};

/// The name of a call of kind `op` (for kIoctl the request's name, e.g. "KVM_SET_SREGS").
std::string call_name(Op op, unsigned long request = 0);

namespace detail {
extern std::atomic<bool> armed;
int check_armed(Op op, unsigned long request) noexcept;
}  // namespace detail

/// 0 to go ahead with the call, or the errno it must fail with.
inline int check(Op op, unsigned long request = 0) noexcept {
    if (!detail::armed.load(std::memory_order_relaxed)) [[likely]]
        return 0;
    return detail::check_armed(op, request);
}

/// Call right before creating a thread: throws the std::system_error that std::thread's
/// constructor throws when the thread cannot be created, if this creation is to fail.
void check_thread_create();

// The wrapped calls: the system call, unless the armed rule fails it.

namespace detail {
/// `call()`, or `failure` with errno set when the armed rule fails this call.
template <typename Ret, typename Call>
Ret call_unless_failed(Op op, unsigned long request, Ret failure, Call &&call) noexcept {
    if (int e = check(op, request)) {
        errno = e;
        return failure;
    }
    return call();
}
}  // namespace detail

template <typename Arg>
int ioctl(int fd, unsigned long request, Arg arg) noexcept {
    return detail::call_unless_failed(Op::kIoctl, request, -1,
                                      [&] { return ::ioctl(fd, request, arg); });
}
inline void *mmap(void *addr, std::size_t size, int prot, int flags, int fd, off_t off) noexcept {
    return detail::call_unless_failed(Op::kMmap, 0, MAP_FAILED,
                                      [&] { return ::mmap(addr, size, prot, flags, fd, off); });
}
inline void *mremap(void *old_addr, std::size_t old_size, std::size_t new_size, int flags,
                    void *new_addr) noexcept {
    return detail::call_unless_failed(Op::kMremap, 0, MAP_FAILED, [&] {
        return ::mremap(old_addr, old_size, new_size, flags, new_addr);
    });
}
inline int open(const char *path, int flags) noexcept {
    return detail::call_unless_failed(Op::kOpen, 0, -1, [&] { return ::open(path, flags); });
}
inline int memfd_create(const char *name, unsigned flags) noexcept {
    return detail::call_unless_failed(Op::kMemfd, 0, -1,
                                      [&] { return ::memfd_create(name, flags); });
}
inline int eventfd(unsigned initval, int flags) noexcept {
    return detail::call_unless_failed(Op::kEventfd, 0, -1,
                                      [&] { return ::eventfd(initval, flags); });
}

}  // namespace guestvm::kvm::fault
