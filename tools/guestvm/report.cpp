// guestvm CLI — what a run reports, as text or as one JSON document.
#include "report.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

#include "guestvm/vcpu.hpp"

namespace guestvm::cli {

void SerialTail::add(int vcpu, std::string_view text) {
    lines_.push_back({vcpu, std::string(text)});
    bytes_ += text.size();
    while (lines_.size() > kMaxLines || bytes_ > kMaxBytes) {
        const std::size_t size = lines_.front().text.size();
        lines_.pop_front();
        bytes_ -= size;
        ++dropped_lines_;
        dropped_bytes_ += size;
    }
}

void print_serial_line(std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

namespace {

std::vector<Row> util_table(Vm &vm) {
    const int n = vm.vcpu_count();
    std::vector<Row> rows(static_cast<std::size_t>(n));
    for (int id = 0; id < n; ++id) {
        rows[static_cast<std::size_t>(id)] = {id, -1, false, 0, vm.vcpu_cap(id).value(), {}};
    }
    auto fill = [&](Vcpu *v, int core) {
        Row &r = rows[static_cast<std::size_t>(v->id().value())];
        r.core = core;
        r.online = v->online();
        r.tcb = v->tcb().value();
        r.exits = v->exit_counts();
    };
    for (int core = 0; core < vm.vcpu_capacity(); ++core) {
        if (Vcpu *v = vm.vcpu_for_target(core)) fill(v, core);
    }
    for (int id = 0; id < n; ++id) {
        if (Vcpu *v = vm.vcpu(id); v != nullptr && v->target_core() < 0) fill(v, -1);
    }
    return rows;
}

const char *kind_name(std::size_t kind) { return exit_kind_name(static_cast<ExitKind>(kind)); }

nlohmann::json vcpus_json(const std::vector<Row> &rows) {
    auto vcpus = nlohmann::json::array();
    for (const Row &r : rows) {
        vcpus.push_back({{"id", r.id},
                         {"target_core", r.core < 0 ? nlohmann::json() : nlohmann::json(r.core)},
                         {"online", r.online},
                         {"tcb_cptr", r.tcb},
                         {"vcpu_cptr", r.vcpu_cap},
                         {"exits", r.exits.total()}});
    }
    return vcpus;
}

nlohmann::json exits_json(const Report &report) {
    nlohmann::json exits;
    const ExitCounts &total = report.exits;
    for (std::size_t k = 0; k < total.by_kind.size(); ++k) exits[kind_name(k)] = total.by_kind[k];
    exits["total"] = total.total();
    // Port exits by device; the platform call's also under "platform_call".
    nlohmann::json ports = nlohmann::json::object();
    for (const auto &[device, n] : report.port_exits) ports[device] = n;
    exits["ports"] = ports;
    exits["platform_call"] = report.platform_calls;
    return exits;
}

}  // namespace

Report gather_report(Vm &vm, std::string guest, std::string format, StopInfo stop) {
    Report r{std::move(guest),
             std::move(format),
             std::move(stop),
             util_table(vm),
             vm.exit_counts(),
             vm.port_exits(),
             vm.port_exits("platform-call"),
             vm.assisted_instructions(),
             vm.rip_samples()};
    for (const auto &[rip, n] : r.rip_samples) r.rip_sample_total += n;
    if (r.rip_samples.size() > kTopRips) r.rip_samples.resize(kTopRips);
    return r;
}

void print_text(const Report &report) {
    std::puts("");
    std::puts(fmt::format("VM stopped: {} ({})", stop_reason_name(report.stop.reason),
                          report.stop.message)
                  .c_str());
    std::puts(fmt::format("{:>5} {:>6} {:>7} {:>10} {:>10} {:>8}", "vcpu", "core", "online", "tcb",
                          "vcpu-cap", "exits")
                  .c_str());
    for (const Row &r : report.rows) {
        std::puts(fmt::format("{:>5} {:>6} {:>7} {:>#10x} {:>#10x} {:>8}", r.id,
                              r.core < 0 ? std::string("-") : std::to_string(r.core),
                              r.online ? "yes" : "no", r.tcb, r.vcpu_cap, r.exits.total())
                      .c_str());
    }
    std::string summary = "exits:";
    for (std::size_t k = 0; k < report.exits.by_kind.size(); ++k) {
        if (report.exits.by_kind[k] != 0) {
            summary += fmt::format(" {}={}", kind_name(k), report.exits.by_kind[k]);
        }
    }
    summary += fmt::format(" total={}", report.exits.total());
    for (const auto &[device, n] : report.port_exits) {
        if (n != 0) summary += fmt::format(" {}={}", device, n);
    }
    std::puts(summary.c_str());
    if (!report.assisted.empty()) {
        std::string line = "completed for the host's emulator:";
        for (const auto &[insn, n] : report.assisted) line += fmt::format(" {}={}", insn, n);
        std::puts(line.c_str());
    }
    if (report.rip_sample_total != 0) {
        std::puts(fmt::format("guest RIP samples: {} (top {})", report.rip_sample_total,
                              report.rip_samples.size())
                      .c_str());
        for (const auto &[rip, n] : report.rip_samples) {
            std::puts(fmt::format("  {:#018x} {:>8} {:5.1f}%", rip, n,
                                  100.0 * static_cast<double>(n) /
                                      static_cast<double>(report.rip_sample_total))
                          .c_str());
        }
    }
}

void print_json(const Report &report, const SerialTail &serial) {
    nlohmann::json doc;
    doc["guest"] = report.guest;
    doc["format"] = report.format;
    doc["stop"] = {{"reason", stop_reason_name(report.stop.reason)},
                   {"message", report.stop.message},
                   {"vcpu", report.stop.vcpu}};
    doc["serial"] = nlohmann::json::array();
    for (const SerialLine &l : serial.lines()) {
        doc["serial"].push_back({{"vcpu", l.vcpu}, {"line", l.text}});
    }
    doc["serial_dropped_lines"] = serial.dropped_lines();
    doc["serial_dropped_bytes"] = serial.dropped_bytes();
    doc["vcpus"] = vcpus_json(report.rows);
    doc["exits"] = exits_json(report);
    doc["assisted"] = nlohmann::json::object();
    for (const auto &[insn, n] : report.assisted) doc["assisted"][insn] = n;
    if (report.rip_sample_total != 0) {
        doc["rip_samples"] = {{"total", report.rip_sample_total}, {"top", nlohmann::json::array()}};
        for (const auto &[rip, n] : report.rip_samples) {
            doc["rip_samples"]["top"].push_back({{"rip", rip}, {"samples", n}});
        }
    }
    std::puts(doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace guestvm::cli
