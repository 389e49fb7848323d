// child_process.hpp - the launcher's child processes: the node daemons themselves (local), or
// the workload manager's launch commands that start them elsewhere (srun, mpiexec, ssh); and
// short commands whose output the launcher reads (scontrol).
//
// Notes:
// - spawn() uses posix_spawnp: a program without '/' is looked up in PATH. The child gets
//   its own session when asked (then a terminal's Ctrl-C reaches the launcher only, which
//   tears the run down in order), default signal dispositions and an empty signal mask.
// - Its stdin is a pipe holding `stdin_data` (then closed) or /dev/null; its stdout is the
//   launcher's stderr (so nothing but the head's output reaches the launcher's stdout) unless
//   the request says otherwise; its stderr is the launcher's stderr.
// - child_set touches only its own children, by pid; nothing is ever signalled by name.
// - Not thread-safe; blocking only where a limit says so.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dragonx::launcher {

struct spawn_request {
    std::string label;               // for messages: "srun", "ssh to n2", "node 1's daemon"
    std::vector<std::string> argv;   // argv[0]: a path, or a name looked up in PATH
    std::vector<std::string> env;    // the whole environment, "NAME=value"
    std::string stdin_data;          // written to the child's stdin; empty: /dev/null
    bool new_session = true;
    bool stdout_to_stderr = true;    // false: the launcher's stdout
    /// How it is stopped when it does not end by itself: SIGKILL at once (a daemon of ours),
    /// or SIGTERM, then SIGKILL after `stop_grace` (a launch command, which passes the
    /// SIGTERM on to the daemons it started).
    bool terminate_first = false;
    std::chrono::milliseconds stop_grace{3000};
};

/// Starts `request`; returns the child's pid. Throws dragonx::error naming the program when
/// it cannot be started (not found, not executable) or stdin_data cannot be written.
[[nodiscard]] pid_t spawn(const spawn_request& request);

/// The launcher's environment with the variables named in `remove` dropped and those in
/// `add` ("NAME=value") set.
[[nodiscard]] std::vector<std::string> environment_with(const std::vector<std::string>& add,
                                                        const std::vector<std::string>& remove);

/// What `argv` printed on stdout, once it exited with status 0 within `limit`. Throws
/// dragonx::error with the command, its exit status and its stderr otherwise (and kills it
/// at the limit).
[[nodiscard]] std::string capture_output(const std::vector<std::string>& argv,
                                         std::chrono::milliseconds limit);

/// "srun --nodes=3 ..." for messages (words with spaces quoted).
[[nodiscard]] std::string command_text(const std::vector<std::string>& argv);

/// How a child ended, for messages: "exited with status 1", "was killed by signal 9".
[[nodiscard]] std::string describe_wait_status(int status);

/// A set of children started together (the daemons of one run, or their launch commands).
class child_set {
public:
    child_set() = default;
    ~child_set();  // stop()s what still runs
    child_set(const child_set&) = delete;
    child_set& operator=(const child_set&) = delete;

    /// Starts every request, in order. If one fails, those already started are stopped and
    /// the error is rethrown.
    void start(const std::vector<spawn_request>& requests);

    struct exit_report {
        std::string label;
        int status = 0;  // as waitpid gives it
    };
    /// The children that exited since the last call (reaped now). Never blocks.
    [[nodiscard]] std::vector<exit_report> poll_exited();

    /// Waits up to `limit` for every child to exit; true if all did.
    bool reap(std::chrono::milliseconds limit);
    /// Stops every child still running as its request says (see spawn_request), and reaps it.
    /// Blocks up to the longest stop_grace. Never throws.
    void stop() noexcept;

private:
    struct child {
        pid_t pid = 0;  // 0 once reaped
        std::string label;
        bool terminate_first = false;
        std::chrono::milliseconds stop_grace{0};
    };
    std::vector<child> children_;
};

}  // namespace dragonx::launcher
