// local_wlm.hpp - the local workload manager: the run's node daemons as children of the
// launcher on this host (one for a single-node run; K for `--wlm local -N K`, K virtual
// nodes named node0..node{K-1}).
//
// Notes:
// - Each daemon is started with posix_spawn in a session of its own (a terminal's Ctrl-C
//   reaches the launcher only, which then tears the run down in order), with the run secret
//   written to its stdin (never argv), DRAGONX_RUN and DRAGONX_NODE in its environment, and
//   the launcher's stderr for its log.
// - reap() and kill_all() are by pid: only these children are touched.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dragonx::launcher {

struct daemon_launch {
    std::string runtime_exe;  // path of dragonx-runtime
    std::string run;
    std::uint32_t nnodes = 1;
    std::string launcher_address;  // HOST:PORT the daemons connect to
    std::string secret_hex;
    std::string log_level;
};

class local_daemons {
public:
    local_daemons() = default;
    ~local_daemons();  // kills and reaps any daemon still running
    local_daemons(const local_daemons&) = delete;
    local_daemons& operator=(const local_daemons&) = delete;

    /// Starts one daemon per node. Throws dragonx::error if one cannot be started (those
    /// already started are killed).
    void start(const daemon_launch& launch);

    /// Waits up to `limit` for every daemon to exit; true if all did.
    bool reap(std::chrono::milliseconds limit);
    /// SIGKILLs the daemons still running and reaps them.
    void kill_all() noexcept;

private:
    std::vector<pid_t> pids_;  // by node; 0 once reaped
};

}  // namespace dragonx::launcher
