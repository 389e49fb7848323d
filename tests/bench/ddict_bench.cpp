// ddict_bench.cpp - the DDict benchmark: puts, gets, batches and 1 MiB values through the real
// managers under `dragonx run`, with Redis measured in the same run as the reference.
//
//   ddict_bench [--json] [--quick] [--no-redis] [--num_nodes N]
//       the standard suite (below), on 2 virtual nodes unless --num_nodes says otherwise
//   ddict_bench --dict_size K --value_size B --clients C [--num_nodes N] [--managers_per_node M]
//               [--total_mem_size 1G] [--batch_size S] [--iterations I] [--dict_ops 0|1|2|3]
//               [--redis] [--json]
//       one workload, as DragonHPC's ddict_bench runs it: C client processes (this program in
//       the client role, attached by descriptor, spread over the nodes) each work on K keys
//       of their own, I times; dict_ops 0 put, 1 get, 2 put then get, 3 delete. Aggregate
//       ops/s (median over iterations) and latency p50/p99 (over every operation of every
//       client; per batch when --batch_size > 1 batches the puts).
//
// Standard suite figures (JSON keys; every one the median of several repetitions):
//   get_8b_* / put_8b_*       1 client (the head), 1 manager on its node, 8-byte values; each
//                             operation timed alone: p50/p99 in µs, ops/s over the whole loop
//   batch_put_1k_ops_per_s    1 KiB values, start_batch() and commit() every 1000 puts
//   get_1mib_gbps/put_...     1 MiB values (GB/s = 1e9 bytes/s)
//   get_1mib_view_gbps        the same gets through dict::client, the value viewed in the
//                             reply block instead of decoded into a std::vector
//   manager_idle_busy_pct     CPU share an idle manager uses (it should sleep, not spin)
//   attach_ms                 attach by descriptor from the head (the detach is not counted)
//   create_ms / destroy_ms    a dictionary of 1 manager on the head's node
//   checkpoint_advance_us     1 client, no data: checkpoint() then an 8-byte put, so that the
//                             manager advances (working set of 2); the plain put beside it
//   persist_gbps / restore_gbps  persist() and restore() of a 1 GiB checkpoint (64 MiB with
//                             --quick) to ./ddict_bench_persist.*, against dd bs=1M of as many
//                             bytes there (write with conv=fsync; read to /dev/null); and
//                             dd of that file into /dev/shm: the restore's own work (fresh
//                             shared memory filled from the file) without the dictionary
//   same_vcpu_* / cross_vcpu_*  8-byte figures with the head and its manager pinned to one
//                             vCPU, or to two (the figures above are unpinned)
//   remote_*                  the head on node 0, the manager on node 1 (runs of ≥ 2 nodes)
//   redis_*, *_vs_redis       redis-benchmark -c 1 against a private redis-server, unpinned
//                             like the DDict processes or pinned like the pinned figures;
//                             ratio = dragonx / redis
// Puts are inserts: the dictionary is cleared (untimed) before each repetition.
//
// Notes:
// - Outside a run (DRAGONX_RUN unset) the program re-executes itself as
//   `dragonx run [--wlm local -N n] -t tcp ddict_bench ARGS` (the launcher: $DRAGONX_EXE, else
//   the build's) and afterwards names, on stderr, any entry the run left in /dev/shm (the head
//   writes its run id to the file $DDICT_BENCH_RUN_FILE names).
// - The head destroys every dictionary it creates and stops its redis-server (by pid, then
//   waits for it), also when a measurement fails; client processes left running by a failure
//   are killed. A failure is a message on stderr and exit status 1.
// - Placement is chosen only for the pinned figures, and reported for all: the vCPUs the head
//   and its manager were on, sampled about once a millisecond (sched_getcpu; the manager's
//   /proc/PID/stat, which names the vCPU it runs on or last ran on), and the CPU share each
//   used (and of it, in the kernel). Shares come from clock ticks (10 ms): rough over the
//   short measurements of --quick. Head and manager at ~50% busy each, with the other vCPU
//   taken by something else, means they shared one vCPU.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "harness.hpp"
#include "placement.hpp"
#include "redis.hpp"
#include "subprocess.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using dragonx::bench::pinned;
using dragonx::bench::placement_probe;
using dragonx::bench::redis_median;
using dragonx::bench::redis_row;
using dragonx::bench::redis_server;
using clock_type = std::chrono::steady_clock;
using bench_dict = dragonx::ddict<std::uint64_t, dragonx::bytes>;
using counter_dict = dragonx::ddict<std::string, std::int64_t>;
using result_dict = dragonx::ddict<std::string, std::vector<double>>;

constexpr std::uint64_t big_value = std::uint64_t{1} << 20;

[[noreturn]] void fail(const std::string& why)
{
    throw std::runtime_error(why);
}

void expect(bool ok, const std::string& what)
{
    if (!ok) {
        fail(what);
    }
}

double seconds_between(clock_type::time_point a, clock_type::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

double median(std::vector<double> v)
{
    return v.empty() ? 0 : dragonx::bench::percentile(std::move(v), 0.5);
}

std::string self_path()
{
    return fs::read_symlink("/proc/self/exe").string();
}

// ---- options ------------------------------------------------------------------------------------

/// What the command line asks for. Workload fields keep their defaults in suite mode.
struct bench_options {
    bool json = false;   // the JSON object after the figure lines
    bool quick = false;  // the suite with small counts (CI smoke runs)
    std::optional<bool> redis;               // the Redis reference; unset: suite yes, workload no
    std::optional<std::uint32_t> num_nodes;  // virtual nodes; unset: suite 2, workload 1
    bool workload = false;                   // a workload option was given
    std::uint64_t dict_size = 1000;          // keys per client
    std::uint64_t value_size = 1024;         // bytes per value
    std::uint32_t clients = 2;               // client processes
    std::uint32_t managers_per_node = 1;
    std::uint64_t total_mem_size = 0;  // bytes over all managers; 0: enough for the workload
    std::uint64_t batch_size = 0;      // > 1: puts in batches of this many
    std::uint32_t iterations = 3;
    int dict_ops = 2;  // 0 put, 1 get, 2 put then get, 3 delete
};

[[noreturn]] void usage(int code)
{
    std::fprintf(code == 0 ? stdout : stderr,
                 "usage: ddict_bench [--json] [--quick] [--redis | --no-redis] [--num_nodes N]\n"
                 "       ddict_bench [--dict_size KEYS] [--value_size BYTES] [--clients C]\n"
                 "                   [--num_nodes N] [--managers_per_node M]\n"
                 "                   [--total_mem_size BYTES[K|M|G]] [--batch_size S]\n"
                 "                   [--iterations I] [--dict_ops 0|1|2|3] [--redis] [--json]\n"
                 "With no workload option: the standard suite. dict_ops: 0 put, 1 get,\n"
                 "2 put then get, 3 delete.\n");
    std::exit(code);
}

/// A count or size: digits, with an optional K, M or G (binary) suffix when `sized`.
std::uint64_t parse_number(const std::string& name, const std::string& text, bool sized)
{
    std::size_t used = 0;
    std::uint64_t n = 0;
    try {
        n = std::stoull(text, &used);
    } catch (const std::exception&) {
        std::fprintf(stderr, "ddict_bench: --%s wants a number, not '%s'\n", name.c_str(),
                     text.c_str());
        usage(2);
    }
    const std::string suffix = text.substr(used);
    int shift = 0;
    if (sized && (suffix == "K" || suffix == "k")) {
        shift = 10;
    } else if (sized && (suffix == "M" || suffix == "m")) {
        shift = 20;
    } else if (sized && (suffix == "G" || suffix == "g")) {
        shift = 30;
    } else if (!suffix.empty() || text.empty() || text[0] == '-') {
        std::fprintf(stderr, "ddict_bench: --%s: bad value '%s'\n", name.c_str(), text.c_str());
        usage(2);
    }
    return n << shift;
}

/// Options as DragonHPC's ddict_bench names them; `--name value` or `--name=value`.
bench_options parse_options(int argc, char** argv)
{
    bench_options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::optional<std::string> inline_value;
        if (const auto eq = arg.find('='); eq != std::string::npos) {
            inline_value = arg.substr(eq + 1);
            arg.resize(eq);
        }
        if (arg == "--json" || arg == "--quick" || arg == "--redis" || arg == "--no-redis" ||
            arg == "--help" || arg == "-h") {
            if (inline_value) {
                usage(2);
            }
            if (arg == "--json") {
                o.json = true;
            } else if (arg == "--quick") {
                o.quick = true;
            } else if (arg == "--redis") {
                o.redis = true;
            } else if (arg == "--no-redis") {
                o.redis = false;
            } else {
                usage(0);
            }
            continue;
        }
        if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
            usage(2);
        }
        const std::string name = arg.substr(2);
        static const std::set<std::string> valued = {
            "num_nodes",      "dict_size",  "value_size", "clients", "managers_per_node",
            "total_mem_size", "batch_size", "iterations", "dict_ops"};
        if (valued.count(name) == 0) {
            std::fprintf(stderr, "ddict_bench: unknown option %s\n", arg.c_str());
            usage(2);
        }
        std::string text;
        if (inline_value) {
            text = *inline_value;
        } else if (i + 1 < argc) {
            text = argv[++i];
        } else {
            usage(2);
        }
        const auto count = [&] { return parse_number(name, text, false); };
        if (name == "num_nodes") {
            o.num_nodes = static_cast<std::uint32_t>(count());
            continue;
        }
        o.workload = true;
        if (name == "dict_size") {
            o.dict_size = count();
        } else if (name == "value_size") {
            o.value_size = parse_number(name, text, true);
        } else if (name == "clients") {
            o.clients = static_cast<std::uint32_t>(count());
        } else if (name == "managers_per_node") {
            o.managers_per_node = static_cast<std::uint32_t>(count());
        } else if (name == "total_mem_size") {
            o.total_mem_size = parse_number(name, text, true);
        } else if (name == "batch_size") {
            o.batch_size = count();
        } else if (name == "iterations") {
            o.iterations = static_cast<std::uint32_t>(count());
        } else {
            o.dict_ops = static_cast<int>(count());
        }
    }
    if (o.num_nodes && *o.num_nodes == 0) {
        usage(2);
    }
    if (o.workload && (o.dict_size == 0 || o.clients == 0 || o.managers_per_node == 0 ||
                       o.iterations == 0 || o.dict_ops < 0 || o.dict_ops > 3)) {
        std::fprintf(stderr, "ddict_bench: dict_size, clients, managers_per_node and "
                             "iterations must be > 0, dict_ops 0..3\n");
        usage(2);
    }
    return o;
}

// ---- output -------------------------------------------------------------------------------------

/// Figure lines as they are measured (harness format), and the JSON object at the end.
class report {
public:
    explicit report(bool json) : json_(json) {}

    /// A figure with no reference.
    void figure(const std::string& name, double value, const char* unit)
    {
        dragonx::bench::figure(name.c_str(), value, unit);
        json_number(name, value);
    }
    /// A figure with its reference (same unit) when there is one; `ratio_key` gets
    /// value / reference in the JSON.
    void figure(const std::string& name, double value, const char* unit,
                const std::string& ref_label, std::optional<double> ref,
                const std::string& ratio_key)
    {
        json_number(name, value);
        if (ref && *ref > 0) {
            dragonx::bench::figure(name.c_str(), value, unit, ref_label.c_str(), *ref);
            json_number(ratio_key, value / *ref);
        } else {
            dragonx::bench::figure(name.c_str(), value, unit);
        }
    }
    /// A line of text, kept in the JSON under `key` when `key` is not empty.
    void note(const std::string& key, const std::string& text)
    {
        std::printf("%s\n", text.c_str());
        if (!key.empty()) {
            entries_.emplace_back(key, quoted(text));
        }
    }
    /// Where the figures above were measured: "  placement WHAT: TEXT", and in the JSON
    /// "placement_WHAT": TEXT.
    void placement(const std::string& what, const std::string& text)
    {
        std::printf("  placement %s: %s\n", what.c_str(), text.c_str());
        entries_.emplace_back("placement_" + what, quoted(text));
    }
    void json_number(const std::string& key, double value)
    {
        char buf[64];
        if (std::isfinite(value)) {
            std::snprintf(buf, sizeof buf, "%.6g", value);
        } else {
            std::snprintf(buf, sizeof buf, "null");
        }
        entries_.emplace_back(key, buf);
    }
    void print_json() const
    {
        if (!json_) {
            return;
        }
        std::string out = "{";
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            out += (i == 0 ? "" : ", ") + quoted(entries_[i].first) + ": " + entries_[i].second;
        }
        std::printf("%s}\n", out.c_str());
    }

private:
    static std::string quoted(const std::string& s)
    {
        std::string out = "\"";
        for (const char c : s) {
            if (c == '"' || c == '\\') {
                out += '\\';
                out += c;
            } else if (static_cast<unsigned char>(c) < 0x20) {
                out += ' ';
            } else {
                out += c;
            }
        }
        return out + "\"";
    }
    bool json_;
    std::vector<std::pair<std::string, std::string>> entries_;
};

// ---- placement ----------------------------------------------------------------------------------

/// Splits a /proc file of NUL-separated strings (cmdline, environ); empty if unreadable.
std::vector<std::string> proc_strings(const fs::path& file)
{
    std::ifstream in(file, std::ios::binary);
    std::vector<std::string> out;
    std::string s;
    while (std::getline(in, s, '\0')) {
        out.push_back(s);
    }
    return out;
}

/// The pid of the manager (`dragonx-ddict manager ...`) of run `run` on node `node`, or -1.
/// Unambiguous while the run has one dictionary with one manager on that node.
pid_t find_manager(const std::string& run, std::uint32_t node)
{
    std::error_code ec;
    for (auto it = fs::directory_iterator("/proc", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        const auto name = it->path().filename().string();
        const auto digit = [](unsigned char c) { return std::isdigit(c) != 0; };
        if (name.empty() || !std::all_of(name.begin(), name.end(), digit)) {
            continue;
        }
        const auto argv = proc_strings(it->path() / "cmdline");
        if (argv.size() < 2 || fs::path(argv[0]).filename() != "dragonx-ddict" ||
            argv[1] != "manager") {
            continue;
        }
        const auto env = proc_strings(it->path() / "environ");
        const auto has = [&](const std::string& s) {
            return std::find(env.begin(), env.end(), s) != env.end();
        };
        if (has("DRAGONX_RUN=" + run) && has("DRAGONX_NODE=" + std::to_string(node))) {
            return static_cast<pid_t>(std::stol(name));
        }
    }
    return -1;
}

// ---- the dictionary -----------------------------------------------------------------------------

/// The environment variable naming the file where the head writes its run id, for the
/// driver's /dev/shm check.
constexpr const char* run_file_env = "DDICT_BENCH_RUN_FILE";

void tell_driver(const std::string& run)
{
    if (const char* path = std::getenv(run_file_env); path != nullptr) {
        std::ofstream(path) << run;
    }
}

/// Owns a dictionary this process created: destroys it at the end of scope, errors included.
class owned_dict {
public:
    explicit owned_dict(const dragonx::ddict_options& o) : d_(bench_dict::create(o)) {}
    owned_dict(const owned_dict&) = delete;
    owned_dict& operator=(const owned_dict&) = delete;
    ~owned_dict()
    {
        try {
            destroy();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "ddict_bench: destroying a dictionary: %s\n", e.what());
        }
    }
    bench_dict& operator*() { return *d_; }
    bench_dict* operator->() { return &*d_; }
    /// Destroys it now (once: a failed destroy is not retried).
    void destroy()
    {
        if (d_) {
            auto d = std::move(*d_);
            d_.reset();
            d.destroy();
        }
    }

private:
    std::optional<bench_dict> d_;
};

/// One manager on `node` (and vCPU `cpu` when there is one), `total_mem` bytes.
dragonx::ddict_options on_node(std::uint32_t node, std::uint64_t total_mem,
                               std::optional<int> cpu = std::nullopt)
{
    dragonx::ddict_options o;
    o.policies = {dragonx::policy{.placement_kind = dragonx::placement::host_id,
                                  .host_id = node}};
    if (cpu) {
        o.policies[0].cpu_affinity = std::vector<int>{*cpu};
    }
    o.managers_per_policy = 1;
    o.total_mem = total_mem;
    return o;
}

/// Writes `key` into the first bytes of `value`, so that a get can check it has the right one.
void stamp(dragonx::bytes& value, std::uint64_t key)
{
    std::memcpy(value.data(), &key, std::min(sizeof key, value.size()));
}

void check_value(const dragonx::bytes& value, std::uint64_t key, std::size_t size)
{
    std::uint64_t held = 0;
    const auto n = std::min(sizeof held, value.size());
    std::memcpy(&held, value.data(), n);
    std::uint64_t want = 0;
    std::memcpy(&want, &key, n);
    if (value.size() != size || held != want) {
        fail("get of key " + std::to_string(key) + " returned a wrong value (" +
             std::to_string(value.size()) + " bytes)");
    }
}

using op_figures = dragonx::bench::rate_latency;
using dragonx::bench::median_of;

/// Runs op(i) for i in [0, count), timing each one; ops/s over the whole loop.
template <class Op>
op_figures timed_ops(std::uint64_t count, placement_probe& probe, Op&& op)
{
    std::vector<double> latency_us(count);
    const auto t0 = clock_type::now();
    auto previous = t0;
    auto sampled = t0 - 1s;
    for (std::uint64_t i = 0; i < count; ++i) {
        op(i);
        auto t = clock_type::now();
        latency_us[i] = std::chrono::duration<double, std::micro>(t - previous).count();
        if (t - sampled >= 1ms) {
            probe.sample();  // not in the next operation's time
            sampled = t;
            t = clock_type::now();
        }
        previous = t;
    }
    return {static_cast<double>(count) / seconds_between(t0, previous),
            dragonx::bench::percentile(latency_us, 0.5),
            dragonx::bench::percentile(latency_us, 0.99)};
}

struct put_get {
    op_figures put;
    op_figures get;
    op_figures get_view;  // raw client gets: the value viewed in its reply, not copied out
};

/// `reps` times: clear, put `count` keys of `size`-byte values, get them back (checked), and
/// again through the raw client when `views`.
put_get measure_put_get(bench_dict& d, std::size_t size, std::uint64_t count, int reps,
                        placement_probe& probe, bool views = false)
{
    dragonx::bytes value(size, std::byte{0x5a});
    const auto warmup = std::min<std::uint64_t>(count, 200);
    for (std::uint64_t i = 0; i < warmup; ++i) {
        stamp(value, i);
        d.put(i, value);
        check_value(d.get(i), i, size);
    }
    std::vector<op_figures> puts;
    std::vector<op_figures> gets;
    std::vector<op_figures> viewed;
    for (int r = 0; r < reps; ++r) {
        d.clear();
        puts.push_back(timed_ops(count, probe, [&](std::uint64_t i) {
            stamp(value, i);
            d.put(i, value);
        }));
        gets.push_back(
            timed_ops(count, probe, [&](std::uint64_t i) { check_value(d.get(i), i, size); }));
        if (!views) {
            continue;
        }
        viewed.push_back(timed_ops(count, probe, [&](std::uint64_t i) {
            const auto v = d.raw().get(dragonx::encode(i), d.default_timeout());
            // The encoded value: a LEB128 length, then the bytes.
            expect(v && v->bytes().size() > size, "raw get of key " + std::to_string(i));
            std::uint64_t held = 0;
            const auto n = std::min(sizeof held, size);
            std::memcpy(&held, v->bytes().data() + (v->bytes().size() - size), n);
            expect(std::memcmp(&held, &i, n) == 0, "raw get of key " + std::to_string(i));
        }));
    }
    expect(d.size() == count, "size after the puts");
    d.clear();
    return {median_of(puts), median_of(gets), median_of(viewed)};
}

/// `reps` times: clear, then `count` puts of `size`-byte values committed every `batch`;
/// the median ops/s.
double measure_batch_put(bench_dict& d, std::size_t size, std::uint64_t count,
                         std::uint64_t batch, int reps, placement_probe& probe)
{
    dragonx::bytes value(size, std::byte{0x3c});
    std::vector<double> rates;
    for (int r = 0; r < reps; ++r) {
        d.clear();
        const auto t0 = clock_type::now();
        for (std::uint64_t i = 0; i < count;) {
            auto b = d.start_batch();
            for (const auto end = std::min(count, i + batch); i < end; ++i) {
                stamp(value, i);
                b.put(i, value);
            }
            b.commit();
            probe.sample();
        }
        rates.push_back(static_cast<double>(count) / seconds_between(t0, clock_type::now()));
    }
    expect(d.size() == count, "size after the batched puts");
    check_value(d.get(0), 0, size);
    check_value(d.get(count - 1), count - 1, size);
    d.clear();
    return median(rates);
}

/// `n` attaches by descriptor (each detached, untimed); the median in ms.
double measure_attach(const std::string& descriptor, int n)
{
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
        const auto t0 = clock_type::now();
        auto e = bench_dict::attach(descriptor);
        ms.push_back(seconds_between(t0, clock_type::now()) * 1e3);
        e.detach();
    }
    return median(ms);
}

/// Per step, in µs (median over `reps`): the handle moves to the next checkpoint and puts an
/// 8-byte value there, so the manager advances its working set (size 2) and retires the
/// oldest; and, as the reference, the same put with no advance.
std::pair<double, double> measure_checkpoint_advance(std::uint32_t node, std::uint64_t steps,
                                                     int reps)
{
    auto o = on_node(node, std::uint64_t{64} << 20);
    o.working_set_size = 2;
    owned_dict d(o);
    dragonx::bytes value(8);
    std::vector<double> advance_us;
    std::vector<double> put_us;
    for (int r = 0; r < reps; ++r) {
        auto t0 = clock_type::now();
        for (std::uint64_t i = 0; i < steps; ++i) {
            d->checkpoint();
            d->put(0, value);
        }
        advance_us.push_back(seconds_between(t0, clock_type::now()) * 1e6 /
                             static_cast<double>(steps));
        t0 = clock_type::now();
        for (std::uint64_t i = 0; i < steps; ++i) {
            d->put(0, value);
        }
        put_us.push_back(seconds_between(t0, clock_type::now()) * 1e6 /
                         static_cast<double>(steps));
    }
    expect(d->checkpoint_id() == steps * static_cast<std::uint64_t>(reps),
           "the handle's checkpoint after the advances");
    return {median(advance_us), median(put_us)};
}

/// Seconds `command` (a shell line) took, or nullopt if it failed.
std::optional<double> timed_shell(const std::string& command)
{
    const auto t0 = clock_type::now();
    if (std::system(command.c_str()) != 0) {
        return std::nullopt;
    }
    return seconds_between(t0, clock_type::now());
}

struct persist_figures {
    double persist_gbps = 0;
    double restore_gbps = 0;
    std::optional<double> dd_write_gbps;  // dd bs=1M conv=fsync, same directory
    std::optional<double> dd_read_gbps;   // dd bs=1M of that file to /dev/null
    std::optional<double> dd_shm_gbps;    // ... and into a new file in /dev/shm (fresh pages)
};

/// persist() and restore() of one checkpoint of `mib` values of just under 1 MiB (an entry
/// fills a 1 MiB block) in a directory beside the working directory, with dd's write and read
/// of as many bytes to the same filesystem as the reference. Everything it writes is removed.
persist_figures measure_persistence(std::uint32_t node, std::uint64_t mib, int reps)
{
    const fs::path dir =
        fs::absolute(fs::path("ddict_bench_persist." + std::to_string(::getpid())));
    fs::create_directories(dir);
    struct remove_dir {
        fs::path path;
        ~remove_dir()
        {
            std::error_code ec;
            fs::remove_all(path, ec);
        }
    } cleanup{dir};
    constexpr std::size_t value_size = (std::size_t{1} << 20) - 128;
    const double bytes = static_cast<double>(mib) * static_cast<double>(value_size);

    auto o = on_node(node, (mib * 3 + 64) << 20);
    o.name = "bench" + std::to_string(::getpid());
    o.persister = dragonx::ddict_options::persister_kind::posix;
    o.persist_path = dir.string();
    o.persist_count = -1;
    o.timeout = std::chrono::minutes(5);
    owned_dict d(o);
    dragonx::bytes value(value_size);
    for (std::uint64_t k = 0; k < mib; ++k) {
        stamp(value, k);
        d->put(k, value);
    }
    persist_figures f;
    std::vector<double> persist_s;
    std::vector<double> restore_s;
    for (int r = 0; r < reps; ++r) {
        auto t0 = clock_type::now();
        d->persist();
        persist_s.push_back(seconds_between(t0, clock_type::now()));
        t0 = clock_type::now();
        d->restore(0);
        restore_s.push_back(seconds_between(t0, clock_type::now()));
    }
    check_value(d->get(mib - 1), mib - 1, value_size);
    f.persist_gbps = bytes / median(persist_s) / 1e9;
    f.restore_gbps = bytes / median(restore_s) / 1e9;
    d.destroy();

    const auto file = (dir / "dd.reference").string();
    const auto shm_copy = "/dev/shm/dragonx-bench-dd." + std::to_string(::getpid());
    std::vector<double> write_s;
    std::vector<double> read_s;
    std::vector<double> shm_s;
    for (int r = 0; r < reps; ++r) {
        const auto w = timed_shell("dd if=/dev/zero of=" + file + " bs=1M count=" +
                                   std::to_string(mib) + " conv=fsync status=none");
        const auto rd = timed_shell("dd if=" + file + " of=/dev/null bs=1M status=none");
        const auto sh = timed_shell("dd if=" + file + " of=" + shm_copy + " bs=1M status=none");
        std::error_code ec;
        fs::remove(shm_copy, ec);
        if (!w || !rd || !sh) {
            return f;
        }
        write_s.push_back(*w);
        read_s.push_back(*rd);
        shm_s.push_back(*sh);
    }
    const double dd_bytes = static_cast<double>(mib) * static_cast<double>(1 << 20);
    f.dd_write_gbps = dd_bytes / median(write_s) / 1e9;
    f.dd_read_gbps = dd_bytes / median(read_s) / 1e9;
    f.dd_shm_gbps = dd_bytes / median(shm_s) / 1e9;
    return f;
}

// ---- the standard suite (the head) --------------------------------------------------------------

/// Counts of the standard suite. The full suite stays under a minute on a loaded 2-vCPU VM
/// (same-vCPU operations there take ~30 µs, remote ones 100-400 µs).
struct suite_sizes {
    int reps;                        // repetitions of each DDict measurement
    std::uint64_t small_ops;         // 8-byte puts (then gets) per repetition, same node
    std::uint64_t pinned_ops;        // the same, pinned
    std::uint64_t remote_small_ops;  // the same, across nodes
    std::uint64_t batch_ops;         // 1 KiB batched puts per repetition
    std::uint64_t batch;             // puts per commit
    std::uint64_t big_ops;           // 1 MiB values per repetition, same node
    std::uint64_t remote_big_ops;
    int attaches;
    int creates;
    std::uint64_t checkpoint_steps;  // checkpoint advances timed per repetition
    std::uint64_t persist_mib;       // size of the persisted checkpoint
    std::chrono::milliseconds idle_ms;  // how long the idle manager is watched
    int redis_reps;
    std::uint64_t redis_small;      // redis-benchmark -n, 8-byte SET and GET, unpinned
    std::uint64_t redis_pinned;     // the same, pinned
    std::uint64_t redis_pipelined;  // -n with -P 16
    std::uint64_t redis_big;        // -n with 1 MiB values
};

constexpr suite_sizes full_sizes{.reps = 5,
                                 .small_ops = 10000,
                                 .pinned_ops = 3000,
                                 .remote_small_ops = 2000,
                                 .batch_ops = 50000,
                                 .batch = 1000,
                                 .big_ops = 32,
                                 .remote_big_ops = 16,
                                 .attaches = 20,
                                 .creates = 5,
                                 .checkpoint_steps = 20000,
                                 .persist_mib = 1024,
                                 .idle_ms = 1000ms,
                                 .redis_reps = 3,
                                 .redis_small = 10000,
                                 .redis_pinned = 5000,
                                 .redis_pipelined = 100000,
                                 .redis_big = 100};
constexpr suite_sizes quick_sizes{.reps = 3,
                                  .small_ops = 2000,
                                  .pinned_ops = 500,
                                  .remote_small_ops = 500,
                                  .batch_ops = 5000,
                                  .batch = 1000,
                                  .big_ops = 8,
                                  .remote_big_ops = 4,
                                  .attaches = 8,
                                  .creates = 3,
                                  .checkpoint_steps = 2000,
                                  .persist_mib = 64,
                                  .idle_ms = 300ms,
                                  .redis_reps = 1,
                                  .redis_small = 3000,
                                  .redis_pinned = 2000,
                                  .redis_pipelined = 30000,
                                  .redis_big = 20};

/// Redis -c 1 with 8-byte values.
struct redis_small {
    redis_row get;
    redis_row set;
};

/// The Redis figures the suite compares with.
struct redis_reference {
    redis_small unpinned;
    std::map<std::string, redis_small> pinned;  // by placement_choice::name
    double set_pipelined_ops = 0;               // -P 16, 8-byte values
    double set_pipelined_1k_ops = 0;            // -P 16, 1 KiB values (the batched put's)
    double get_1mib_gbps = 0;
    double set_1mib_gbps = 0;
};

std::optional<redis_reference> measure_redis(const suite_sizes& s, report& out)
{
    auto server = redis_server::start();
    if (!server) {
        return std::nullopt;
    }
    const int port = server->port();
    const auto n = [](std::uint64_t v) { return std::to_string(v); };
    const auto small_args = [&](std::uint64_t count) {
        return std::vector<std::string>{"-t", "set,get", "-n", n(count), "-d", "8",
                                        "-r", "100000",  "-c", "1"};
    };
    redis_reference r;
    auto small = redis_median(port, small_args(s.redis_small), s.redis_reps);
    r.unpinned = {small["GET"], small["SET"]};
    r.set_pipelined_ops = redis_median(port, {"-t", "set", "-n", n(s.redis_pipelined), "-d", "8",
                                              "-r", "100000", "-c", "1", "-P", "16"},
                                       s.redis_reps)["SET"]
                              .per_s;
    r.set_pipelined_1k_ops =
        redis_median(port, {"-t", "set", "-n", n(s.redis_pipelined), "-d", "1024", "-r",
                            "100000", "-c", "1", "-P", "16"},
                     s.redis_reps)["SET"]
            .per_s;
    // -r 16: the GETs find the keys the SETs wrote (a miss would send no value back).
    auto big = redis_median(port, {"-t", "set,get", "-n", n(s.redis_big), "-d",
                                   std::to_string(big_value), "-r", "16", "-c", "1"},
                            s.redis_reps);
    r.get_1mib_gbps = big["GET"].per_s * static_cast<double>(big_value) / 1e9;
    r.set_1mib_gbps = big["SET"].per_s * static_cast<double>(big_value) / 1e9;
    // Pinned like the pinned DDict figures: redis-benchmark inherits the head's mask.
    for (const auto& where : dragonx::bench::pinned_placements()) {
        dragonx::bench::set_affinity(server->pid(), where.server_cpu);
        const pinned head(where.client_cpu);
        auto placed = redis_median(port, small_args(s.redis_pinned), s.redis_reps);
        r.pinned[where.name] = {placed["GET"], placed["SET"]};
    }
    server->stop();

    out.note("", "reference: redis-benchmark -c 1 against a private redis-server");
    out.figure("redis_get_8b_ops_per_s", r.unpinned.get.per_s, "ops/s");
    out.figure("redis_get_8b_p50_us", r.unpinned.get.p50_us, "us");
    out.figure("redis_get_8b_p99_us", r.unpinned.get.p99_us, "us");
    out.figure("redis_set_8b_ops_per_s", r.unpinned.set.per_s, "ops/s");
    out.figure("redis_set_8b_p50_us", r.unpinned.set.p50_us, "us");
    for (const auto& [where, f] : r.pinned) {
        out.figure("redis_" + where + "_get_8b_ops_per_s", f.get.per_s, "ops/s");
        out.figure("redis_" + where + "_get_8b_p50_us", f.get.p50_us, "us");
        out.figure("redis_" + where + "_set_8b_ops_per_s", f.set.per_s, "ops/s");
    }
    out.figure("redis_set_pipelined_ops_per_s", r.set_pipelined_ops, "ops/s");
    out.figure("redis_set_pipelined_1k_ops_per_s", r.set_pipelined_1k_ops, "ops/s");
    out.figure("redis_get_1mib_gbps", r.get_1mib_gbps, "GB/s");
    out.figure("redis_set_1mib_gbps", r.set_1mib_gbps, "GB/s");
    return r;
}

int suite(const bench_options& o)
{
    auto& rt = dragonx::runtime::current();
    const auto& s = o.quick ? quick_sizes : full_sizes;
    report out(o.json);
    const auto suite_t0 = clock_type::now();
    tell_driver(rt.run_id());
    out.note("", "ddict_bench: run " + rt.run_id() + ", " + std::to_string(rt.nnodes()) +
                     " node(s), head on node " + std::to_string(rt.node()) +
                     (o.quick ? ", quick" : ""));

    std::optional<redis_reference> redis;
    if (o.redis.value_or(true)) {
        redis = measure_redis(s, out);
    }
    const auto ref = [&](auto field) -> std::optional<double> {
        return redis ? std::optional<double>(field(*redis)) : std::nullopt;
    };
    const auto mib_gbps = [](double ops) { return ops * static_cast<double>(big_value) / 1e9; };

    // Same node: 1 manager next to the head. 1 MiB values take 2 MiB blocks.
    {
        owned_dict d(on_node(rt.node(), std::uint64_t{1} << 30));
        expect(d->manager_nodes().at(0) == rt.node(), "the manager is not on the head's node");
        const pid_t manager = find_manager(rt.run_id(), rt.node());
        out.figure("manager_idle_busy_pct",
                   dragonx::bench::idle_busy_percent(manager, s.idle_ms), "%");

        placement_probe small_probe(manager);
        const auto small = measure_put_get(*d, 8, s.small_ops, s.reps, small_probe);
        out.figure("get_8b_p50_us", small.get.p50_us, "us", "redis GET p50",
                   ref([](auto& r) { return r.unpinned.get.p50_us; }), "get_8b_p50_vs_redis");
        out.figure("get_8b_p99_us", small.get.p99_us, "us", "redis GET p99",
                   ref([](auto& r) { return r.unpinned.get.p99_us; }), "get_8b_p99_vs_redis");
        out.figure("get_8b_ops_per_s", small.get.per_s, "ops/s", "redis GET",
                   ref([](auto& r) { return r.unpinned.get.per_s; }), "get_8b_vs_redis");
        out.figure("put_8b_ops_per_s", small.put.per_s, "ops/s", "redis SET",
                   ref([](auto& r) { return r.unpinned.set.per_s; }), "put_8b_vs_redis");
        out.figure("put_8b_p50_us", small.put.p50_us, "us", "redis SET p50",
                   ref([](auto& r) { return r.unpinned.set.p50_us; }), "put_8b_p50_vs_redis");
        out.figure("put_8b_p99_us", small.put.p99_us, "us");
        out.placement("8b", small_probe.describe());

        placement_probe batch_probe(manager);
        const double batch = measure_batch_put(*d, 1024, s.batch_ops, s.batch, s.reps,
                                               batch_probe);
        out.figure("batch_put_1k_ops_per_s", batch, "ops/s", "redis SET -P 16 1KiB",
                   ref([](auto& r) { return r.set_pipelined_1k_ops; }), "batch_put_1k_vs_redis");
        out.placement("batch", batch_probe.describe());

        placement_probe big_probe(manager);
        const auto big = measure_put_get(*d, big_value, s.big_ops, s.reps, big_probe, true);
        out.figure("get_1mib_gbps", mib_gbps(big.get.per_s), "GB/s", "redis GET 1MiB",
                   ref([](auto& r) { return r.get_1mib_gbps; }), "get_1mib_vs_redis");
        out.figure("put_1mib_gbps", mib_gbps(big.put.per_s), "GB/s", "redis SET 1MiB",
                   ref([](auto& r) { return r.set_1mib_gbps; }), "put_1mib_vs_redis");
        out.figure("get_1mib_view_gbps", mib_gbps(big.get_view.per_s), "GB/s");
        out.placement("1mib", big_probe.describe());

        out.figure("attach_ms", measure_attach(d->serialize(), s.attaches), "ms");
        d.destroy();
    }
    {
        std::vector<double> create_ms;
        std::vector<double> destroy_ms;
        for (int i = 0; i < s.creates; ++i) {
            const auto t0 = clock_type::now();
            owned_dict d(on_node(rt.node(), std::uint64_t{256} << 20));
            const auto t1 = clock_type::now();
            d.destroy();
            create_ms.push_back(seconds_between(t0, t1) * 1e3);
            destroy_ms.push_back(seconds_between(t1, clock_type::now()) * 1e3);
        }
        out.figure("create_ms", median(create_ms), "ms");
        out.figure("destroy_ms", median(destroy_ms), "ms");
    }

    // Checkpoints: advancing the working set, and persisting and restoring a checkpoint.
    {
        const auto [advance_us, put_us] =
            measure_checkpoint_advance(rt.node(), s.checkpoint_steps, s.reps);
        out.figure("checkpoint_advance_us", advance_us, "us", "the same put, no advance",
                   put_us, "checkpoint_advance_vs_put");
        const auto p = measure_persistence(rt.node(), s.persist_mib, o.quick ? 1 : 3);
        out.note("", "persist/restore: one checkpoint of " + std::to_string(s.persist_mib) +
                         " MiB in ./ddict_bench_persist.*; reference dd bs=1M (conv=fsync "
                         "for the write) of as many bytes there");
        out.figure("persist_gbps", p.persist_gbps, "GB/s", "dd write conv=fsync",
                   p.dd_write_gbps, "persist_vs_dd");
        out.figure("restore_gbps", p.restore_gbps, "GB/s", "dd read", p.dd_read_gbps,
                   "restore_vs_dd");
        if (p.dd_shm_gbps) {
            out.figure("dd_file_to_shm_gbps", *p.dd_shm_gbps, "GB/s", "restore",
                       p.restore_gbps, "dd_file_to_shm_vs_restore");
        }
    }

    // Pinned: the head and its manager on one vCPU, then on two.
    for (const auto& where : dragonx::bench::pinned_placements()) {
        owned_dict d(on_node(rt.node(), std::uint64_t{256} << 20, where.server_cpu));
        const pinned head(where.client_cpu);
        placement_probe probe(find_manager(rt.run_id(), rt.node()));
        const auto small = measure_put_get(*d, 8, s.pinned_ops, s.reps, probe);
        const std::string name = where.name;
        const auto placed = [&](auto field) -> std::optional<double> {
            if (!redis || redis->pinned.count(name) == 0) {
                return std::nullopt;
            }
            return field(redis->pinned.at(name));
        };
        out.figure(name + "_get_8b_p50_us", small.get.p50_us, "us", "redis GET p50",
                   placed([](auto& r) { return r.get.p50_us; }), name + "_get_8b_p50_vs_redis");
        out.figure(name + "_get_8b_p99_us", small.get.p99_us, "us");
        out.figure(name + "_get_8b_ops_per_s", small.get.per_s, "ops/s", "redis GET",
                   placed([](auto& r) { return r.get.per_s; }), name + "_get_8b_vs_redis");
        out.figure(name + "_put_8b_ops_per_s", small.put.per_s, "ops/s", "redis SET",
                   placed([](auto& r) { return r.set.per_s; }), name + "_put_8b_vs_redis");
        out.placement(name, probe.describe());
        d.destroy();
    }

    // Across nodes: the head here, the manager on the next node, through the transport agents.
    if (rt.nnodes() < 2) {
        out.note("", "remote_*: skipped, the run has 1 node (--num_nodes 2 or more)");
    } else {
        const auto node = (rt.node() + 1) % rt.nnodes();
        owned_dict d(on_node(node, std::uint64_t{1} << 30));
        expect(d->manager_nodes().at(0) == node, "the remote manager is not on node " +
                                                     std::to_string(node));
        placement_probe probe(find_manager(rt.run_id(), node));
        const auto small = measure_put_get(*d, 8, s.remote_small_ops, s.reps, probe);
        out.figure("remote_get_8b_p50_us", small.get.p50_us, "us", "redis GET p50",
                   ref([](auto& r) { return r.unpinned.get.p50_us; }),
                   "remote_get_8b_p50_vs_redis");
        out.figure("remote_get_8b_p99_us", small.get.p99_us, "us");
        out.figure("remote_get_8b_ops_per_s", small.get.per_s, "ops/s", "redis GET",
                   ref([](auto& r) { return r.unpinned.get.per_s; }), "remote_get_8b_vs_redis");
        out.figure("remote_put_8b_ops_per_s", small.put.per_s, "ops/s", "redis SET",
                   ref([](auto& r) { return r.unpinned.set.per_s; }), "remote_put_8b_vs_redis");
        out.figure("remote_put_8b_p50_us", small.put.p50_us, "us");
        const auto big = measure_put_get(*d, big_value, s.remote_big_ops, s.reps, probe);
        out.figure("remote_get_1mib_gbps", mib_gbps(big.get.per_s), "GB/s",
                   "redis GET 1MiB", ref([](auto& r) { return r.get_1mib_gbps; }),
                   "remote_get_1mib_vs_redis");
        out.figure("remote_put_1mib_gbps", mib_gbps(big.put.per_s), "GB/s",
                   "redis SET 1MiB", ref([](auto& r) { return r.set_1mib_gbps; }),
                   "remote_put_1mib_vs_redis");
        out.placement("remote", probe.describe());
        d.destroy();
    }
    out.figure("suite_s", seconds_between(suite_t0, clock_type::now()), "s");
    out.print_json();
    return 0;
}

// ---- one workload: the head and its clients -----------------------------------------------------

enum class phase : int { put = 0, get = 1, del = 3 };

const char* phase_name(phase p)
{
    return p == phase::put ? "put" : p == phase::get ? "get" : "delete";
}

std::vector<phase> phases_of(int dict_ops)
{
    switch (dict_ops) {
    case 0:
        return {phase::put};
    case 1:
        return {phase::get};
    case 2:
        return {phase::put, phase::get};
    default:
        return {phase::del};
    }
}

/// The key under which client `c` leaves its record of phase `p`, iteration `it`: start and
/// end (steady clock, ns), then the latency of each operation (or batch) in µs.
std::string record_key(phase p, std::uint32_t it, std::uint32_t c)
{
    return "bench/record/" + std::to_string(static_cast<int>(p)) + "/" + std::to_string(it) +
           "/" + std::to_string(c);
}

double now_ns()
{
    return static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
            .count());
}

/// What the head tells each client on its command line.
struct client_args {
    std::string descriptor;
    std::uint32_t index = 0;
    std::uint32_t clients = 1;
    std::uint64_t dict_size = 0;
    std::uint64_t value_size = 0;
    std::uint32_t iterations = 1;
    int dict_ops = 0;
    std::uint64_t batch_size = 0;

    [[nodiscard]] std::vector<std::string> to_argv() const
    {
        return {"--client",
                descriptor,
                std::to_string(index),
                std::to_string(clients),
                std::to_string(dict_size),
                std::to_string(value_size),
                std::to_string(iterations),
                std::to_string(dict_ops),
                std::to_string(batch_size)};
    }
    static client_args from_argv(int argc, char** argv)
    {
        expect(argc == 10, "client role: wrong arguments");
        client_args a;
        a.descriptor = argv[2];
        a.index = static_cast<std::uint32_t>(std::stoul(argv[3]));
        a.clients = static_cast<std::uint32_t>(std::stoul(argv[4]));
        a.dict_size = std::stoull(argv[5]);
        a.value_size = std::stoull(argv[6]);
        a.iterations = static_cast<std::uint32_t>(std::stoul(argv[7]));
        a.dict_ops = std::stoi(argv[8]);
        a.batch_size = std::stoull(argv[9]);
        return a;
    }
};

/// Waits until all `clients` have reached barrier `name` (a fetch_add counter in the dict).
void barrier(counter_dict& counters, const std::string& name, std::uint32_t clients)
{
    counters.fetch_add(name, 1);
    const auto until = clock_type::now() + 120s;
    while (counters.get(name) < static_cast<std::int64_t>(clients)) {
        expect(clock_type::now() < until, "barrier " + name + ": the other clients never came");
        std::this_thread::sleep_for(100us);
    }
}

/// A client process: attaches, runs every phase `iterations` times on its own keys
/// (index * dict_size + i), between barriers, and leaves a record of each in the dictionary.
int client_main(int argc, char** argv)
{
    const auto a = client_args::from_argv(argc, argv);
    auto d = bench_dict::attach(a.descriptor);
    auto counters = counter_dict::attach(a.descriptor);
    auto records = result_dict::attach(a.descriptor);
    const std::uint64_t base = a.index * a.dict_size;
    dragonx::bytes value(a.value_size, std::byte{0x77});
    const auto put_all = [&] {
        for (std::uint64_t i = 0; i < a.dict_size; ++i) {
            stamp(value, base + i);
            d.put(base + i, value);
        }
    };
    bool stored = false;
    for (const auto p : phases_of(a.dict_ops)) {
        for (std::uint32_t it = 0; it < a.iterations; ++it) {
            if (p != phase::put && !stored) {
                put_all();  // what the gets read and the deletes remove: untimed
                stored = true;
            }
            barrier(counters,
                    "bench/barrier/" + std::to_string(static_cast<int>(p)) + "/" +
                        std::to_string(it),
                    a.clients);
            std::vector<double> record = {now_ns(), 0};
            record.reserve(a.dict_size + 2);
            auto previous = clock_type::now();
            const auto lap = [&] {
                const auto t = clock_type::now();
                record.push_back(std::chrono::duration<double, std::micro>(t - previous).count());
                previous = t;
            };
            if (p == phase::put && a.batch_size > 1) {
                for (std::uint64_t i = 0; i < a.dict_size;) {
                    auto b = d.start_batch();
                    for (const auto end = std::min(a.dict_size, i + a.batch_size); i < end; ++i) {
                        stamp(value, base + i);
                        b.put(base + i, value);
                    }
                    b.commit();
                    lap();
                }
            } else {
                for (std::uint64_t i = 0; i < a.dict_size; ++i) {
                    const auto k = base + i;
                    if (p == phase::put) {
                        stamp(value, k);
                        d.put(k, value);
                    } else if (p == phase::get) {
                        check_value(d.get(k), k, a.value_size);
                    } else {
                        check_value(d.pop(k), k, a.value_size);
                    }
                    lap();
                }
            }
            record[1] = now_ns();
            stored = p != phase::del;
            records.put(record_key(p, it, a.index), record);
        }
    }
    records.detach();
    counters.detach();
    d.detach();
    return 0;
}

/// Kills the processes it holds that still run when it goes out of scope.
struct client_group {
    std::vector<dragonx::process> procs;
    ~client_group()
    {
        for (auto& p : procs) {
            try {
                if (p.alive()) {
                    p.kill();
                    (void)p.join(10s);
                }
            } catch (const std::exception&) {
            }
        }
    }
};

/// Enough memory for the workload: its entries twice over (puts replace entries), its records,
/// and at least 256 MiB, with every manager's share above two of the largest entries.
std::uint64_t workload_memory(const bench_options& o, std::uint32_t managers)
{
    const auto entry = std::bit_ceil(o.value_size + 96);
    const auto record = std::bit_ceil((o.dict_size + 2) * sizeof(double) + 128);
    const auto data = o.clients * o.dict_size * entry;
    const auto records = std::uint64_t{o.clients} * o.iterations * 2 * record;
    const auto need = static_cast<std::uint64_t>(2.5 * static_cast<double>(data + records));
    const auto floor = std::uint64_t{managers} * 4 * std::max(entry, record);
    return std::max({need, floor, std::uint64_t{256} << 20});
}

int workload(const bench_options& o)
{
    auto& rt = dragonx::runtime::current();
    tell_driver(rt.run_id());
    report out(o.json);
    dragonx::ddict_options opt;
    opt.managers_per_node = o.managers_per_node;
    opt.n_nodes = rt.nnodes();
    const auto managers = o.managers_per_node * rt.nnodes();
    opt.total_mem = o.total_mem_size != 0 ? o.total_mem_size : workload_memory(o, managers);
    opt.timeout = 60s;
    const bool batched = o.batch_size > 1;
    char line[256];
    std::snprintf(line, sizeof line,
                  "ddict_bench workload: %u client(s) on %u node(s), %u manager(s), %llu keys "
                  "of %llu B per client, total_mem %llu MiB, %u iteration(s)%s",
                  o.clients, rt.nnodes(), managers, static_cast<unsigned long long>(o.dict_size),
                  static_cast<unsigned long long>(o.value_size),
                  static_cast<unsigned long long>(opt.total_mem >> 20), o.iterations,
                  batched ? (", batches of " + std::to_string(o.batch_size)).c_str() : "");
    out.note("workload", line);

    std::map<phase, op_figures> figures;
    {
        owned_dict d(opt);
        const auto desc = d->serialize();
        client_group group;
        for (std::uint32_t c = 0; c < o.clients; ++c) {
            client_args a{desc, c, o.clients, o.dict_size, o.value_size, o.iterations,
                          o.dict_ops, o.batch_size};
            dragonx::process_template t;
            t.exe = self_path();
            t.args = a.to_argv();
            t.where = dragonx::policy{.placement_kind = dragonx::placement::host_id,
                                      .host_id = c % rt.nnodes()};
            group.procs.push_back(dragonx::process::start(t));
        }
        for (std::uint32_t c = 0; c < o.clients; ++c) {
            const auto code = group.procs[c].join();
            expect(code && *code == 0, "client " + std::to_string(c) + " failed (exit " +
                                           std::to_string(code.value_or(-1)) + ")");
        }
        auto records = result_dict::attach(desc);
        for (const auto p : phases_of(o.dict_ops)) {
            std::vector<double> rates;
            std::vector<double> latency_us;
            for (std::uint32_t it = 0; it < o.iterations; ++it) {
                double start = 0;
                double end = 0;
                for (std::uint32_t c = 0; c < o.clients; ++c) {
                    const auto r = records.get(record_key(p, it, c));
                    expect(r.size() >= 2, "a short record");
                    start = c == 0 ? r[0] : std::min(start, r[0]);
                    end = std::max(end, r[1]);
                    latency_us.insert(latency_us.end(), r.begin() + 2, r.end());
                }
                rates.push_back(static_cast<double>(o.clients * o.dict_size) /
                                ((end - start) / 1e9));
            }
            figures[p] = {median(rates), dragonx::bench::percentile(latency_us, 0.5),
                          dragonx::bench::percentile(latency_us, 0.99)};
        }
        records.detach();
        d.destroy();
    }

    std::map<std::string, redis_row> redis;
    if (o.redis.value_or(false)) {
        if (auto server = redis_server::start()) {
            std::vector<std::string> args = {
                "-t", "set,get", "-n", std::to_string(o.clients * o.dict_size), "-d",
                std::to_string(o.value_size), "-r", std::to_string(o.clients * o.dict_size),
                "-c", std::to_string(o.clients)};
            if (batched) {
                args.insert(args.end(), {"-P", std::to_string(std::min<std::uint64_t>(
                                                   o.batch_size, 1000))});
            }
            redis = redis_median(server->port(), args, 3);
            server->stop();
        }
    }
    for (const auto& [p, f] : figures) {
        const std::string name = phase_name(p);
        const std::string test = p == phase::put ? "SET" : p == phase::get ? "GET" : "";
        const auto r = redis.find(test);
        const auto lat = p == phase::put && batched ? "_batch" : "";
        out.figure(name + "_ops_per_s", f.per_s, "ops/s", "redis " + test,
                   r != redis.end() ? std::optional<double>(r->second.per_s) : std::nullopt,
                   name + "_vs_redis");
        out.figure(name + "_gbps",
                   f.per_s * static_cast<double>(o.value_size) / 1e9, "GB/s");
        out.figure(name + lat + "_p50_us", f.p50_us, "us", "redis " + test + " p50",
                   r != redis.end() && !batched ? std::optional<double>(r->second.p50_us)
                                                : std::nullopt,
                   name + "_p50_vs_redis");
        out.figure(name + lat + "_p99_us", f.p99_us, "us");
    }
    out.print_json();
    return 0;
}

// ---- outside a run: the driver ------------------------------------------------------------------

std::set<std::string> shm_entries()
{
    std::set<std::string> names;
    std::error_code ec;
    for (auto it = fs::directory_iterator("/dev/shm", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        names.insert(it->path().filename().string());
    }
    return names;
}

/// Runs this program, with the same arguments, as the head of `dragonx run`; its exit status.
int drive(int argc, char** argv, const bench_options& o)
{
    const auto nodes = o.num_nodes.value_or(o.workload ? 1 : 2);
    std::vector<std::string> args = {dragonx::bench::launcher_path(self_path().c_str()),
                                     "run"};
    if (nodes > 1) {
        args.insert(args.end(), {"--wlm", "local", "-N", std::to_string(nodes)});
    }
    args.insert(args.end(), {"-t", "tcp", self_path()});
    args.insert(args.end(), argv + 1, argv + argc);
    const auto run_file = fs::temp_directory_path() /
                          ("ddict_bench." + std::to_string(::getpid()) + ".run");
    ::setenv(run_file_env, run_file.c_str(), 1);
    const auto before = shm_entries();
    const auto t0 = clock_type::now();
    const pid_t pid = dragonx::bench::spawn(args, false);
    // The run gets ^C itself and tears down; wait for it.
    ::signal(SIGINT, SIG_IGN);
    const int code = dragonx::bench::wait_for(pid);
    std::string run;
    std::getline(std::ifstream(run_file), run);
    std::error_code ec;
    fs::remove(run_file, ec);
    // Names of this run's objects start with dragonx-RUN- (another run may be going on).
    const std::string prefix = run.empty() ? "" : "dragonx-" + run + "-";
    std::string left;
    for (const auto& name : shm_entries()) {
        if (before.count(name) == 0 && name.compare(0, prefix.size(), prefix) == 0) {
            left += " " + name;
        }
    }
    if (!left.empty()) {
        std::fprintf(stderr, "ddict_bench: left in /dev/shm after the run%s:%s\n",
                     run.empty() ? " (this run's or another's)" : "", left.c_str());
    }
    std::fprintf(stderr, "ddict_bench: dragonx run took %.1f s, exit %d\n",
                 seconds_between(t0, clock_type::now()), code);
    return code;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        if (argc > 1 && std::string_view(argv[1]) == "--client") {
            return client_main(argc, argv);
        }
        const auto opts = parse_options(argc, argv);
        if (std::getenv("DRAGONX_RUN") == nullptr) {
            return drive(argc, argv, opts);
        }
        return opts.workload ? workload(opts) : suite(opts);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ddict_bench: %s\n", e.what());
        return 1;
    }
}
