// queue_demo.cpp - a small work farm: typed queues, a barrier and an event shared by
// independent processes.
//
// The parent creates a pool and, in it, a queue of tasks (vectors of numbers, some far larger
// than a channel slot), a queue of results, a start barrier and a "no more work" event. It
// starts workers as separate programs (this executable again, with --worker and the
// descriptors on the command line). All meet at the barrier; then the parent hands out the
// tasks, the workers sum them and send back (task, sum), and the parent checks every sum and
// that the pool is exactly as free as before the tasks.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

extern char** environ;

namespace {

using namespace std::chrono_literals;
using task = std::vector<double>;         // task[0] is the task number, the rest the numbers
using result = std::array<double, 3>;     // task number, sum, worker index

constexpr int workers = 3;
constexpr int tasks = 60;

std::size_t numbers_in(int t)
{
    return t % 10 == 0 ? 200'000 : static_cast<std::size_t>(t) * 10;  // 0 to 1.6 MB each
}

int worker(const std::vector<std::string>& desc)
{
    auto todo = dragonx::queue<task>::attach(desc[0]);
    auto done = dragonx::queue<result>::attach(desc[1]);
    auto start = dragonx::barrier::attach(desc[2]);
    auto no_more_work = dragonx::event::attach(desc[3]);

    const auto me = start.wait(10s);  // a distinct index per worker (and one for the parent)
    int handled = 0;
    for (;;) {
        auto t = todo.try_get();
        if (!t) {
            if (no_more_work.is_set() && todo.empty()) {
                break;
            }
            (void)todo.poll(10ms);
            continue;
        }
        const double sum = std::accumulate(t->begin() + 1, t->end(), 0.0);
        done.put({(*t)[0], sum, static_cast<double>(me)}, 10s);
        ++handled;
    }
    std::printf("  worker %u (pid %d): %d tasks\n", me, static_cast<int>(::getpid()), handled);
    return 0;
}

int parent(const char* self)
{
    auto pool = dragonx::pool::pool::create({.size = 64 << 20});
    auto todo = dragonx::queue<task>::create(pool, {.capacity = 8, .block_size = 1024});
    auto done = dragonx::queue<result>::create(pool, {.capacity = 64, .block_size = 64});
    auto start = dragonx::barrier::create(pool, workers + 1);
    auto no_more_work = dragonx::event::create(pool);
    const auto free_before = pool.stats().free_bytes;

    const std::vector<std::string> desc = {todo.descriptor(), done.descriptor(),
                                           start.descriptor(), no_more_work.descriptor()};
    std::printf("queue descriptor (%zu characters): %s\n", desc[0].size(), desc[0].c_str());
    std::vector<pid_t> pids;
    for (int w = 0; w < workers; ++w) {
        std::vector<const char*> argv = {self, "--worker"};
        for (const auto& d : desc) {
            argv.push_back(d.c_str());
        }
        argv.push_back(nullptr);
        pid_t pid = 0;
        if (posix_spawn(&pid, self, nullptr, nullptr, const_cast<char**>(argv.data()), environ) !=
            0) {
            std::perror("posix_spawn");
            return 1;
        }
        pids.push_back(pid);
    }
    std::printf("parent is party %u of the start barrier\n", start.wait(10s));

    const auto t0 = std::chrono::steady_clock::now();
    std::vector<double> expected(tasks);
    for (int t = 0; t < tasks; ++t) {
        task work(numbers_in(t) + 1);
        work[0] = t;
        std::iota(work.begin() + 1, work.end(), 1.0);
        expected[static_cast<std::size_t>(t)] = std::accumulate(work.begin() + 1, work.end(), 0.0);
        todo.put(work, 10s);  // waits while the 8-slot queue is full
    }
    no_more_work.set();

    bool ok = true;
    std::array<int, workers + 1> per_worker{};
    for (int t = 0; t < tasks; ++t) {
        const auto r = done.get(10s);
        const auto id = static_cast<std::size_t>(r[0]);
        ok = ok && id < expected.size() && r[1] == expected[id];
        ++per_worker[static_cast<std::size_t>(r[2])];
    }
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
    for (auto pid : pids) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    std::printf("%d tasks (%s) summed by %d workers in %.1f ms: %s\n", tasks,
                "up to 1.6 MB each, the large ones through the pool without a copy", workers,
                ms.count(), ok ? "every sum correct" : "WRONG SUMS");
    const auto free_after = pool.stats().free_bytes;
    std::printf("pool free after the tasks: %s\n",
                free_after == free_before ? "exactly as before" : "LEAKED");
    ok = ok && free_after == free_before;
    std::printf("%s; queues, barrier, event and pool are removed as the demo exits\n",
                ok ? "demo OK" : "demo FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // keep our lines in order with the workers'
    try {
        if (argc == 6 && std::string(argv[1]) == "--worker") {
            return worker({argv[2], argv[3], argv[4], argv[5]});
        }
        return parent("/proc/self/exe");
    } catch (const dragonx::error& e) {
        std::fprintf(stderr, "queue_demo: %s\n", e.what());
        return 1;
    }
}
