// harness.hpp - integration tests: run the real `dragonx` binary, capture what it prints, and
// look for what a run left behind (processes, shm objects, run directories).
//
//   dragonx::integration::launcher_run run({"run", "/bin/true"});
//   const auto& r = run.finish(std::chrono::seconds(20));
//   CHECK(r.exited); CHECK(r.code == 0); CHECK(r.out.empty());
//
// Notes:
// - The binaries come from the environment meson sets: DRAGONX_EXE (the launcher) and
//   DRAGONX_TEST_PROGRAMS (the directory of the helper programs). A missing variable throws.
// - `dragonx` is started with posix_spawn in a process group of its own, default signal
//   handling, stdin from /dev/null, stdout and stderr on pipes, and this process's
//   environment without the DRAGONX_* variables of a run (the test main sets DRAGONX_RUN).
// - Never hangs: every wait has a limit; at finish()'s limit the launcher is SIGKILLed and
//   the result says timed_out. The destructor SIGKILLs and reaps a launcher still running.
// - Output is read until EOF, or for at most `drain_limit` after the launcher has exited
//   (processes of a run whose launcher was killed may still hold the pipes).
// - Not thread-safe; one test thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dragonx::integration {

using namespace std::chrono_literals;
using millis = std::chrono::milliseconds;

/// $DRAGONX_EXE.
[[nodiscard]] std::string dragonx_exe();
/// $DRAGONX_TEST_PROGRAMS/<name>.
[[nodiscard]] std::string program(const std::string& name);

/// Environment changes for one launcher: a value sets the variable, nullopt removes it.
using env_changes = std::map<std::string, std::optional<std::string>>;

struct outcome {
    bool exited = false;    // exited normally (code is valid)
    int code = -1;          // exit code when exited
    int signal = 0;         // the signal that killed it, if one did
    bool timed_out = false; // still running at the limit: SIGKILLed by the harness
    std::string out;
    std::string err;
};

class launcher_run {
public:
    /// Starts DRAGONX_EXE with `args` (argv[1...]). Throws std::runtime_error if it cannot.
    explicit launcher_run(const std::vector<std::string>& args, const env_changes& env = {});
    ~launcher_run();
    launcher_run(const launcher_run&) = delete;
    launcher_run& operator=(const launcher_run&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] const std::string& out() const noexcept { return result_.out; }
    [[nodiscard]] const std::string& err() const noexcept { return result_.err; }

    /// Reads output until stdout holds a line equal to `line` (true) or `limit` passes, or
    /// the launcher exits (false).
    bool wait_for_line(std::string_view line, millis limit);

    /// Sends `sig` to the launcher (not to its group).
    void send(int sig);

    /// Waits up to `limit` for the launcher to exit (SIGKILL at the limit), reading output;
    /// then reads what is left (see Notes). Idempotent.
    const outcome& finish(millis limit, millis drain_limit = 2s);

private:
    void pump(millis wait);
    bool reap(int options);

    pid_t pid_ = -1;
    bool reaped_ = false;
    int out_fd_ = -1;
    int err_fd_ = -1;
    outcome result_;
};

/// Runs `dragonx args...` to the end (limit: `limit`).
[[nodiscard]] outcome run_dragonx(const std::vector<std::string>& args, millis limit = 30s,
                                  const env_changes& env = {});

/// The lines of `text` (without their '\n'; a last line without one counts).
[[nodiscard]] std::vector<std::string> lines_of(const std::string& text);
/// The value of "key=value" among the space-separated words of `line`, or nullopt.
[[nodiscard]] std::optional<std::string> field(const std::string& line, const std::string& key);
/// The lines of `text` that start with `prefix`.
[[nodiscard]] std::vector<std::string> lines_starting(const std::string& text,
                                                      std::string_view prefix);

/// This user's processes (other than this one) whose environment holds DRAGONX_RUN=<run>.
[[nodiscard]] std::vector<pid_t> run_processes(const std::string& run);
/// "123 (sleep), 124 (dragonx-runtime)": for messages.
[[nodiscard]] std::string describe_processes(const std::vector<pid_t>& pids);
/// The names of /dev/shm objects of the run ("dragonx-<run>-...").
[[nodiscard]] std::vector<std::string> run_shm_objects(const std::string& run);
/// Where the run keeps its files: $DRAGONX_TMPDIR (or /tmp)/dragonx-<uid>/<run>.
[[nodiscard]] std::filesystem::path run_directory(const std::string& run);
/// The pid of run `run`'s daemon for node `node` (a dragonx-runtime process whose command
/// line has "--run <run>" and "--node <node>"), or nullopt.
[[nodiscard]] std::optional<pid_t> daemon_pid(const std::string& run, unsigned node);

/// Waits up to `limit` for everything of run `run` to be gone; "" when it is, else a
/// description of what is still there.
[[nodiscard]] std::string leftovers_after(const std::string& run, millis limit);

/// Kills (SIGKILL, by pid) what is left of run `run` and removes its shm objects and
/// directory: for the end of a test, whatever its checks said. Never throws.
void remove_run(const std::string& run) noexcept;

/// Calls remove_run() for the run it is given, when it goes away.
class run_cleanup {
public:
    run_cleanup() = default;
    ~run_cleanup();
    run_cleanup(const run_cleanup&) = delete;
    run_cleanup& operator=(const run_cleanup&) = delete;
    void watch(std::string run) { run_ = std::move(run); }

private:
    std::string run_;
};

/// A fresh directory under the system temp dir, removed with everything in it on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

/// Writes `text` to `path` with permissions `mode`.
void write_file(const std::filesystem::path& path, const std::string& text, unsigned mode);

/// Puts a stand-in nvidia-smi that reports two GPUs (0 and 1) into `tools` and returns the
/// environment changes for a launcher to find it: `tools` first on PATH, and no GPU
/// visibility variables inherited from this process.
[[nodiscard]] env_changes fake_gpu_env(const temp_dir& tools);

/// The CPUs this process may run on, ascending.
[[nodiscard]] std::vector<int> my_cpus();
/// "0,1,3"
[[nodiscard]] std::string join_ids(const std::vector<int>& ids);

} // namespace dragonx::integration
