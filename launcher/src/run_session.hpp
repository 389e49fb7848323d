// run_session.hpp - one `dragonx run`: bring the node daemons up, start the head, print
// output, tear down, and return the exit code.
//
// Exit code (DESIGN.md §6, spec/runtime.md §1.7 with its multi-node QUIRK fixed):
//   the head's exit code; 128+N if the head died of signal N; 127 if PROG cannot be run
//   (missing, not executable); 1 on a runtime failure (a message names the node); 130 after
//   Ctrl-C (a second Ctrl-C forces the teardown), 128+N after SIGTERM/SIGHUP.
//
// Notes:
// - Blocking: runs its own event loop until the run is over.
// - Bring-up is bounded (`bringup_limit`), teardown too (`teardown_limit`); after both, every
//   process of the run on this host is killed by pid and its shm objects removed, whatever
//   state the daemons were in.
#pragma once

#include <chrono>

#include "options.hpp"

namespace dragonx::launcher {

struct session_limits {
    std::chrono::milliseconds bringup_limit{30000};
    std::chrono::milliseconds teardown_limit{5000};
    std::chrono::milliseconds heartbeat_interval{1000};
    std::chrono::milliseconds daemon_silence_limit{10000};
};

/// Runs `options.program` under a fresh runtime; returns the exit code for `dragonx`.
[[nodiscard]] int run_session(const run_options& options, const session_limits& limits = {});

}  // namespace dragonx::launcher
