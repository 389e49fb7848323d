// pi_driver.cpp - the head of the π example: processes in lockstep through the checkpoints of a
// distributed dictionary (the C++ take on DragonHPC's ddict_cpp_driver.py).
//
//   dragonx run --wlm local -N 2 build/examples/pi_driver [--workers 4] [--digits 4]
//
// The head creates a ddict<int64, double> with one manager on every node of the run, waiting for
// keys (a non-persistent key written at checkpoint c is visible at c only: a read at c waits for
// its write at c) and a working set of 4 checkpoints (a manager retires its oldest checkpoint only
// once every non-persistent key of it was written again at the next one, so a writer can run at
// most 3 checkpoints ahead of the slowest; here the reads of the average keep everyone within one
// checkpoint of each other anyway). It starts pi_aggregate and `workers` pi_train processes (found
// beside this program) with the descriptor on their command lines, spread over the nodes: each
// worker estimates π/4 from its own points, the aggregator averages the workers' values at each
// checkpoint, and all stop at the checkpoint where the average moved by less than 10^-digits (see
// pi_train.cpp and pi_aggregate.cpp). The head joins them, reads the result the aggregator stored
// as a persistent key, prints it and the time taken, and destroys the dictionary.
//
// Exit code 0 when every process exited with 0 (the aggregator checks its result against π)
// and the stored result was read back; 1 otherwise; 2 for a bad command line.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "pi.hpp"

namespace {

using namespace std::chrono_literals;
using namespace pi_example;
using clock_type = std::chrono::steady_clock;

constexpr auto processes_limit = 90s;  // for all of them to finish, together

double seconds_since(clock_type::time_point t0)
{
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Starts `exe` with `args` on node `node`.
dragonx::process start_on(const std::filesystem::path& exe, std::vector<std::string> args,
                          std::uint32_t node)
{
    dragonx::policy there;
    there.placement_kind = dragonx::placement::host_id;
    there.host_id = node;
    return dragonx::process::start({.exe = exe.string(), .args = std::move(args), .where = there});
}

int drive(int workers, int digits)
{
    const auto& rt = dragonx::runtime::current();
    const auto t0 = clock_type::now();
    // The workers and the aggregator are built beside this program.
    const auto dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();

    dragonx::ddict_options options;
    options.managers_per_node = 1;
    options.n_nodes = rt.nnodes();
    options.total_mem = std::uint64_t{64} << 20;
    options.wait_for_keys = true;
    options.working_set_size = 4;
    options.timeout = 60s;  // of each operation: a worker waits at most this for the others
    auto d = pi_dict::create(options);
    const auto descriptor = d.serialize();
    std::printf("pi_driver: dictionary %s: %u manager(s) on %u node(s), working set 4, "
                "waiting for keys; %d worker(s), %d digit(s)\n",
                d.name().c_str(), d.managers(), rt.nnodes(), workers, digits);

    bool ok = true;
    try {
        struct started {
            std::string what;
            dragonx::process proc;
        };
        std::vector<started> procs;
        const auto nodes = rt.nnodes();
        procs.push_back({"pi_aggregate",
                         start_on(dir / "pi_aggregate",
                                  {descriptor, std::to_string(workers), std::to_string(digits)},
                                  static_cast<std::uint32_t>(workers) % nodes)});
        for (int i = 0; i < workers; ++i) {
            procs.push_back({"pi_train " + std::to_string(i),
                             start_on(dir / "pi_train",
                                      {descriptor, std::to_string(i), std::to_string(workers),
                                       std::to_string(digits)},
                                      static_cast<std::uint32_t>(i) % nodes)});
        }
        const auto until = clock_type::now() + processes_limit;
        for (auto& p : procs) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::max(until - clock_type::now(), clock_type::duration::zero()));
            const auto code = p.proc.join(left);
            if (code != 0) {
                std::printf("pi_driver: %s %s\n", p.what.c_str(),
                            code ? ("exited with " + std::to_string(*code)).c_str()
                                 : "did not finish in time");
                if (!code) {
                    p.proc.kill();
                }
                ok = false;
            }
        }
        if (ok) {
            // Everyone stopped at the same checkpoint, the newest one; the result is persistent
            // there (the workers' and the aggregator's values are at that checkpoint only).
            d.sync_to_newest_checkpoint();
            const double result = d.get(result_key);
            const double steps = d.get(steps_key);
            std::printf("pi_driver: result %.8f (pi = %.8f) after %.0f step(s) of %d worker(s), "
                        "newest checkpoint %llu, %.2f s\n",
                        result, std::numbers::pi, steps, workers,
                        static_cast<unsigned long long>(d.checkpoint_id()), seconds_since(t0));
        }
    } catch (const std::exception& e) {
        std::printf("pi_driver: %s\n", e.what());
        ok = false;
    }
    d.destroy();
    std::printf("pi_driver: destroyed; %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // our lines interleave with the others' in time
    const char* usage = "usage: pi_driver [--workers N] [--digits D]\n";
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        int workers = 4;
        int digits = 4;
        for (std::size_t i = 0; i < args.size(); i += 2) {
            if (i + 1 < args.size() && args[i] == "--workers") {
                workers = std::stoi(args[i + 1]);
            } else if (i + 1 < args.size() && args[i] == "--digits") {
                digits = std::stoi(args[i + 1]);
            } else {
                std::fprintf(stderr, "%s", usage);
                return 2;
            }
        }
        if (workers < 1 || digits < 1 || digits > max_digits) {
            std::fprintf(stderr, "pi_driver: want workers >= 1 and 1 <= digits <= %d\n",
                         max_digits);
            return 2;
        }
        return drive(workers, digits);
    } catch (const std::logic_error&) {  // std::stoi of something not a number
        std::fprintf(stderr, "%s", usage);
        return 2;
    } catch (const std::exception& e) {
        std::printf("pi_driver: %s\n", e.what());
        return 1;
    }
}
