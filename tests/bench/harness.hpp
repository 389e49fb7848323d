// harness.hpp - what every dragonx benchmark program shares: options, output lines, shared
// memory for forked workers, percentiles.
//
// Output: one line per figure, `name value unit (reference value unit, ratio)`, or one JSON
// object with --json (printed by the benchmark itself). --quick runs fewer iterations, for
// smoke runs in CI.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace dragonx::bench {

struct options {
    bool json = false;
    bool quick = false;
};

/// Parses --json and --quick; anything else prints usage and exits with 2.
inline options parse_options(int argc, char** argv, const char* program)
{
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--json") {
            o.json = true;
        } else if (arg == "--quick") {
            o.quick = true;
        } else {
            std::fprintf(stderr, "usage: %s [--json] [--quick]\n", program);
            std::exit(2);
        }
    }
    return o;
}

/// One figure, with the reference it is compared with (same unit) when there is one.
inline void figure(const char* name, double value, const char* unit,
                   const char* ref_name = nullptr, double ref = 0)
{
    if (ref_name != nullptr) {
        std::printf("%-26s %14.1f %-7s (%s %.1f %s, ratio %.2f)\n", name, value, unit, ref_name,
                    ref, unit, value / ref);
    } else {
        std::printf("%-26s %14.1f %s\n", name, value, unit);
    }
}

/// Keeps the optimizer from dropping a pointer it cannot see used.
inline void escape(void* p)
{
    asm volatile("" : : "g"(p) : "memory");
}

/// `bytes` of anonymous shared memory, inherited by forked workers. Exits on failure.
inline void* shared_memory(std::size_t bytes)
{
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        std::perror("mmap");
        std::exit(1);
    }
    return p;
}

/// The q-quantile (0..1) of `v`.
inline double percentile(std::vector<double> v, double q)
{
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

/// A rate and the latency percentiles measured with it.
struct rate_latency {
    double per_s = 0;  // operations per second
    double p50_us = 0;
    double p99_us = 0;
};

/// Each field's median over several runs (all zero for none).
inline rate_latency median_of(const std::vector<rate_latency>& runs)
{
    if (runs.empty()) {
        return {};
    }
    std::vector<double> per_s;
    std::vector<double> p50;
    std::vector<double> p99;
    for (const auto& r : runs) {
        per_s.push_back(r.per_s);
        p50.push_back(r.p50_us);
        p99.push_back(r.p99_us);
    }
    return {percentile(per_s, 0.5), percentile(p50, 0.5), percentile(p99, 0.5)};
}

}  // namespace dragonx::bench
