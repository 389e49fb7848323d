// supervisor.hpp - the node daemon's process supervisor: starts managed processes, captures
// their output line by line, reaps them, signals them.
//
//   supervisor sup(io, {.on_output = ..., .on_exit = ...});
//   sup.launch({.puid = 7, .exe = "/bin/echo", .args = {"hi"}, .cpus = {1}});
//   ...io.run()...   // on_output(7, out, "hi\n"), then on_exit(7, {0, 0})
//
// Notes:
// - Runs on one Asio io_context thread; every member function and callback runs there. Not
//   thread-safe otherwise.
// - launch() starts the process with posix_spawn (no shell) before returning: the exe is
//   resolved first (a name without '/' through PATH of `env` or the daemon's PATH; a path
//   must exist and be executable), so a missing or non-executable program is an error
//   (errc::not_found / errc::invalid_argument) from launch(), never a child that exits 127.
// - The child gets: the environment `env` exactly (the caller builds it), cwd `cwd` (empty:
//   the daemon's), CPU affinity `cpus` (empty: the daemon's), its own process group (so
//   signal() and kill_all() reach its children too), default signal dispositions and an
//   empty signal mask, stdin from /dev/null, stdout/stderr as `out`/`err` say.
// - Forwarded streams are read from pipes (non-blocking, Asio). on_output gets whole lines
//   (with their '\n'); a partial line is delivered when it reaches 64 KiB, and at the end of
//   the stream. Nothing is lost: when the process exits, everything already in its pipes is
//   delivered through on_output *before* on_exit is called. Output a surviving grandchild
//   writes later to the inherited pipe is still delivered, until the pipe's EOF.
// - Reaping uses pidfd_open + waitid(P_PIDFD): no SIGCHLD handler, no waitpid(-1) that could
//   steal other children of the daemon. on_exit is called exactly once per launched process.
// - Callbacks may call launch()/signal() re-entrantly.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include <asio/io_context.hpp>

#include <dragonx/runtime/messages.hpp>

namespace dragonx::rt::detail {

struct launch_request {
    puid_t puid = 0;
    std::string exe;                // a path, or a name looked up in PATH
    std::vector<std::string> args;  // argv[1...]; argv[0] is exe as given
    std::string cwd;                // empty: the daemon's working directory
    /// The complete environment of the child, "NAME=value" entries.
    std::vector<std::string> env;
    std::vector<int> cpus;          // CPU affinity; empty: inherit the daemon's
    stdio_spec out;                 // forward or pipe (to on_output), null, file (appended)
    stdio_spec err;
};

struct exit_status {
    int exit_code = 0;  // when signal == 0
    int signal = 0;     // non-zero: killed by this signal
};

struct supervisor_callbacks {
    /// Forwarded output of `puid`: whole lines, or the tail at the end of the stream.
    std::function<void(puid_t, output_stream, std::string_view)> on_output;
    /// `puid` exited; its buffered output was delivered first.
    std::function<void(puid_t, exit_status)> on_exit;
};

class supervisor {
public:
    supervisor(asio::io_context& io, supervisor_callbacks callbacks);
    ~supervisor();  // SIGKILLs and reaps whatever still runs (no callbacks)
    supervisor(const supervisor&) = delete;
    supervisor& operator=(const supervisor&) = delete;

    /// Starts the process; returns its pid. Throws dragonx::error: errc::not_found (no such
    /// program), errc::invalid_argument (not executable, duplicate puid, bad cwd, bad file
    /// path), or a system error (posix_spawn, pipe, pidfd_open failed).
    pid_t launch(const launch_request& request);

    /// Sends `sig` to the process group of `puid`. False if `puid` is not running here.
    bool signal(puid_t puid, int sig);

    /// Sends SIGTERM to every running process group; SIGKILL to those still running after
    /// `grace`; calls `done` (once, from the io thread) when all have exited and been
    /// reported through on_exit. With nothing running, `done` is posted right away.
    void terminate_all(std::chrono::milliseconds grace, std::function<void()> done);

    /// Number of launched processes not yet reported through on_exit.
    [[nodiscard]] std::size_t running() const noexcept;
    /// The pid of `puid`, or 0 if it is not running here.
    [[nodiscard]] pid_t pid_of(puid_t puid) const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace dragonx::rt::detail
