// The ACPI sleep registers without KVM: S5 powers off, other sleep states wake at once, and
// every read answers something an OS can live with.
#include "devices/acpi_sleep.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace guestvm {
namespace {

struct Probe {
    std::vector<int> power_offs;  // the vCPU of each call
    AcpiSleep sleep{[this](int vcpu) { power_offs.push_back(vcpu); }, 5};

    ExitAction write(std::uint64_t offset, std::vector<std::uint8_t> bytes, int vcpu = 0) {
        PortAccess a{offset, bytes, true, vcpu, std::nullopt};
        return sleep.io(a);
    }
    std::vector<std::uint8_t> read(std::uint64_t offset, std::size_t size) {
        std::vector<std::uint8_t> bytes(size, 0x5a);
        PortAccess a{offset, bytes, false, 0, std::nullopt};
        EXPECT_EQ(sleep.io(a), ExitAction::kContinue);
        return bytes;
    }
};

constexpr std::uint8_t slp(std::uint8_t type, bool enable) {
    return static_cast<std::uint8_t>(type << AcpiSleep::kSleepTypeShift |
                                     (enable ? AcpiSleep::kSleepEnable : 0));
}

TEST(AcpiSleep, SleepEnableWithTheS5TypePowersOffFromThatVcpu) {
    Probe p;
    EXPECT_EQ(p.write(0, {slp(5, false)}), ExitAction::kContinue);
    EXPECT_TRUE(p.power_offs.empty()) << "SLP_TYP alone does nothing";
    EXPECT_EQ(p.write(0, {slp(5, true)}, 3), ExitAction::kContinue);
    EXPECT_EQ(p.power_offs, std::vector<int>{3});
    EXPECT_EQ(p.sleep.ignored_requests(), 0u);
}

TEST(AcpiSleep, OtherSleepStatesAreIgnoredAndWakeAtOnce) {
    Probe p;
    EXPECT_EQ(p.read(1, 1)[0], 0) << "WAK_STS clear before any sleep";
    for (std::uint8_t type : {0, 1, 3, 4, 7}) {
        p.write(0, {slp(type, true)});
    }
    EXPECT_TRUE(p.power_offs.empty());
    EXPECT_EQ(p.sleep.ignored_requests(), 5u);
    EXPECT_EQ(p.read(1, 1)[0], AcpiSleep::kWakeStatus) << "the OS sees itself woken";
    p.write(1, {0x00});
    EXPECT_EQ(p.read(1, 1)[0], AcpiSleep::kWakeStatus) << "writing 0 leaves WAK_STS";
    p.write(1, {AcpiSleep::kWakeStatus});
    EXPECT_EQ(p.read(1, 1)[0], 0) << "writing 1 clears it";
}

TEST(AcpiSleep, ReadsAndWideAccessesAreSane) {
    Probe p;
    EXPECT_EQ(p.read(0, 1)[0], 0) << "control bits are write-only";
    // A word at the control port reaches both registers; bytes past them read 0xff.
    p.write(0, {slp(3, true)});
    EXPECT_EQ(p.read(0, 4), (std::vector<std::uint8_t>{0, AcpiSleep::kWakeStatus, 0xff, 0xff}));
    // A word write: S5 in the control byte, WAK_STS cleared in the status byte.
    p.write(0, {slp(5, true), AcpiSleep::kWakeStatus});
    EXPECT_EQ(p.power_offs.size(), 1u);
    EXPECT_EQ(p.read(1, 1)[0], 0);
    // Writes past the registers change nothing.
    p.write(1, {0x00, slp(5, true), slp(5, true)});
    EXPECT_EQ(p.power_offs.size(), 1u);
}

}  // namespace
}  // namespace guestvm
