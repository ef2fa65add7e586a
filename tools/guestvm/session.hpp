// guestvm CLI — builds the VM a run request describes, starts it and waits for it to stop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "guestvm/loader.hpp"
#include "guestvm/machine.hpp"
#include "run_request.hpp"

namespace guestvm::cli {

// The image a request names, mapped and planned against the VM's RAM; owns the files'
// mappings, which the plan points into.
struct Image {
    std::string name;  // the path, or "built-in demo"
    ImageFile file, initrd;
    LoadPlan plan;
};

// A VM with its image written into guest memory; owns both. Used from one thread.
struct Session {
    std::unique_ptr<Vm> vm;
    Image image;
    std::shared_ptr<SerialInput> input;  // COM1's receive line, when standard input goes there
};

/// Creates the VM, whose serial bytes go to `serial` (which must outlive the session), with
/// COM1's receive line in Session::input if `serial_input`, and writes the request's image
/// into its RAM.
Result<Session> build_vm(const RunRequest &req, SerialSink serial, bool serial_input);

/// Starts core 0 at the image's entry; with --start-all also core i on vCPU i (RDI = i). A
/// Linux kernel starts its other cores itself: they wait for its INIT/SIPI (Vm::await_sipi).
Status start_cores(const RunRequest &req, Session &session);

// How the run ended.
struct Outcome {
    StopInfo stop;
    bool timed_out = false;  // --timeout stopped the VM
    bool quit = false;       // the console's Ctrl-A x stopped the VM
};

/// Runs the VM until it stops, stopping it when --timeout runs out first.
Outcome wait_for_stop(const RunRequest &req, Vm &vm);

}  // namespace guestvm::cli
