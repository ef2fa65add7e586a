// The ACPI tables guestvm gives a guest. Layout and flag choices: docs/acpi.md. Offsets are the
// ACPI 6.x specification's (sections 5.2.5-5.2.12).
#include "loaders/acpi.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <numeric>
#include <string_view>
#include <type_traits>

#include "loaders/aml.hpp"

namespace guestvm::acpi {

namespace {

using aml::Bytes;

constexpr std::size_t kHeaderSize = 36;  // every description table's header
constexpr std::size_t kRsdpSize = 36;    // ACPI 2.0+ RSDP
constexpr std::size_t kFadtSize = 276;   // FADT revision 6 (ACPI 6.0 .. 6.5)
constexpr std::size_t kTableAlign = 16;

// Table revisions: ACPI 6.0's.
constexpr std::uint8_t kRsdpRevision = 2, kXsdtRevision = 1, kFadtRevision = 6,
                       kFadtMinorVersion = 0, kMadtRevision = 4,
                       kDsdtRevision = 2;  // 2: AML integers are 64 bits wide
constexpr std::string_view kOemTableId = "GUESTVM ", kCreatorId = "GSTV";
constexpr std::uint32_t kOemRevision = 1, kCreatorRevision = 1;

// FADT fields used (byte offsets).
constexpr std::size_t kFadtIapcBootArch = 109, kFadtFlags = 112, kFadtMinor = 131, kFadtXDsdt = 140,
                      kFadtSleepControl = 244, kFadtSleepStatus = 256, kFadtHypervisorId = 268;
// IAPC_BOOT_ARCH bits. LEGACY_DEVICES (bit 0) and 8042 (bit 1) stay clear: the one ISA device an
// OS must drive, COM1, is in the namespace, and there is no keyboard controller.
constexpr std::uint16_t kBootArchNoVga = 1u << 2, kBootArchNoCmosRtc = 1u << 5;
// FADT flags.
constexpr std::uint32_t kFadtWbinvd = 1u << 0,  // WBINVD works (every x86 CPU KVM runs)
    kFadtPowerButtonNotFixed = 1u << 4,         // no fixed-feature power button
    kFadtSleepButtonNotFixed = 1u << 5,         // nor sleep button
    kFadtHardwareReduced = 1u << 20;            // no PM1/GPE blocks, PM timer, SCI or FACS
// Generic Address Structure.
constexpr std::uint8_t kGasSystemIo = 1, kGasByteAccess = 1;

// MADT.
constexpr std::uint32_t kMadtPcatCompat = 1u << 0;
constexpr std::uint8_t kMadtLocalApic = 0, kMadtIoApic = 1, kMadtLocalX2Apic = 9;
constexpr std::uint32_t kLapicEnabled = 1u << 0;
constexpr std::uint32_t kMaxXApicId = 254;  // 255 is the xAPIC broadcast id

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

// Little-endian writer over a byte vector that grows as it is written.
class Writer {
  public:
    explicit Writer(std::size_t reserve = 0) { bytes_.reserve(reserve); }
    template <typename T>
    requires std::is_integral_v<T>
    void put(T value) {
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            bytes_.push_back(
                static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> (8 * i)));
        }
    }
    void put(std::string_view text) { bytes_.insert(bytes_.end(), text.begin(), text.end()); }
    void put(std::span<const std::uint8_t> data) {
        bytes_.insert(bytes_.end(), data.begin(), data.end());
    }
    template <typename T>
    requires std::is_integral_v<T>
    void patch(std::size_t offset, T value) {
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            bytes_.at(offset + i) =
                static_cast<std::uint8_t>(static_cast<std::uint64_t>(value) >> (8 * i));
        }
    }
    void zeros(std::size_t n) { bytes_.resize(bytes_.size() + n, 0); }
    std::size_t size() const { return bytes_.size(); }
    Bytes take() && { return std::move(bytes_); }

  private:
    Bytes bytes_;
};

// A description table's header with length and checksum still zero (finish() sets them).
Writer start_table(std::string_view signature, std::uint8_t revision) {
    Writer w(256);
    w.put(signature);
    w.put<std::uint32_t>(0);  // length
    w.put<std::uint8_t>(revision);
    w.put<std::uint8_t>(0);  // checksum
    w.put(std::string_view(kOemId, 6));
    w.put(kOemTableId);
    w.put<std::uint32_t>(kOemRevision);
    w.put(kCreatorId);
    w.put<std::uint32_t>(kCreatorRevision);
    return w;
}

Bytes finish(Writer w) {
    w.patch<std::uint32_t>(4, static_cast<std::uint32_t>(w.size()));
    Bytes bytes = std::move(w).take();
    bytes[9] = checksum_byte(bytes);
    return bytes;
}

// A Generic Address Structure for one byte-wide I/O port.
void put_io_register(Writer &w, std::size_t offset, std::uint16_t port) {
    w.patch<std::uint8_t>(offset, kGasSystemIo);
    w.patch<std::uint8_t>(offset + 1, 8);  // register bit width
    w.patch<std::uint8_t>(offset + 2, 0);  // bit offset
    w.patch<std::uint8_t>(offset + 3, kGasByteAccess);
    w.patch<std::uint64_t>(offset + 4, port);
}

Bytes fadt(std::uint64_t dsdt_addr) {
    Writer w = start_table("FACP", kFadtRevision);
    w.zeros(kFadtSize - kHeaderSize);
    // FIRMWARE_CTRL, DSDT (32-bit), SCI_INT, SMI_CMD, the PM1/PM2/PM timer/GPE blocks and their
    // lengths stay zero: a hardware-reduced platform has none of them (and ACPI mode is fixed,
    // so there is no ACPI_ENABLE handshake). Preferred_PM_Profile 0: unspecified.
    w.patch<std::uint16_t>(kFadtIapcBootArch, kBootArchNoVga | kBootArchNoCmosRtc);
    w.patch<std::uint32_t>(kFadtFlags, kFadtWbinvd | kFadtPowerButtonNotFixed |
                                           kFadtSleepButtonNotFixed | kFadtHardwareReduced);
    w.patch<std::uint8_t>(kFadtMinor, kFadtMinorVersion);
    w.patch<std::uint64_t>(kFadtXDsdt, dsdt_addr);
    put_io_register(w, kFadtSleepControl, kSleepControlPort);
    put_io_register(w, kFadtSleepStatus, kSleepStatusPort);
    for (std::size_t i = 0; i < 8; ++i) w.patch<char>(kFadtHypervisorId + i, "GUESTVM "[i]);
    return finish(std::move(w));
}

Bytes madt(const AcpiOptions &options) {
    Writer w = start_table("APIC", kMadtRevision);
    w.put<std::uint32_t>(kLocalApicAddr);
    // PCAT_COMPAT: KVM's irqchip brings the 8259 pair along with the IOAPIC, so an OS moving to
    // the APICs must mask them. Without the irqchip there is neither.
    w.put<std::uint32_t>(options.ioapic ? kMadtPcatCompat : 0);
    for (int cpu = 0; cpu < options.vcpus; ++cpu) {
        const auto id = static_cast<std::uint32_t>(cpu);  // APIC id = processor UID = vCPU index
        if (id <= kMaxXApicId) {
            w.put<std::uint8_t>(kMadtLocalApic);
            w.put<std::uint8_t>(8);
            w.put<std::uint8_t>(static_cast<std::uint8_t>(id));
            w.put<std::uint8_t>(static_cast<std::uint8_t>(id));
            w.put<std::uint32_t>(kLapicEnabled);
        } else {
            w.put<std::uint8_t>(kMadtLocalX2Apic);
            w.put<std::uint8_t>(16);
            w.put<std::uint16_t>(0);
            w.put<std::uint32_t>(id);
            w.put<std::uint32_t>(kLapicEnabled);
            w.put<std::uint32_t>(id);
        }
    }
    if (options.ioapic) {
        w.put<std::uint8_t>(kMadtIoApic);
        w.put<std::uint8_t>(12);
        w.put<std::uint8_t>(kIoApicId);
        w.put<std::uint8_t>(0);
        w.put<std::uint32_t>(kIoApicAddr);
        w.put<std::uint32_t>(0);  // GSI base: pins 0..23 are GSIs 0..23
    }
    // No interrupt source overrides: guestvm keeps KVM's default GSI routing, in which each ISA
    // IRQ n (the PIT's 0 included) drives IOAPIC pin n as well as 8259 pin n, edge-triggered
    // and active high, which is what an OS assumes where no override says otherwise.
    return finish(std::move(w));
}

// COM1 as a PNP0501 device: its ports and (with an IOAPIC to carry it) IRQ 4. Under
// hardware-reduced ACPI, Linux maps no ISA IRQ the namespace does not claim.
Result<Bytes> com1_device(bool with_irq) {
    std::vector<Bytes> resources{aml::resource::io(kCom1Port, 8)};
    if (with_irq) {
        GUESTVM_TRY_ASSIGN(irq, aml::resource::irq(kCom1Irq));
        resources.push_back(std::move(irq));
    }
    GUESTVM_TRY_ASSIGN(hid_value, aml::eisa_id("PNP0501"));
    GUESTVM_TRY_ASSIGN(hid, aml::name("_HID", hid_value));
    GUESTVM_TRY_ASSIGN(uid, aml::name("_UID", aml::integer(0)));
    GUESTVM_TRY_ASSIGN(crs_buffer, aml::buffer(aml::resource::template_of(resources)));
    GUESTVM_TRY_ASSIGN(crs, aml::name("_CRS", crs_buffer));
    Bytes body = hid;
    body.insert(body.end(), uid.begin(), uid.end());
    body.insert(body.end(), crs.begin(), crs.end());
    return aml::device("COM1", body);
}

Result<Bytes> dsdt(const AcpiOptions &options) {
    Writer w = start_table("DSDT", kDsdtRevision);
    // \_S5: soft-off, SLP_TYP kS5SleepType for the sleep control register. The second value
    // would be PM1b's, which a hardware-reduced platform does not have; the rest are reserved.
    const std::array<Bytes, 4> s5_values{aml::integer(kS5SleepType), aml::integer(0),
                                         aml::integer(0), aml::integer(0)};
    GUESTVM_TRY_ASSIGN(s5_package, aml::package(s5_values));
    GUESTVM_TRY_ASSIGN(s5, aml::name("\\_S5", s5_package));
    w.put(s5);
    // \_SB holds the devices (a PCI host bridge, PNP0A03 with its _CRS, will join COM1 here).
    if (options.serial) {
        GUESTVM_TRY_ASSIGN(com1, com1_device(options.ioapic));
        GUESTVM_TRY_ASSIGN(sb, aml::scope("\\_SB", com1));
        w.put(sb);
    }
    return finish(std::move(w));
}

Bytes xsdt(std::span<const std::uint64_t> tables) {
    Writer w = start_table("XSDT", kXsdtRevision);
    for (std::uint64_t addr : tables) w.put<std::uint64_t>(addr);
    return finish(std::move(w));
}

Bytes rsdp(std::uint64_t xsdt_addr) {
    Writer w(kRsdpSize);
    w.put(std::string_view("RSD PTR "));
    w.put<std::uint8_t>(0);  // checksum of the ACPI 1.0 part (first 20 bytes)
    w.put(std::string_view(kOemId, 6));
    w.put<std::uint8_t>(kRsdpRevision);
    w.put<std::uint32_t>(0);  // RsdtAddress: no RSDT, the XSDT serves every ACPI 2.0+ OS
    w.put<std::uint32_t>(kRsdpSize);
    w.put<std::uint64_t>(xsdt_addr);
    w.put<std::uint8_t>(0);  // extended checksum (all 36 bytes)
    w.zeros(3);
    Bytes bytes = std::move(w).take();
    bytes[8] = checksum_byte(std::span(bytes).first(20));
    bytes[32] = checksum_byte(bytes);
    return bytes;
}

}  // namespace

std::uint8_t checksum_byte(std::span<const std::uint8_t> bytes) noexcept {
    const unsigned sum = std::accumulate(bytes.begin(), bytes.end(), 0u);
    return static_cast<std::uint8_t>(0x100 - (sum & 0xff));
}

Result<Tables> build_tables(const AcpiOptions &options, std::uint64_t base) {
    if (options.vcpus <= 0) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("ACPI tables for {} vCPUs: at least one", options.vcpus));
    }
    if (base % kTableAlign != 0) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("ACPI tables at {:#x}: not 16-byte aligned", base));
    }
    GUESTVM_TRY_ASSIGN(dsdt_bytes, dsdt(options));
    const Bytes madt_bytes = madt(options);

    // RSDP first (where a legacy scan looks), then the XSDT and the tables it points to.
    constexpr std::size_t kXsdtEntries = 2;  // FADT, MADT (the FADT points to the DSDT)
    const std::uint64_t xsdt_at = align_up(kRsdpSize, kTableAlign);
    const std::uint64_t fadt_at = align_up(xsdt_at + kHeaderSize + 8 * kXsdtEntries, kTableAlign);
    const std::uint64_t madt_at = align_up(fadt_at + kFadtSize, kTableAlign);
    const std::uint64_t dsdt_at = align_up(madt_at + madt_bytes.size(), kTableAlign);
    const std::uint64_t size = dsdt_at + dsdt_bytes.size();
    if (base + size < base) {
        return make_error(Errc::kInvalidArgument,
                          fmt::format("ACPI tables at {:#x}: {:#x} bytes wrap around", base, size));
    }
    if (base < kBiosAreaEnd && base + size > kBiosAreaEnd) {
        return make_error(Errc::kResourceExhausted,
                          fmt::format("ACPI tables for {} vCPUs need {:#x} bytes from {:#x}: past "
                                      "the BIOS area's end {:#x}",
                                      options.vcpus, size, base, kBiosAreaEnd));
    }

    Tables t;
    t.base = base;
    t.rsdp = base;
    t.bytes.assign(size, 0);
    auto place = [&](std::uint64_t offset, const Bytes &table) {
        std::memcpy(t.bytes.data() + offset, table.data(), table.size());
    };
    const std::array<std::uint64_t, kXsdtEntries> entries{base + fadt_at, base + madt_at};
    place(0, rsdp(base + xsdt_at));
    place(xsdt_at, xsdt(entries));
    place(fadt_at, fadt(base + dsdt_at));
    place(madt_at, madt_bytes);
    place(dsdt_at, dsdt_bytes);
    return t;
}

Result<std::uint64_t> add_tables(LoadPlan &plan, const AcpiOptions &options) {
    GUESTVM_TRY_ASSIGN(tables, build_tables(options, kTablesAddr));
    auto owned = std::make_shared<const std::vector<std::uint8_t>>(std::move(tables.bytes));
    plan.pieces.push_back({"ACPI tables", tables.base, owned->size(), *owned});
    plan.owned.push_back(std::move(owned));
    return tables.rsdp;
}

}  // namespace guestvm::acpi
