// pool_demo.cpp - a managed-memory pool shared by independent processes.
//
// The parent creates a pool, fills one block per worker with numbers, and starts workers as
// separate programs (this executable again, with --worker). Each worker attaches the pool and
// its blocks from descriptor strings on its command line, sums the numbers in place, writes
// the sum into a result block, and frees its input block: ownership travelled with the
// descriptor. The parent checks the sums and that the pool is exactly as free as it started.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

extern char** environ;

namespace {

constexpr std::size_t numbers_per_worker = 1 << 20;  // 8 MiB of doubles each

int worker(const char* pool_desc, const char* input_desc, const char* result_desc)
{
    auto pool = dragonx::pool::pool::attach(pool_desc);
    auto input = pool.attach_allocation(input_desc);  // ours now: freed when we return
    auto result = pool.attach_allocation(result_desc);
    const auto* numbers = reinterpret_cast<const double*>(input.data());
    const double sum = std::accumulate(numbers, numbers + input.size() / sizeof(double), 0.0);
    std::memcpy(result.data(), &sum, sizeof sum);
    (void)result.release();  // the parent keeps the result block
    std::printf("  worker %d: attached %s by descriptor, summed %zu numbers in place\n",
                static_cast<int>(::getpid()), pool.name().c_str(),
                input.size() / sizeof(double));
    return 0;
}

int parent(const char* self)
{
    auto pool = dragonx::pool::pool::create({.size = 64 << 20});
    const auto start = pool.stats();
    std::printf("created pool %s: %llu bytes, descriptor %s\n", pool.name().c_str(),
                static_cast<unsigned long long>(start.total_bytes), pool.descriptor().c_str());

    constexpr int workers = 3;
    std::vector<dragonx::pool::allocation> results;
    std::vector<pid_t> pids;
    for (int w = 0; w < workers; ++w) {
        auto input = pool.allocate(numbers_per_worker * sizeof(double), std::chrono::seconds(1));
        auto* numbers = reinterpret_cast<double*>(input.data());
        std::iota(numbers, numbers + numbers_per_worker, static_cast<double>(w));
        results.push_back(pool.allocate(sizeof(double), std::chrono::seconds(1)));

        const std::string pool_desc = pool.descriptor();
        const std::string input_desc = input.release();  // the worker will free it
        const std::string result_desc = results.back().descriptor();
        const char* argv[] = {self, "--worker", pool_desc.c_str(), input_desc.c_str(),
                              result_desc.c_str(), nullptr};
        pid_t pid = 0;
        if (posix_spawn(&pid, self, nullptr, nullptr, const_cast<char**>(argv), environ) != 0) {
            std::perror("posix_spawn");
            return 1;
        }
        pids.push_back(pid);
    }
    std::printf("started %d workers; pool utilization now %.1f%%\n", workers,
                100 * pool.stats().utilization);

    bool ok = true;
    for (int w = 0; w < workers; ++w) {
        int status = 0;
        ::waitpid(pids[static_cast<std::size_t>(w)], &status, 0);
        double sum = 0;
        std::memcpy(&sum, results[static_cast<std::size_t>(w)].data(), sizeof sum);
        const double n = numbers_per_worker;
        const double expected = n * w + n * (n - 1) / 2;
        const bool right = WIFEXITED(status) && WEXITSTATUS(status) == 0 && sum == expected;
        std::printf("worker %d: sum %.0f (%s)\n", w, sum, right ? "correct" : "WRONG");
        ok = ok && right;
    }
    results.clear();
    const auto end = pool.stats();
    std::printf("pool free again: %llu of %llu bytes (%s)\n",
                static_cast<unsigned long long>(end.free_bytes),
                static_cast<unsigned long long>(end.total_bytes),
                end.free_bytes == start.free_bytes ? "exactly as at the start" : "LEAKED");
    ok = ok && end.free_bytes == start.free_bytes;
    std::printf("%s; the pool is removed from /dev/shm as the demo exits\n",
                ok ? "demo OK" : "demo FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // keep our lines in order with the workers'
    try {
        if (argc == 5 && std::string(argv[1]) == "--worker") {
            return worker(argv[2], argv[3], argv[4]);
        }
        return parent("/proc/self/exe");
    } catch (const dragonx::error& e) {
        std::fprintf(stderr, "pool_demo: %s\n", e.what());
        return 1;
    }
}
