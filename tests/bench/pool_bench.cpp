// pool_bench.cpp - pool allocation speed, with malloc/free measured in the same run.
//
// Prints one line per figure, `name value unit (reference value unit, ratio)`, or with --json
// one JSON object. Figures:
//   alloc_free_p50_ns       median time of one allocate+free pair, worst of 64 B, 1 KiB, 4 KiB
//   alloc_free_pairs_per_s  pairs per second, one process, 64 B .. 4 KiB mixed
//   two_proc_pairs_per_s    pairs per second, two processes on one pool at once
//   malloc_free_p50_ns      the reference: malloc+free, same sizes and method
// Options: --json, --quick (fewer iterations, for smoke tests).
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dragonx/pool/pool.hpp>

#include "harness.hpp"

namespace {

using dragonx::bench::escape;
using dragonx::bench::figure;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0)
{
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Median ns per pair over `batches` timed batches of `per_batch` pairs each.
template <class Pair>
double median_pair_ns(int batches, int per_batch, Pair&& pair)
{
    std::vector<double> ns;
    ns.reserve(static_cast<std::size_t>(batches));
    for (int b = 0; b < batches; ++b) {
        const auto t0 = clock_type::now();
        for (int i = 0; i < per_batch; ++i) {
            pair();
        }
        ns.push_back(std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() /
                     per_batch);
    }
    std::nth_element(ns.begin(), ns.begin() + static_cast<long>(ns.size() / 2), ns.end());
    return ns[ns.size() / 2];
}

constexpr std::uint64_t mixed_sizes[] = {64, 200, 1024, 4096, 100, 3000, 512, 2048};

double pool_pairs_per_s(dragonx::pool::pool& p, std::uint64_t pairs)
{
    const auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < pairs; ++i) {
        auto a = p.try_allocate(mixed_sizes[i % 8]);
        escape(a->data());
    }
    return static_cast<double>(pairs) / seconds_since(t0);
}

double malloc_pairs_per_s(std::uint64_t pairs)
{
    const auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < pairs; ++i) {
        void* m = std::malloc(mixed_sizes[i % 8]);
        escape(m);
        std::free(m);
    }
    return static_cast<double>(pairs) / seconds_since(t0);
}

// Two forked processes run `pairs` pairs each on one pool, starting together. Returns the
// total pairs per second over the span from the common start to the last finish.
double two_process_pairs_per_s(dragonx::pool::pool& p, std::uint64_t pairs)
{
    struct shared {
        std::atomic<int> ready;
        std::atomic<int> go;
        std::atomic<std::int64_t> end_ns[2];
    };
    void* mem = dragonx::bench::shared_memory(sizeof(shared));
    auto* s = new (mem) shared{};
    const auto desc = p.descriptor();
    pid_t pids[2];
    for (int w = 0; w < 2; ++w) {
        pids[w] = ::fork();
        if (pids[w] == 0) {
            auto q = dragonx::pool::pool::attach(desc);
            ++s->ready;
            while (s->go.load() == 0) {
            }
            for (std::uint64_t i = 0; i < pairs; ++i) {
                auto a = q.try_allocate(mixed_sizes[(i + static_cast<unsigned>(w)) % 8]);
                escape(a->data());
            }
            s->end_ns[w] = clock_type::now().time_since_epoch().count();
            ::_exit(0);
        }
    }
    while (s->ready.load() < 2) {
    }
    const auto t0 = clock_type::now();
    s->go = 1;
    for (pid_t pid : pids) {
        ::waitpid(pid, nullptr, 0);
    }
    const auto last = std::max(s->end_ns[0].load(), s->end_ns[1].load());
    const double secs = static_cast<double>(last - t0.time_since_epoch().count()) * 1e-9;
    ::munmap(mem, sizeof(shared));
    return static_cast<double>(2 * pairs) / secs;
}

}  // namespace

int main(int argc, char** argv)
{
    const auto [json, quick] = dragonx::bench::parse_options(argc, argv, "pool_bench");
    const int batches = quick ? 2000 : 20000;
    const std::uint64_t pairs = quick ? 200'000 : 5'000'000;

    auto p = dragonx::pool::pool::create({.size = 256 << 20});

    // Warm up: touch the blocks once so page faults are not measured.
    pool_pairs_per_s(p, 100'000);

    double worst_p50 = 0;
    double worst_malloc_p50 = 0;
    std::vector<std::pair<std::uint64_t, double>> per_size;
    for (std::uint64_t size : {64u, 1024u, 4096u}) {
        const double ns = median_pair_ns(batches, 64, [&] {
            auto a = p.try_allocate(size);
            escape(a->data());
        });
        const double mns = median_pair_ns(batches, 64, [&] {
            void* m = std::malloc(size);
            escape(m);
            std::free(m);
        });
        per_size.emplace_back(size, ns);
        worst_p50 = std::max(worst_p50, ns);
        worst_malloc_p50 = std::max(worst_malloc_p50, mns);
    }
    const double rate = pool_pairs_per_s(p, pairs);
    const double malloc_rate = malloc_pairs_per_s(pairs);
    // 2 x 25 M pairs = 10^8 allocations and frees, after which the pool must be whole again.
    const double two_rate = two_process_pairs_per_s(p, quick ? pairs : 25'000'000);
    const auto st = p.stats();
    const bool clean = st.free_bytes == st.total_bytes;

    if (json) {
        std::printf("{\"alloc_free_p50_ns\": %.1f, \"alloc_free_pairs_per_s\": %.0f, "
                    "\"two_proc_pairs_per_s\": %.0f, \"malloc_free_p50_ns\": %.1f, "
                    "\"malloc_free_pairs_per_s\": %.0f, \"p50_64b_ns\": %.1f, "
                    "\"p50_1kib_ns\": %.1f, \"p50_4kib_ns\": %.1f, \"pool_clean_after\": %s}\n",
                    worst_p50, rate, two_rate, worst_malloc_p50, malloc_rate, per_size[0].second,
                    per_size[1].second, per_size[2].second, clean ? "true" : "false");
    } else {
        std::printf("pool_bench: placement unpinned, %ld CPUs online\n", sysconf(_SC_NPROCESSORS_ONLN));
        for (auto [size, ns] : per_size) {
            char name[40];
            std::snprintf(name, sizeof name, "alloc_free_p50_%llub", static_cast<unsigned long long>(size));
            figure(name, ns, "ns");
        }
        figure("alloc_free_p50_ns", worst_p50, "ns", "malloc_free_p50", worst_malloc_p50);
        figure("alloc_free_pairs_per_s", rate, "pairs/s", "malloc_free", malloc_rate);
        figure("two_proc_pairs_per_s", two_rate, "pairs/s");
        std::printf("targets: p50 <= 200 ns, >= 5 M pairs/s, two processes >= 2 M pairs/s; "
                    "pool %s after the run\n", clean ? "fully free" : "NOT fully free");
    }
    return clean ? 0 : 1;
}
