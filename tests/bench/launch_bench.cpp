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
#include "subprocess.hpp"

namespace {

using dragonx::bench::capture;
using dragonx::bench::launcher_path;
using dragonx::bench::spawn;
using dragonx::bench::wait_for;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0)
{
    return std::chrono::duration<double>(clock_type::now() - t0).count();
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
