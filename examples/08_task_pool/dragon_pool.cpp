// dragon_pool.cpp - task pools over the run: who runs each task, workers placed by policies,
// and a long map consumed as it completes (the C++ take on DragonHPC's workshop example
// 0_dragon_pool).
//
//   dragonx run --wlm local -N 2 build/examples/dragon_pool [--tasks N] [--require-gpus] [--bar]
//
// The program is its own worker: main() first hands control to serve_tasks_if_worker(), which
// serves tasks in the processes a pool starts and returns nullopt in the head. The head then
// runs three parts:
//   1. a pool of one worker per CPU of every node; `report` (sleep 0.1 s, then say who and
//      where ran it: puid, host, node, visible GPU, CPU affinity) mapped over 2 × workers
//      inputs, one line per result, and the map's wall time against the ideal 2 × 0.1 s;
//   2. a pool of one worker per GPU policy (system::gpu_policies()), or without GPUs one per
//      CPU policy (a node and one CPU of it), or an error with --require-gpus; `report`
//      again, and the head checks that the (node, GPU or CPU) pairs the workers see are
//      exactly those their policies promise;
//   3. `--tasks N` (2000) tasks of ~1 ms through the pool of part 1 with imap_unordered in
//      chunks of 10, with a progress bar (redrawn in place with '\r' when stdout is a
//      terminal or with --bar, a line at each quarter otherwise), and a check that every
//      result came back exactly once. Under `dragonx run` the head's stdout is a pipe to the
//      launcher, which passes the '\r's on as they come (with the default --label none):
//      give --bar there to see the bar move on your terminal.
//
// Exit code 0 when every check holds; 1 otherwise (the reason on stderr); 2 for bad usage.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto report_sleep = 100ms;
constexpr auto work_sleep = 1ms;
constexpr std::size_t default_tasks = 2000;
constexpr std::size_t long_map_chunk = 10;

/// Who ran a task, and what its process may use. A value with a codec from its fields().
struct worker_report {
    int input = 0;
    std::uint64_t puid = 0;
    std::string hostname;
    std::uint32_t node = 0;
    std::string gpu;   // the visible GPU(s) as the vendor's variable names them, or "none"
    std::string cpus;  // the CPU affinity, "0,1,..."

    static auto fields(auto& self)
    {
        return std::tie(self.input, self.puid, self.hostname, self.node, self.gpu, self.cpus);
    }
};

// The CPUs this process may run on, "0,1,...".
std::string cpus_of_this_process()
{
    std::string out;
    for (const int c : dragonx::discover_cpus()) {
        out += (out.empty() ? "" : ",") + std::to_string(c);
    }
    return out;
}

// What the first of the vendors' variables that is set says (NVIDIA, AMD, Intel); "none".
std::string visible_gpu()
{
    for (const char* name : {"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ZE_AFFINITY_MASK"}) {
        if (const char* v = std::getenv(name); v != nullptr) {
            return v;
        }
    }
    return "none";
}

worker_report report_after_sleep(int input)
{
    std::this_thread::sleep_for(report_sleep);
    const auto& rt = dragonx::runtime::current();
    return {input, rt.puid(), rt.hostname(), rt.node(), visible_gpu(), cpus_of_this_process()};
}

std::uint64_t echo_after_sleep(std::uint64_t input)
{
    std::this_thread::sleep_for(work_sleep);
    return input;
}

// The functions the pools run. The head and every worker build the same registry in main().
struct pool_tasks {
    dragonx::task_registry registry;
    dragonx::task<worker_report(int)> report = registry.add("report", &report_after_sleep);
    dragonx::task<std::uint64_t(std::uint64_t)> work = registry.add("work", &echo_after_sleep);
};

/// A failed check: main() prints it and exits 1.
void require(bool ok, const std::string& what)
{
    if (!ok) {
        throw std::runtime_error("check failed: " + what);
    }
}

double seconds_since(clock_type::time_point start)
{
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

// Part 1: every worker of the plain pool runs two tasks; who ran what, and how long it took.
void show_who_runs_what(const pool_tasks& tasks, dragonx::task_pool& pool)
{
    const int inputs = 2 * static_cast<int>(pool.size());
    std::printf("== a pool of %u workers (one per CPU of every node): %d tasks of %.1f s\n",
                pool.size(), inputs, std::chrono::duration<double>(report_sleep).count());
    const auto start = clock_type::now();
    const auto reports = pool.map(tasks.report, std::views::iota(0, inputs), 1);
    const double took = seconds_since(start);
    require(reports.size() == static_cast<std::size_t>(inputs), "one report per input");
    for (std::size_t i = 0; i < reports.size(); ++i) {
        const auto& r = reports[i];
        require(r.input == static_cast<int>(i), "map results in input order");
        std::printf("task %2d: worker puid %llu on %s (node %u), GPU %s, CPUs %s\n", r.input,
                    static_cast<unsigned long long>(r.puid), r.hostname.c_str(), r.node,
                    r.gpu.c_str(), r.cpus.c_str());
    }
    std::printf("map took %.2f s; ideal %.2f s (2 rounds of %.1f s)\n", took,
                2 * std::chrono::duration<double>(report_sleep).count(),
                std::chrono::duration<double>(report_sleep).count());
}

// Part 2: one worker per policy; the head checks that the workers together see exactly the
// (node, GPU) or (node, CPU) pairs their policies promise.
void check_placement_by_policies(const pool_tasks& tasks, bool require_gpus)
{
    const auto sys = dragonx::system::current();
    std::vector<dragonx::policy> policies = sys.gpu_policies();
    std::set<std::pair<std::uint32_t, std::string>> promised;
    const bool by_gpu = !policies.empty();
    require(by_gpu || !require_gpus, "GPUs in the run (--require-gpus)");
    if (by_gpu) {
        std::printf("== %zu GPU(s) in the run: a pool of one worker per GPU policy\n",
                    policies.size());
        for (const auto& node : sys.nodes()) {  // gpu_policies(): each GPU of each node
            for (const int gpu : node.gpus) {
                promised.insert({node.index, std::to_string(gpu)});
            }
        }
    } else {
        std::printf("== no GPUs in the run: a pool of one worker per CPU policy instead\n");
        policies = sys.cpu_policies();
        for (const auto& node : sys.nodes()) {  // cpu_policies(): each CPU of each node
            for (const int cpu : node.cpus) {
                promised.insert({node.index, std::to_string(cpu)});
            }
        }
    }
    dragonx::task_pool pool({.policies = policies, .processes_per_policy = 1});
    require(pool.size() == policies.size(), "one worker per policy");
    // Chunks of one, and each worker holds two at most: every worker gets some of them.
    const auto reports = pool.map(tasks.report, std::views::iota(0, 2 * int(pool.size())), 1);
    std::map<std::uint64_t, worker_report> by_worker;
    std::set<std::pair<std::uint32_t, std::string>> seen;
    for (const auto& r : reports) {
        by_worker.emplace(r.puid, r);
        seen.insert({r.node, by_gpu ? r.gpu : r.cpus});
    }
    for (const auto& [puid, r] : by_worker) {
        std::printf("worker puid %llu on %s (node %u): GPU %s, CPUs %s\n",
                    static_cast<unsigned long long>(puid), r.hostname.c_str(), r.node,
                    r.gpu.c_str(), r.cpus.c_str());
    }
    require(by_worker.size() == policies.size(), "every worker of the policy pool ran tasks");
    require(seen == promised, "the workers see what their policies promise");
    pool.close();
    pool.join(30s);
    std::printf("all %zu workers see the %s their policy names\n", policies.size(),
                by_gpu ? "GPU" : "CPU");
}

/// Progress of a long map: redrawn in place on a terminal, one line per quarter in a log.
class progress_bar {
public:
    progress_bar(std::size_t total, bool redraw) : total_(total), redraw_(redraw) {}

    void advance()
    {
        ++done_;
        const std::size_t percent = 100 * done_ / total_;
        if (redraw_) {
            if (percent != shown_) {
                shown_ = percent;
                const std::size_t filled = width * done_ / total_;
                std::printf("\r[%s%s] %3zu%% (%zu/%zu)", std::string(filled, '#').c_str(),
                            std::string(width - filled, '.').c_str(), percent, done_, total_);
                std::fflush(stdout);
            }
        } else if (percent / 25 != shown_ / 25) {
            shown_ = percent;
            std::printf("progress: %3zu%% (%zu/%zu)\n", percent, done_, total_);
        }
        if (redraw_ && done_ == total_) {
            std::printf("\n");
        }
    }

private:
    static constexpr std::size_t width = 40;
    std::size_t total_;
    bool redraw_;
    std::size_t done_ = 0;
    std::size_t shown_ = 0;  // the percentage shown last
};

// Part 3: many short tasks, taken as they complete; every input must come back once.
void run_long_map(const pool_tasks& tasks, dragonx::task_pool& pool, std::size_t n, bool bar)
{
    std::printf("== %zu tasks of %.0f ms with imap_unordered in chunks of %zu on %u workers\n",
                n, std::chrono::duration<double, std::milli>(work_sleep).count(),
                long_map_chunk, pool.size());
    const auto start = clock_type::now();
    progress_bar progress(n, bar || ::isatty(STDOUT_FILENO) == 1);
    std::vector<bool> returned(n, false);
    std::uint64_t sum = 0;
    std::size_t count = 0;
    for (const std::uint64_t v :
         pool.imap_unordered(tasks.work, std::views::iota(std::uint64_t{0}, n), long_map_chunk)) {
        require(v < n && !returned[v], "result " + std::to_string(v) + " returned once");
        returned[v] = true;
        sum += v;
        ++count;
        progress.advance();
    }
    const double took = seconds_since(start);
    const std::uint64_t expected = std::uint64_t{n} * (n - 1) / 2;
    require(count == n, std::to_string(count) + " results of " + std::to_string(n));
    require(sum == expected, "sum " + std::to_string(sum) + ", expected " +
                                 std::to_string(expected));
    const double ideal = std::chrono::duration<double>(work_sleep).count() *
                         double((n + pool.size() - 1) / pool.size());
    std::printf("all %zu results, sum %llu as expected; %.2f s (ideal %.2f s)\n", count,
                static_cast<unsigned long long>(sum), took, ideal);
}

struct options {
    /// Tasks of the long map (part 3).
    std::size_t tasks = default_tasks;
    /// Fail part 2 when the run has no GPUs, instead of placing workers by CPU policies.
    bool require_gpus = false;
    /// Redraw the progress bar in place even when stdout is not a terminal.
    bool bar = false;
};

// nullopt for a command line that is not `[--tasks N] [--require-gpus] [--bar]` (N: 1 to 9
// digits).
std::optional<options> parse_options(const std::vector<std::string>& args)
{
    options o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--require-gpus") {
            o.require_gpus = true;
        } else if (args[i] == "--bar") {
            o.bar = true;
        } else if (args[i] == "--tasks" && i + 1 < args.size()) {
            const std::string& text = args[++i];
            if (text.empty() || text.size() > 9 ||
                text.find_first_not_of("0123456789") != std::string::npos) {
                return std::nullopt;
            }
            o.tasks = std::stoul(text);
            if (o.tasks == 0) {
                return std::nullopt;
            }
        } else {
            return std::nullopt;
        }
    }
    return o;
}

}  // namespace

int main(int argc, char** argv)
{
    const pool_tasks tasks;
    if (auto code = dragonx::serve_tasks_if_worker(tasks.registry)) {
        return *code;
    }
    const auto opts = parse_options({argv + 1, argv + argc});
    if (!opts) {
        std::fprintf(stderr, "usage: dragon_pool [--tasks N (1 to 999999999, default %zu)]"
                             " [--require-gpus] [--bar]\n", default_tasks);
        return 2;
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the progress bar flushes by itself
    try {
        dragonx::task_pool pool;
        show_who_runs_what(tasks, pool);
        std::printf("\n");
        check_placement_by_policies(tasks, opts->require_gpus);
        std::printf("\n");
        run_long_map(tasks, pool, opts->tasks, opts->bar);
        pool.close();
        pool.join(60s);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dragon_pool: %s\n", e.what());
        return 1;
    }
    std::printf("dragon_pool: ok\n");
    return 0;
}
