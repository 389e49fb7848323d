// launch_bench.cpp - how fast dragonx starts a run and launches processes, against raw
// posix_spawn measured in the same run.
//
//   run_true_s               median wall time of `dragonx run /bin/true` (start to exit)
//   launch_reap_1000_s       1,000 /bin/true started through the runtime by a head program
//                            (process::start each, then join each)
//   raw_spawn_1000_s         the same 1,000 with posix_spawn + waitpid in that head program
//   sequential_launch_per_s  start + join, one process at a time, through the runtime
//
// Targets (DESIGN.md §11): run_true_s ≤ 0.3; launch_reap_1000_s ≤ 2 and ≤ 2× raw;
// sequential_launch_per_s ≥ 1000.
//
// The program is its own head: `dragonx run launch_bench --head N SEQ` prints the head's
// figures as one line that the outer run parses. DRAGONX_EXE names the launcher (default:
// the dragonx next to the build's top directory, found from this program's path).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "harness.hpp"

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0)
{
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

pid_t spawn(const std::vector<std::string>& args, bool quiet)
{
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (quiet) {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        std::fprintf(stderr, "launch_bench: cannot start %s: %s\n", argv[0], std::strerror(rc));
        std::exit(1);
    }
    return pid;
}

int wait_for(pid_t pid)
{
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ---- inside the run: the head ----------------------------------------------------------------

int head(int n, int sequential)
{
    const dragonx::process_template t{.exe = "/bin/true",
                                      .out = dragonx::stdio::null(),
                                      .err = dragonx::stdio::null()};
    // Warm-up: the first launch pays for connecting to the daemon.
    (void)dragonx::process::start(t).join();

    auto t0 = clock_type::now();
    std::vector<dragonx::process> procs;
    procs.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        procs.push_back(dragonx::process::start(t));
    }
    for (auto& p : procs) {
        if (p.join().value_or(-1) != 0) {
            std::fprintf(stderr, "launch_bench: a /bin/true did not exit 0\n");
            return 1;
        }
    }
    const double through_runtime = seconds_since(t0);

    t0 = clock_type::now();
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i) {
        pids.push_back(spawn({"/bin/true"}, true));
    }
    for (const auto pid : pids) {
        wait_for(pid);
    }
    const double raw = seconds_since(t0);

    t0 = clock_type::now();
    for (int i = 0; i < sequential; ++i) {
        (void)dragonx::process::start(t).join();
    }
    const double per_s = sequential / seconds_since(t0);

    std::printf("head %.6f %.6f %.3f\n", through_runtime, raw, per_s);
    return 0;
}

// ---- outside: the benchmark driver --------------------------------------------------------

std::string launcher_path(const char* self)
{
    if (const char* env = std::getenv("DRAGONX_EXE"); env != nullptr) {
        return env;
    }
    // build/tests/bench/launch_bench -> build/dragonx
    namespace fs = std::filesystem;
    return (fs::canonical(fs::path(self)).parent_path() / ".." / ".." / "dragonx")
        .lexically_normal()
        .string();
}

// Runs `args` with stdout captured; returns stdout and sets `code`.
std::string capture(const std::vector<std::string>& args, int& code)
{
    int fds[2];
    if (::pipe(fds) != 0) {
        std::perror("pipe");
        std::exit(1);
    }
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        std::fprintf(stderr, "launch_bench: cannot start %s: %s\n", argv[0], std::strerror(rc));
        std::exit(1);
    }
    std::string out;
    char buf[4096];
    ssize_t got = 0;
    while ((got = ::read(fds[0], buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fds[0]);
    code = wait_for(pid);
    return out;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc == 4 && std::string(argv[1]) == "--head") {
        return head(std::atoi(argv[2]), std::atoi(argv[3]));
    }
    const auto opts = dragonx::bench::parse_options(argc, argv, "launch_bench");
    const std::string dragonx_exe = launcher_path(argv[0]);
    const std::string self = std::filesystem::canonical("/proc/self/exe").string();

    const int runs = opts.quick ? 5 : 15;
    std::vector<double> run_true;
    for (int i = 0; i < runs; ++i) {
        const auto t0 = clock_type::now();
        const int code = wait_for(spawn({dragonx_exe, "run", "/bin/true"}, false));
        run_true.push_back(seconds_since(t0));
        if (code != 0) {
            std::fprintf(stderr, "launch_bench: dragonx run /bin/true exited %d\n", code);
            return 1;
        }
    }
    const double run_true_s = dragonx::bench::percentile(run_true, 0.5);

    const int n = opts.quick ? 200 : 1000;
    const int sequential = opts.quick ? 100 : 500;
    int code = 0;
    const std::string out = capture({dragonx_exe, "run", self, "--head", std::to_string(n),
                                     std::to_string(sequential)},
                                    code);
    double reap = 0;
    double raw = 0;
    double per_s = 0;
    if (code != 0 || std::sscanf(out.c_str(), "head %lf %lf %lf", &reap, &raw, &per_s) != 3) {
        std::fprintf(stderr, "launch_bench: the head run failed (exit %d): %s\n", code,
                     out.c_str());
        return 1;
    }
    // Scale a --quick run's figures to 1,000 processes so they read alike.
    const double scale = 1000.0 / n;
    if (opts.json) {
        std::printf("{\"run_true_s\": %.4f, \"launch_reap_1000_s\": %.4f, "
                    "\"raw_spawn_1000_s\": %.4f, \"sequential_launch_per_s\": %.1f, "
                    "\"processes\": %d}\n",
                    run_true_s, reap * scale, raw * scale, per_s, n);
    } else {
        dragonx::bench::figure("run_true_ms", run_true_s * 1e3, "ms");
        dragonx::bench::figure("launch_reap_1000_ms", reap * scale * 1e3, "ms", "raw posix_spawn",
                               raw * scale * 1e3);
        dragonx::bench::figure("sequential_launch_per_s", per_s, "1/s");
    }
    return 0;
}
