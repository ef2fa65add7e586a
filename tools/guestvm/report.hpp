// guestvm CLI — what a run reports: the guest's serial output and the VM's vCPUs, as text or
// as one JSON document.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "guestvm/exits.hpp"
#include "guestvm/machine.hpp"

namespace guestvm::cli {

struct SerialLine {
    int vcpu;
    std::string text;  // without its '\n'; any bytes, UTF-8 or not
};

// The last lines of the guest's serial output, within a line and a byte bound, and a count of
// the lines that fell out. Not thread-safe: the LineBuffer that feeds it serialises add().
class SerialTail {
  public:
    // --json keeps the last 1000 lines and at most 1 MiB of their text (a LineBuffer line is at
    // most 4 KiB), so a guest that prints forever cannot grow the CLI without bound.
    static constexpr std::size_t kMaxLines = 1000;
    static constexpr std::size_t kMaxBytes = std::size_t{1} << 20;

    void add(int vcpu, std::string_view text);

    const std::deque<SerialLine> &lines() const { return lines_; }
    std::uint64_t dropped_lines() const { return dropped_lines_; }
    std::uint64_t dropped_bytes() const { return dropped_bytes_; }  // their text, no '\n'

  private:
    std::deque<SerialLine> lines_;
    std::size_t bytes_ = 0;  // text in lines_
    std::uint64_t dropped_lines_ = 0;
    std::uint64_t dropped_bytes_ = 0;
};

/// Text mode: one guest line to stdout as it comes.
void print_serial_line(std::string_view text);

// One row per logical vCPU, built from the util interface's C++ equivalents: vcpu_cap (=
// vm_get_vcpu), vcpu_for_target (= vm_vcpu_for_target_cpu), tcb (= vm_get_vcpu_tcb), online
// (= is_vcpu_online); vcpus a core was never assigned come from free_unassigned_vcpu's order.
struct Row {
    int id;
    int core;  // -1: never assigned one
    bool online;
    std::uint64_t tcb;
    std::uint64_t vcpu_cap;
    ExitCounts exits;
};

// Everything a run reports besides the serial output.
struct Report {
    std::string guest;   // the image's name
    std::string format;  // the loader's name for its format
    StopInfo stop;
    std::vector<Row> rows;
    ExitCounts exits;                                               // the whole VM's
    std::vector<std::pair<std::string, std::uint64_t>> port_exits;  // by device, port order
    std::uint64_t platform_calls = 0;  // the platform call's share of them
    // Instructions the VMM completed for the host's emulator, by mnemonic.
    std::vector<std::pair<std::string, std::uint64_t>> assisted;
    // --sample-rip: guest RIPs, most frequent first (at most kTopRips).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> rip_samples;
    std::uint64_t rip_sample_total = 0;
};
inline constexpr std::size_t kTopRips = 20;

/// The report on `vm`, which has stopped for `stop`.
Report gather_report(Vm &vm, std::string guest, std::string format, StopInfo stop);

/// The stop, the util table and the exit summary, after the streamed serial lines.
void print_text(const Report &report);

/// One JSON document: the report and the serial tail. Valid JSON whatever the guest wrote:
/// bytes that are not UTF-8 (in serial lines or paths) become U+FFFD.
void print_json(const Report &report, const SerialTail &serial);

}  // namespace guestvm::cli
