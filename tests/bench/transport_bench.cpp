// transport_bench.cpp - channels between two virtual nodes (`dragonx run --wlm local -N 2`),
// through the transport agents, for each transport; libfabric's fi_pingpong over the same
// loopback as the reference, measured in the same run.
//
//   remote_oneway_p50_us   8-byte ping-pong between a process on node 0 and one on node 1,
//                          each sending into the other's channel: half the round trip, p50
//   remote_send_8b_per_s   8-byte messages sent by node 0 into a channel of node 1, back to
//                          back (each send returns when node 1 has it), until the receiver
//                          has them all: the rate of a stream that nothing answers
//   remote_bw_1mib_gbps    1 MiB messages sent by node 0 into a channel of node 1, back to
//                          back, until the receiver has them all (GB/s = 1e9 bytes/s)
//   fi_pingpong_*          the same two figures from `fi_pingpong -p tcp -e rdm` (libfabric-bin)
//
// Targets (DESIGN.md §11, issue 5): one-way p50 ≤ 15 µs, bandwidth ≥ 2 GB/s.
//
// The program is its own head: `dragonx run ... transport_bench --head ITERS COUNT` prints
// "head P50_US P90_US SENDS_PER_S GBPS", and starts `transport_bench --echo DESC` on node 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "fi_pingpong.hpp"
#include "harness.hpp"
#include "subprocess.hpp"

namespace {

using namespace std::chrono_literals;
using dragonx::channels::channel;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t big_message = 1 << 20;

// ---- inside the run ---------------------------------------------------------------------------

// Node 1: owns channel B; echoes every small message from B into A (node 0's channel); after
// the ping-pong, takes as many small messages again and acknowledges the last one, then the
// same for the 1 MiB messages.
int echo(const std::string& a_desc, int iters, int count)
{
    auto pool = dragonx::pool::pool::create({.size = 64 << 20});
    auto b = channel::create(pool, {.capacity = 16, .block_size = 64});
    dragonx::runtime::current().kv_put("bench_b", b.descriptor());
    auto a = channel::attach(a_desc);
    std::byte small[64];
    for (int i = 0; i < iters; ++i) {
        const auto n = b.recv(small, 30s);
        a.send(std::span<const std::byte>(small, n), 30s);
    }
    for (int i = 0; i < iters; ++i) {
        (void)b.recv(small, 30s);
    }
    a.send(dragonx::as_bytes("done"), 30s);
    std::vector<std::byte> scratch(64);
    for (int i = 0; i < count; ++i) {
        auto m = b.take(scratch, 60s);
        dragonx::bench::escape(const_cast<std::byte*>(m.bytes().data()));
    }
    a.send(dragonx::as_bytes("done"), 30s);
    return 0;
}

int head(int iters, int count)
{
    auto& rt = dragonx::runtime::current();
    auto pool = dragonx::pool::pool::create({.size = 4 << 20});
    auto a = channel::create(pool, {.capacity = 16, .block_size = 64});
    dragonx::policy on_node1;
    on_node1.placement_kind = dragonx::placement::host_id;
    on_node1.host_id = 1;
    const auto self = std::filesystem::canonical("/proc/self/exe").string();
    auto child = dragonx::process::start(
        {.exe = self,
         .args = {"--echo", a.descriptor(), std::to_string(iters), std::to_string(count)},
         .where = on_node1});
    auto b = channel::attach(rt.kv_get("bench_b", 30s));

    const auto ping = dragonx::as_bytes("01234567");
    std::byte buf[64];
    std::vector<double> half_rtt_us;
    const int warmup = iters / 10;
    for (int i = 0; i < iters; ++i) {
        const auto t0 = clock_type::now();
        b.send(ping, 30s);
        (void)a.recv(buf, 30s);
        if (i >= warmup) {
            half_rtt_us.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / 2);
        }
    }

    const auto stream_start = clock_type::now();
    for (int i = 0; i < iters; ++i) {
        b.send(ping, 30s);
    }
    (void)a.recv(buf, 30s);
    const double stream_secs =
        std::chrono::duration<double>(clock_type::now() - stream_start).count();

    std::vector<std::byte> message(big_message, std::byte{0x5a});
    const auto t0 = clock_type::now();
    for (int i = 0; i < count; ++i) {
        b.send(message, 60s);
    }
    (void)a.recv(buf, 60s);
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    const auto code = child.join(30s);
    if (!code || *code != 0) {
        std::fprintf(stderr, "transport_bench: the echo process failed\n");
        return 1;
    }
    std::printf("head %.2f %.2f %.0f %.3f\n", dragonx::bench::percentile(half_rtt_us, 0.5),
                dragonx::bench::percentile(half_rtt_us, 0.9), iters / stream_secs,
                static_cast<double>(count) * big_message / secs / 1e9);
    return 0;
}

// ---- outside: the driver ----------------------------------------------------------------------

struct figures {
    double p50_us = 0;
    double p90_us = 0;
    double sends_per_s = 0;
    double gbps = 0;
};

std::optional<figures> measure(const std::string& dragonx_exe, const std::string& transport,
                               int iters, int count)
{
    const auto self = std::filesystem::canonical("/proc/self/exe").string();
    std::vector<std::string> args = {dragonx_exe, "run", "--wlm", "local", "-N", "2"};
    if (!transport.empty()) {
        args.insert(args.end(), {"-t", transport});
    }
    args.insert(args.end(), {self, "--head", std::to_string(iters), std::to_string(count)});
    int code = 0;
    const auto out = dragonx::bench::capture(args, code);
    figures f;
    if (code != 0 || std::sscanf(out.c_str(), "head %lf %lf %lf %lf", &f.p50_us, &f.p90_us,
                                 &f.sends_per_s, &f.gbps) != 4) {
        std::fprintf(stderr, "transport_bench: the %s run failed (exit %d): %s\n",
                     transport.empty() ? "default" : transport.c_str(), code, out.c_str());
        return std::nullopt;
    }
    return f;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc == 4 && std::string(argv[1]) == "--head") {
        return head(std::atoi(argv[2]), std::atoi(argv[3]));
    }
    if (argc == 5 && std::string(argv[1]) == "--echo") {
        return echo(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
    }
    const auto opts = dragonx::bench::parse_options(argc, argv, "transport_bench");
    const auto dragonx_exe = dragonx::bench::launcher_path(argv[0]);
    const int iters = opts.quick ? 500 : 5000;
    const int count = opts.quick ? 50 : 500;

    std::vector<std::pair<std::string, figures>> results;
    for (const std::string transport : {"tcp", "ofi"}) {
        if (const auto f = measure(dragonx_exe, transport, iters, count)) {
            results.emplace_back(transport, *f);
        }
    }
    const auto ref_small = dragonx::bench::fi_pingpong(8, opts.quick ? 1000 : 10000);
    const auto ref_big = dragonx::bench::fi_pingpong(big_message, opts.quick ? 100 : 1000);
    const double ref_us = ref_small ? ref_small->usec_per_transfer : 0;
    const double ref_gbps = ref_big ? ref_big->gbps() : 0;

    if (opts.json) {
        std::printf("{");
        for (const auto& [t, f] : results) {
            std::printf("\"%s\": {\"remote_oneway_p50_us\": %.2f, \"remote_oneway_p90_us\": "
                        "%.2f, \"remote_send_8b_per_s\": %.0f, \"remote_bw_1mib_gbps\": %.3f}, ",
                        t.c_str(), f.p50_us, f.p90_us, f.sends_per_s, f.gbps);
        }
        std::printf("\"fi_pingpong\": {\"oneway_8b_us\": %.2f, \"bw_1mib_gbps\": %.3f}}\n",
                    ref_us, ref_gbps);
    } else {
        for (const auto& [t, f] : results) {
            std::printf("transport %s\n", t.c_str());
            if (ref_small) {
                dragonx::bench::figure("  remote_oneway_p50_us", f.p50_us, "us",
                                       "fi_pingpong tcp rdm", ref_us);
            } else {
                dragonx::bench::figure("  remote_oneway_p50_us", f.p50_us, "us");
            }
            dragonx::bench::figure("  remote_oneway_p90_us", f.p90_us, "us");
            dragonx::bench::figure("  remote_send_8b_per_s", f.sends_per_s, "/s");
            if (ref_big) {
                dragonx::bench::figure("  remote_bw_1mib_gbps", f.gbps, "GB/s",
                                       "fi_pingpong tcp rdm", ref_gbps);
            } else {
                dragonx::bench::figure("  remote_bw_1mib_gbps", f.gbps, "GB/s");
            }
        }
        if (!ref_small) {
            std::printf("fi_pingpong not found (Debian package libfabric-bin): no reference\n");
        }
    }
    return results.empty() ? 1 : 0;
}
