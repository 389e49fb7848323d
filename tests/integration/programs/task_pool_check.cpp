// task_pool_check.cpp - integration helper: task pools under `dragonx run` on virtual nodes.
// The program is its own worker (serve_tasks_if_worker). Modes, each printing "PASS <mode>":
//   basic     map / starmap / apply_async / map_async / imap / imap_unordered results and
//             order, chunk sizes, empty input, the initializer, close/join, several pools
//   failures  a task that throws, workers killed by SIGKILL (from inside and from outside),
//             an initializer that throws; the pool keeps going and keeps its size
//   nested    a task that creates a pool of its own
//   cpus      one worker per CPU policy of every node, each pinned where its policy says
//   gpus      one worker per GPU policy (fake nvidia-smi on PATH), each seeing its GPU
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "checks.hpp"

using namespace dragonx::integration;
using namespace std::chrono_literals;

namespace {

int offset = 0;  // set by the initializer

// The CPUs this process may run on, "0,1,...".
std::string affinity()
{
    std::string out;
    for (const int c : dragonx::discover_cpus()) {
        out += (out.empty() ? "" : ",") + std::to_string(c);
    }
    return out;
}

struct where_am_i {
    std::uint64_t puid = 0;
    std::uint32_t node = 0;
    std::string cpus;
    std::string gpus;
    static auto fields(auto& self)
    {
        return std::tie(self.puid, self.node, self.cpus, self.gpus);
    }
};

// The functions the pools run; the head and every worker build the same registry.
struct tasks {
    dragonx::task_registry registry;
    dragonx::task<int(int)> square = registry.add("square", [](int x) { return x * x; });
    dragonx::task<std::string(std::string, int)> concat = registry.add(
        "concat", [](std::string s, int n) { return s + ":" + std::to_string(n); });
    dragonx::task<int(int)> fail_on_13 = registry.add("fail_on_13", [](int x) {
        if (x == 13) {
            throw std::runtime_error("unlucky input 13");
        }
        return x;
    });
    dragonx::task<int(int)> die = registry.add("die", [](int x) {
        ::raise(SIGKILL);
        return x;
    });
    // Sleeps, and returns the worker's puid.
    dragonx::task<std::uint64_t(int)> sleep_ms = registry.add("sleep_ms", [](int ms) {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        return dragonx::runtime::current().puid();
    });
    // Publishes the worker's puid under `key` in the run's registry, then sleeps 10 s.
    dragonx::task<int(std::string)> publish_and_sleep =
        registry.add("publish_and_sleep", [](std::string key) {
            auto& rt = dragonx::runtime::current();
            rt.kv_put(key, std::to_string(rt.puid()));
            std::this_thread::sleep_for(10s);
            return 0;
        });
    dragonx::task<void(int)> set_offset =
        registry.add("set_offset", [](int v) { offset = v; });
    dragonx::task<int(int)> with_offset =
        registry.add("with_offset", [](int x) { return x + offset; });
    dragonx::task<void(int)> bad_init = registry.add(
        "bad_init", [](int) { throw std::runtime_error("no licence server"); });
    dragonx::task<int(int)> nested_sum =
        registry.add("nested_sum", [this](int n) { return nested(n); });
    dragonx::task<where_am_i(int)> where = registry.add("where", [](int) {
        const auto& rt = dragonx::runtime::current();
        const char* gpus = std::getenv("CUDA_VISIBLE_DEVICES");
        std::this_thread::sleep_for(20ms);  // so that every worker gets some
        return where_am_i{rt.puid(), rt.node(), affinity(), gpus != nullptr ? gpus : "-"};
    });

    // A pool of two inside a task: the sum of squares below n.
    int nested(int n)
    {
        dragonx::task_pool inner({.processes = 2});
        const auto out = inner.map(square, std::views::iota(0, n));
        inner.close();
        inner.join(30s);
        return std::accumulate(out.begin(), out.end(), 0);
    }
};

tasks& the_tasks()
{
    static tasks t;
    return t;
}

template <class F>
void expect_error(dragonx::errc code, const std::string& needle, F f, const std::string& what)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        std::cout << what << ": " << e.what() << std::endl;
        check(e.is(code), what + ": wrong error: " + e.what());
        check(std::string(e.what()).find(needle) != std::string::npos,
              what + ": message lacks '" + needle + "': " + e.what());
        return;
    }
    fail(what + ": no error");
}

void basic()
{
    auto& t = the_tasks();
    dragonx::task_pool pool({.processes = 3, .initializer = t.set_offset.bind(1000)});
    check(pool.size() == 3, "size");

    // map: order kept whatever the chunk size; a range made on the fly works.
    for (std::size_t chunk : {0, 1, 7, 1000}) {
        const auto out = pool.map(t.square, std::views::iota(0, 500), chunk);
        check(out.size() == 500, "map size");
        for (int i = 0; i < 500; ++i) {
            check(out[i] == i * i, "map result " + std::to_string(i));
        }
    }
    check(pool.map(t.square, std::vector<int>{}).empty(), "empty map");
    const std::vector<std::tuple<std::string, int>> pairs{{"a", 1}, {"b", 2}, {"c", 3}};
    check(pool.starmap(t.concat, pairs) == std::vector<std::string>{"a:1", "b:2", "c:3"},
          "starmap");
    check(pool.apply_async(t.concat, "x", 9).get(10s) == "x:9", "apply_async");
    check(pool.apply_async(t.with_offset, 5).get(10s) == 1005, "initializer ran");

    auto async = pool.map_async(t.square, std::vector<int>{1, 2, 3});
    check(async.wait(10s) && async.ready() && async.successful(), "map_async ready");
    check(async.get() == std::vector<int>{1, 4, 9}, "map_async result");

    std::vector<int> ordered;
    for (int v : pool.imap(t.square, std::views::iota(0, 50))) {
        ordered.push_back(v);
    }
    for (int i = 0; i < 50; ++i) {
        check(ordered.at(i) == i * i, "imap order");
    }
    std::multiset<int> unordered;
    auto stream = pool.imap_unordered(t.square, std::views::iota(0, 50), 3);
    while (auto v = stream.next(10s)) {
        unordered.insert(*v);
    }
    std::multiset<int> expected;
    for (int i = 0; i < 50; ++i) {
        expected.insert(i * i);
    }
    check(unordered == expected, "imap_unordered results");

    // Several pools at once; a sleeping task times out get() without losing it.
    dragonx::task_pool other(
        {.processes = 1, .worker_exe = program_path(), .worker_args = {"--as-worker"}});
    auto slow = other.apply_async(t.sleep_ms, 300);
    expect_error(dragonx::errc::timeout, "not ready", [&] { (void)slow.get(10ms); }, "get");
    check(slow.get(10s) != 0, "slow result");
    other.close();
    other.join(30s);

    pool.close();
    expect_error(dragonx::errc::invalid_operation, "closed",
                 [&] { (void)pool.apply_async(t.square, 1); }, "submit after close");
    pool.join(30s);
}

void failures()
{
    auto& t = the_tasks();
    dragonx::task_pool pool({.processes = 2});

    // A task that throws: its message comes back; the pool goes on.
    expect_error(dragonx::errc::task_failed, "unlucky input 13",
                 [&] { (void)pool.map(t.fail_on_13, std::views::iota(0, 20), 4); }, "throw");
    check(pool.apply_async(t.fail_on_13, 12).get(10s) == 12, "after a throw");

    // A worker that kills itself: the task fails naming the worker; it is replaced.
    expect_error(dragonx::errc::worker_lost, "killed by signal 9",
                 [&] { (void)pool.apply_async(t.die, 1).get(20s); }, "self-kill");

    // A worker killed from outside while it runs a task.
    auto victim = pool.apply_async(t.publish_and_sleep, "victim");
    auto other = pool.apply_async(t.sleep_ms, 300);
    const auto puid = std::stoull(dragonx::runtime::current().kv_get("victim", 20s));
    dragonx::process::attach(puid).kill(SIGKILL);
    expect_error(dragonx::errc::worker_lost, "puid " + std::to_string(puid),
                 [&] { (void)victim.get(20s); }, "outside kill");
    check(other.get(20s) != 0, "the other task survives");

    // The pool still has two workers, and all tasks run.
    std::set<std::uint64_t> seen;
    for (auto p : pool.map(t.sleep_ms, std::vector<int>(8, 50), 1)) {
        seen.insert(p);
    }
    check(seen.size() == 2, "two workers after the deaths, saw " + std::to_string(seen.size()));
    pool.close();
    pool.join(30s);

    dragonx::task_pool broken({.processes = 1, .initializer = t.bad_init.bind(0)});
    expect_error(dragonx::errc::task_failed, "no licence server",
                 [&] { (void)broken.apply_async(t.square, 2).get(10s); }, "bad initializer");
    broken.terminate();

    // terminate() fails what is pending and stops the workers at once.
    dragonx::task_pool doomed({.processes = 1});
    auto running = doomed.apply_async(t.sleep_ms, 5000);
    auto queued = doomed.map_async(t.square, std::views::iota(0, 10), 1);
    const auto t0 = std::chrono::steady_clock::now();
    doomed.terminate();
    check(std::chrono::steady_clock::now() - t0 < 4s, "terminate() did not wait for the task");
    expect_error(dragonx::errc::invalid_operation, "terminated",
                 [&] { (void)running.get(1s); }, "running task at terminate");
    expect_error(dragonx::errc::invalid_operation, "terminated", [&] { (void)queued.get(1s); },
                 "queued tasks at terminate");
}

int sum_of_squares_below(int n)
{
    return (n - 1) * n * (2 * n - 1) / 6;
}

void nested()
{
    auto& t = the_tasks();
    dragonx::task_pool pool({.processes = 2});
    const std::vector<int> sizes{10, 20, 30};
    const auto sums = pool.map(t.nested_sum, sizes, 1);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        check(sums.at(i) == sum_of_squares_below(sizes[i]), "nested sum " + std::to_string(i));
    }
    pool.close();
    pool.join(60s);
}

// Runs `where` on every worker of a pool over `policies` (one worker each) and checks that
// the workers together report exactly `expected` (node, CPUs or GPUs) pairs.
void check_placement(const std::vector<dragonx::policy>& policies,
                     const std::set<std::pair<std::uint32_t, std::string>>& expected, bool gpus)
{
    auto& t = the_tasks();
    dragonx::task_pool pool({.policies = policies, .processes_per_policy = 1});
    check(pool.size() == policies.size(), "one worker per policy");
    const auto reports = pool.map(t.where, std::vector<int>(4 * policies.size(), 0), 1);
    std::set<std::uint64_t> puids;
    std::set<std::pair<std::uint32_t, std::string>> seen;
    for (const auto& r : reports) {
        puids.insert(r.puid);
        seen.insert({r.node, gpus ? r.gpus : r.cpus});
        std::cout << "worker puid " << r.puid << " node " << r.node << " cpus " << r.cpus
                  << " gpus " << r.gpus << "\n";
    }
    check(puids.size() == policies.size(), "every worker ran tasks");
    check(seen == expected, "workers placed as their policies say");
    pool.close();
    pool.join(30s);
}

void cpus()
{
    std::set<std::pair<std::uint32_t, std::string>> expected;
    const auto sys = dragonx::system::current();
    for (const auto& node : sys.nodes()) {
        for (int cpu : node.cpus) {
            expected.insert({node.index, std::to_string(cpu)});
        }
    }
    check_placement(sys.cpu_policies(), expected, false);
}

void gpus()
{
    const auto sys = dragonx::system::current();
    std::set<std::pair<std::uint32_t, std::string>> expected;
    for (const auto& node : sys.nodes()) {
        for (int gpu : node.gpus) {
            expected.insert({node.index, std::to_string(gpu)});
        }
    }
    check(!expected.empty(), "no GPUs found (is the fake nvidia-smi on PATH?)");
    check_placement(sys.gpu_policies(), expected, true);
}

}  // namespace

int main(int argc, char** argv)
{
    if (auto code = dragonx::serve_tasks_if_worker(the_tasks().registry)) {
        return *code;
    }
    if (argc < 2) {
        fail("usage: task_pool_check basic|failures|nested|cpus|gpus");
    }
    const std::string mode = argv[1];
    try {
        if (mode == "basic") {
            basic();
        } else if (mode == "failures") {
            failures();
        } else if (mode == "nested") {
            nested();
        } else if (mode == "cpus") {
            cpus();
        } else if (mode == "gpus") {
            gpus();
        } else {
            fail("unknown mode " + mode);
        }
    } catch (const std::exception& e) {
        fail(mode + ": " + e.what());
    }
    std::cout << "PASS " << mode << std::endl;
    return 0;
}
