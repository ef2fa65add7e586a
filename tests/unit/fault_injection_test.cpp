// The failure-injection seam of src/kvm, without KVM: ioctls on /dev/null, anonymous mappings,
// eventfds and memfds fail when, and only when, the armed rule says so.
#include "kvm/fault_injection.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>

#include <stdexcept>
#include <system_error>
#include <thread>

#include "kvm/cpuid_abi.hpp"
#include "kvm/mapping.hpp"
#include "kvm/system.hpp"
#include "kvm/unique_fd.hpp"
#include "kvm/vm_fd.hpp"

namespace guestvm::kvm {
namespace {

using fault::Injection;
using fault::Match;
using fault::Op;
using fault::Rule;

constexpr Match kApiVersion{Op::kIoctl, KVM_GET_API_VERSION};

struct DevNull {
    UniqueFd fd{::open("/dev/null", O_RDWR | O_CLOEXEC)};
    /// KVM_GET_API_VERSION through the seam: -1 and its errno (ENOTTY when really made).
    int api_version_errno() const {
        errno = 0;
        return fault::ioctl(fd.get(), KVM_GET_API_VERSION, 0) < 0 ? errno : 0;
    }
};

TEST(FaultInjection, DisarmedCallsAreTheRealOnes) {
    DevNull null;
    ASSERT_TRUE(null.fd.valid());
    EXPECT_EQ(fault::check(Op::kIoctl, KVM_RUN), 0);
    EXPECT_EQ(null.api_version_errno(), ENOTTY);
    auto map = Mapping::anonymous(4096);
    ASSERT_TRUE(map) << map.error().message();
}

TEST(FaultInjection, FailsOnlyTheNthMatchingCallWithTheChosenErrno) {
    DevNull null;
    Injection inject(Rule::fail_nth(kApiVersion, 2, ENOSPC));
    EXPECT_EQ(null.api_version_errno(), ENOTTY);
    EXPECT_EQ(null.api_version_errno(), ENOSPC);
    EXPECT_EQ(null.api_version_errno(), ENOTTY);
    EXPECT_EQ(inject.seen(), 3u);
    EXPECT_EQ(inject.failed(), 1u);
    EXPECT_EQ(inject.last_failed(), "KVM_GET_API_VERSION");
}

TEST(FaultInjection, OtherRequestsAndKindsDoNotMatch) {
    DevNull null;
    Injection inject(Rule::fail_every(Match{Op::kIoctl, KVM_CREATE_VM}));
    EXPECT_EQ(null.api_version_errno(), ENOTTY);
    EXPECT_TRUE(Mapping::anonymous(4096));
    EXPECT_EQ(inject.seen(), 0u);
    errno = 0;
    EXPECT_EQ(fault::ioctl(null.fd.get(), KVM_CREATE_VM, 0), -1);
    EXPECT_EQ(errno, EIO);  // the default
    EXPECT_EQ(inject.seen(), 1u);
}

TEST(FaultInjection, AnIoctlRuleWithoutRequestMatchesEveryIoctl) {
    DevNull null;
    Injection inject(Rule::count(Match{Op::kIoctl}));
    EXPECT_EQ(null.api_version_errno(), ENOTTY);
    (void)fault::ioctl(null.fd.get(), KVM_RUN, 0);
    EXPECT_TRUE(Mapping::anonymous(4096));
    EXPECT_EQ(inject.seen(), 2u);
    EXPECT_EQ(inject.failed(), 0u);
    EXPECT_EQ(inject.calls(), (std::vector<std::string>{"KVM_GET_API_VERSION", "KVM_RUN"}));
}

TEST(FaultInjection, FailEveryFailsEachCallAndEndsWithTheInjection) {
    {
        Injection inject(Rule::fail_every(Match{Op::kMmap}));
        for (int i = 0; i < 2; ++i) {
            auto map = Mapping::anonymous(4096);
            ASSERT_FALSE(map);
            EXPECT_NE(map.error().message().find("mmap"), std::string::npos);
            EXPECT_NE(map.error().message().find("EIO"), std::string::npos);
        }
        EXPECT_EQ(inject.failed(), 2u);
    }
    EXPECT_TRUE(Mapping::anonymous(4096));
}

// Several calls in a row, each of which can fail: memfd, its mapping, an eventfd.
Status three_calls() {
    auto shm = create_shared_memory(4096, "fault-test");
    if (!shm) return std::unexpected(std::move(shm).error());
    auto efd = make_eventfd();
    if (!efd) return std::unexpected(std::move(efd).error());
    return {};
}

TEST(FaultInjection, CountThenWalkFailsEachCallInTurn) {
    std::vector<std::string> names;
    {
        Injection count(Rule::count(Match{}));
        ASSERT_TRUE(three_calls());
        names = count.calls();
    }
    ASSERT_EQ(names, (std::vector<std::string>{"memfd_create", "mmap", "eventfd"}));
    for (std::size_t n = 1; n <= names.size(); ++n) {
        Injection inject(Rule::fail_nth(Match{}, n, ENOMEM));
        auto r = three_calls();
        ASSERT_FALSE(r) << "call " << n;
        EXPECT_EQ(inject.last_failed(), names[n - 1]);
        EXPECT_NE(r.error().message().find(names[n - 1]), std::string::npos) << r.error().message();
        EXPECT_NE(r.error().message().find("ENOMEM"), std::string::npos) << r.error().message();
    }
}

TEST(FaultInjection, OnlyTheArmingThreadCountsUnlessAllThreads) {
    DevNull null;
    {
        Injection inject(Rule::fail_every(kApiVersion));
        int other = -1;
        std::thread([&] { other = null.api_version_errno(); }).join();
        EXPECT_EQ(other, ENOTTY);
        EXPECT_EQ(inject.seen(), 0u);
    }
    Rule all = Rule::fail_every(kApiVersion, EPERM);
    all.all_threads = true;
    Injection inject(all);
    int other = -1;
    std::thread([&] { other = null.api_version_errno(); }).join();
    EXPECT_EQ(other, EPERM);
    EXPECT_EQ(inject.seen(), 1u);
}

TEST(FaultInjection, ThreadCreationThrowsWhatStdThreadThrows) {
    fault::check_thread_create();  // disarmed: nothing
    Injection inject(Rule::fail_nth(Match{Op::kThreadCreate}, 1, EAGAIN));
    try {
        fault::check_thread_create();
        ADD_FAILURE() << "no exception";
    } catch (const std::system_error &e) {
        EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again);
    }
    fault::check_thread_create();  // only the first
    EXPECT_EQ(inject.seen(), 2u);
}

TEST(FaultInjection, OneRuleAtATime) {
    Injection first(Rule::count(Match{}));
    EXPECT_THROW(Injection second(Rule::count(Match{})), std::logic_error);
}

TEST(FaultInjection, SystemOpenNamesTheFailingCall) {
    auto real = System::open("/dev/null");
    ASSERT_FALSE(real);
    EXPECT_NE(real.error().message().find("KVM_GET_API_VERSION"), std::string::npos);
    {
        Injection inject(Rule::fail_nth(Match{Op::kOpen}, 1, EACCES));
        auto r = System::open("/dev/null");
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), Errc::kKvmUnavailable);
        EXPECT_NE(r.error().message().find("open /dev/null"), std::string::npos);
        EXPECT_NE(r.error().message().find("EACCES"), std::string::npos);
    }
    Injection inject(Rule::fail_nth(kApiVersion, 1, EPERM));
    auto r = System::open("/dev/null");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("KVM_GET_API_VERSION on /dev/null"), std::string::npos);
    EXPECT_NE(r.error().message().find("EPERM"), std::string::npos);
}

TEST(FaultInjection, CallNames) {
    EXPECT_EQ(fault::call_name(Op::kIoctl, kIoctlSetCpuid2), "KVM_SET_CPUID2");
    EXPECT_EQ(fault::call_name(Op::kIoctl, KVM_SET_SREGS), "KVM_SET_SREGS");
    EXPECT_EQ(fault::call_name(Op::kIoctl, 0x1234), "ioctl 0x1234");
    EXPECT_EQ(fault::call_name(Op::kMremap), "mremap");
}

}  // namespace
}  // namespace guestvm::kvm
