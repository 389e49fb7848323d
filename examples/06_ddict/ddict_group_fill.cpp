// ddict_group_fill.cpp - a process group fills a distributed dictionary, the head reads it all
// back (the C++ take on DragonHPC's 3_dragon_dictionary).
//
//   dragonx run --wlm local -N 3 build/examples/ddict_group_fill [--workers N] [--keys K]
//
// The head creates a dictionary (one manager per node) and starts a dragonx::process_group of
// N workers (default: two per node; the group spreads them over the nodes round robin), this
// program again in the worker role. Worker w attaches by the descriptor on its command line
// and stores keys [w*K, (w+1)*K) (default K = 500), each key's value computed from the key (a
// vector of 32 doubles), with d[key] = value. The head joins the group, then reads every entry
// back with items(), checks that each key of [0, N*K) came exactly once with its value, and
// prints a summary: keys, bytes, fill and read times, and each manager's share.
//
// Exit code 0 when every worker succeeded and every value read back is right; 1 otherwise.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using number_dict = dragonx::ddict<std::uint64_t, std::vector<double>>;

constexpr std::size_t value_doubles = 32;
constexpr auto group_limit = 45s;  // the workers' whole life

/// The value of `key`: exact in doubles, different for every key.
std::vector<double> value_of(std::uint64_t key)
{
    std::vector<double> v(value_doubles);
    for (std::size_t j = 0; j < v.size(); ++j) {
        v[j] = static_cast<double>(key) * 0.5 + static_cast<double>(j);
    }
    return v;
}

double seconds_since(clock_type::time_point t0)
{
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// A worker: stores its range of keys. Returns the exit code.
int worker(const std::string& descriptor, std::uint64_t index, std::uint64_t keys)
{
    const auto& rt = dragonx::runtime::current();
    const auto t0 = clock_type::now();
    auto d = number_dict::attach(descriptor);
    const std::uint64_t first = index * keys;
    for (std::uint64_t k = first; k < first + keys; ++k) {
        d[k] = value_of(k);
    }
    std::printf("worker %llu on %s: keys [%llu, %llu) in %.0f ms\n",
                static_cast<unsigned long long>(index), rt.hostname().c_str(),
                static_cast<unsigned long long>(first),
                static_cast<unsigned long long>(first + keys), 1000 * seconds_since(t0));
    d.detach();
    return 0;
}

/// The head: creates the dictionary, runs the group, checks everything. Returns the exit code.
int head(const char* self, std::uint64_t workers, std::uint64_t keys)
{
    const auto& rt = dragonx::runtime::current();
    dragonx::ddict_options options;
    options.managers_per_node = 1;
    options.n_nodes = rt.nnodes();
    options.total_mem = std::uint64_t{64} << 20;
    options.timeout = 20s;
    auto d = number_dict::create(options);
    std::printf("ddict_group_fill: %u manager(s) on %u node(s); %llu workers, %llu keys each\n",
                d.managers(), rt.nnodes(), static_cast<unsigned long long>(workers),
                static_cast<unsigned long long>(keys));

    bool ok = true;
    try {
        // Fill: the group's members are placed in one evaluation, round robin over the nodes.
        const auto fill0 = clock_type::now();
        dragonx::process_group group;
        for (std::uint64_t w = 0; w < workers; ++w) {
            group.add(1, {.exe = self,
                          .args = {"--worker", d.serialize(), std::to_string(w),
                                   std::to_string(keys)}});
        }
        group.start();
        try {
            group.join(group_limit);  // throws if a worker failed or the group ran too long
        } catch (const dragonx::error& e) {
            std::printf("ddict_group_fill: %s\n", e.what());
            ok = false;
        }
        group.close();
        const double fill_s = seconds_since(fill0);

        // Read back: every entry, streamed from each manager in turn.
        const auto read0 = clock_type::now();
        const std::uint64_t total = workers * keys;
        std::vector<bool> seen(total, false);
        std::uint64_t entries = 0;
        std::uint64_t bytes = 0;
        std::uint64_t wrong = 0;
        for (const auto& [k, v] : d.items()) {
            ++entries;
            bytes += sizeof k + v.size() * sizeof(double);
            if (k >= total || seen[k] || v != value_of(k)) {
                if (wrong++ == 0) {
                    std::printf("ddict_group_fill: key %llu is wrong (%s)\n",
                                static_cast<unsigned long long>(k),
                                k >= total ? "out of range" : seen[k] ? "twice" : "its value");
                }
            } else {
                seen[k] = true;
            }
        }
        const double read_s = seconds_since(read0);
        const auto missing =
            static_cast<std::uint64_t>(std::count(seen.begin(), seen.end(), false));
        const auto size = d.size();
        ok = ok && wrong == 0 && missing == 0 && entries == total && size == total;

        std::printf("ddict_group_fill: filled %llu keys (%.2f MiB of keys and values) in %.2f s "
                    "(%.0f puts/s)\n",
                    static_cast<unsigned long long>(size), bytes / 1048576.0, fill_s,
                    static_cast<double>(total) / fill_s);
        std::printf("ddict_group_fill: items() read %llu entries back in %.2f s; %llu wrong, "
                    "%llu missing\n",
                    static_cast<unsigned long long>(entries), read_s,
                    static_cast<unsigned long long>(wrong),
                    static_cast<unsigned long long>(missing));
        for (const auto& s : d.stats()) {
            std::printf("ddict_group_fill: manager %u on %s: %llu keys, %.2f MiB used\n",
                        s.manager_id, s.hostname.c_str(),
                        static_cast<unsigned long long>(s.num_keys), s.used_bytes / 1048576.0);
        }
    } catch (const std::exception& e) {
        std::printf("ddict_group_fill: %s\n", e.what());
        ok = false;
    }
    d.destroy();
    std::printf("ddict_group_fill: %s\n", ok ? "every value right" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // our lines interleave with the workers' in time
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        if (args.size() == 4 && args[0] == "--worker") {
            return worker(args[1], std::stoull(args[2]), std::stoull(args[3]));
        }
        std::uint64_t workers = 2 * dragonx::runtime::current().nnodes();
        std::uint64_t keys = 500;
        for (std::size_t i = 0; i < args.size(); i += 2) {
            if (i + 1 < args.size() && args[i] == "--workers") {
                workers = std::stoull(args[i + 1]);
            } else if (i + 1 < args.size() && args[i] == "--keys") {
                keys = std::stoull(args[i + 1]);
            } else {
                workers = 0;
                break;
            }
        }
        if (workers == 0 || keys == 0) {
            std::fprintf(stderr, "usage: ddict_group_fill [--workers N] [--keys K]\n");
            return 2;
        }
        return head(argv[0], workers, keys);
    } catch (const std::exception& e) {
        std::printf("ddict_group_fill: %s\n", e.what());
        return 1;
    }
}
