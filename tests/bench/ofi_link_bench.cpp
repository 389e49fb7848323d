// ofi_link_bench.cpp - the libfabric link between two processes on this host (tcp;ofi_rxm
// over loopback unless FI_PROVIDER or OFI_BENCH_PROVIDER says otherwise).
//
// Figures (one line each, or one JSON object with --json):
//   pingpong_8b_half_rtt_us   8 B frames bounced by the other process, half the round trip
//   pingpong_8b_p99_us        the 99th percentile of those half round trips
//   bw_64kib_gbps             64 KiB frames streamed, 16 in flight, each acknowledged by 8 B
//   bw_1mib_gbps              1 MiB frames, the same way
//   bw_64mib_gbps             64 MiB frames, 2 in flight
// Reference, measured in the same run: fi_pingpong -p tcp -e rdm (libfabric-bin) at 8 B and
// 1 MiB (fi_pingpong.hpp). Options: --json, --quick.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "auth.hpp"
#include "fi_pingpong.hpp"
#include "harness.hpp"
#include "transport/ofi_link.hpp"

namespace rt = dragonx::rt::detail;
using clock_type = std::chrono::steady_clock;

namespace {

std::string read_line(int fd)
{
    std::string s;
    char c = 0;
    while (::read(fd, &c, 1) == 1 && c != '\n') {
        s += c;
    }
    return s;
}

void write_line(int fd, const std::string& s)
{
    const std::string line = s + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        std::perror("write");
        std::exit(1);
    }
}

rt::ofi_link_options link_options()
{
    const char* provider = std::getenv("OFI_BENCH_PROVIDER");
    return {.library = rt::ofi_library::load(""),
            .provider = provider != nullptr ? provider : "tcp",
            .bind_address = "127.0.0.1"};
}

void send_bytes(rt::peer_link& link, std::uint32_t node, std::span<const std::byte> bytes)
{
    const std::span<const std::byte> parts[] = {bytes};
    link.send(node, parts);
}

/// The other process: bounces frames of at most 8 bytes, acknowledges larger ones with 8
/// bytes. Exits when its parent's link goes away (stdin pipe closed).
[[noreturn]] void echo(const rt::run_secret& secret, int in, int out)
{
    asio::io_context io;
    auto link = rt::make_ofi_link(io, secret, 1, link_options());
    const std::vector<std::byte> ack(8);
    link->start({.on_frame =
                     [&](std::uint32_t node, std::span<const std::byte> frame) {
                         send_bytes(*link, node, frame.size() <= 8 ? frame : ack);
                     },
                 .on_lost = [](std::uint32_t, const std::string&) { std::_Exit(0); }});
    write_line(out, link->address());
    const std::string parent = read_line(in);
    link->set_peers({parent, link->address()});
    io.run();
    std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv)
{
    const auto opts = dragonx::bench::parse_options(argc, argv, "ofi_link_bench");
    const auto secret = rt::make_secret();
    int to_child[2];
    int to_parent[2];
    if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) {
        std::perror("pipe");
        return 1;
    }
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(to_child[1]);
        ::close(to_parent[0]);
        echo(secret, to_child[0], to_parent[1]);
    }
    ::close(to_child[0]);
    ::close(to_parent[1]);

    asio::io_context io;
    auto link = rt::make_ofi_link(io, secret, 0, link_options());
    std::size_t received = 0;
    bool lost = false;
    link->start({.on_frame = [&](std::uint32_t, std::span<const std::byte>) { ++received; },
                 .on_lost = [&](std::uint32_t, const std::string&) { lost = true; }});
    const std::string child_address = read_line(to_parent[0]);
    write_line(to_child[1], link->address());
    link->set_peers({link->address(), child_address});

    const auto wait_for = [&](std::size_t count) {
        while (received < count && !lost) {
            io.run_one();
        }
        if (lost) {
            std::fprintf(stderr, "ofi_link_bench: lost the other process\n");
            std::exit(1);
        }
    };

    // Ping-pong, 8 B.
    const std::vector<std::byte> small(8);
    const int warmup = 200;
    const int iterations = opts.quick ? 1000 : 20000;
    std::vector<double> half_rtt;
    half_rtt.reserve(static_cast<std::size_t>(iterations));
    for (int i = 0; i < warmup + iterations; ++i) {
        const auto t0 = clock_type::now();
        send_bytes(*link, 1, small);
        wait_for(received + 1);
        if (i >= warmup) {
            half_rtt.push_back(
                std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / 2);
        }
    }
    double mean = 0;
    for (const double v : half_rtt) {
        mean += v;
    }
    mean /= static_cast<double>(half_rtt.size());

    // Bandwidth: `count` frames of `size`, at most `window` unacknowledged.
    const auto bandwidth = [&](std::size_t size, int count, int window) {
        const std::vector<std::byte> frame(size, std::byte{0x5a});
        const std::size_t start = received;
        int sent = 0;
        const auto t0 = clock_type::now();
        while (received - start < static_cast<std::size_t>(count)) {
            while (sent < count && sent - static_cast<int>(received - start) < window) {
                send_bytes(*link, 1, frame);
                ++sent;
            }
            wait_for(received + 1);
        }
        const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        return static_cast<double>(size) * count / s / 1e9;
    };
    const double bw_64k = bandwidth(64u << 10, opts.quick ? 500 : 5000, 16);
    const double bw_1m = bandwidth(1u << 20, opts.quick ? 100 : 1000, 16);
    const double bw_64m = bandwidth(64u << 20, opts.quick ? 4 : 20, 2);

    link->close();
    ::close(to_child[1]);
    ::kill(child, SIGTERM);
    ::waitpid(child, nullptr, 0);

    const double p99 = dragonx::bench::percentile(half_rtt, 0.99);
    const auto ref_small = dragonx::bench::fi_pingpong(8, opts.quick ? 1000 : 10000);
    const auto ref_big = dragonx::bench::fi_pingpong(1u << 20, opts.quick ? 100 : 1000);
    const double ref_us = ref_small ? ref_small->usec_per_transfer : 0;
    const double ref_gbps = ref_big ? ref_big->gbps() : 0;
    if (opts.json) {
        std::printf("{\"provider\": \"%s\", \"pingpong_8b_half_rtt_us\": %.2f, "
                    "\"pingpong_8b_p99_us\": %.2f, \"bw_64kib_gbps\": %.2f, "
                    "\"bw_1mib_gbps\": %.2f, \"bw_64mib_gbps\": %.2f, "
                    "\"fi_pingpong\": {\"oneway_8b_us\": %.2f, \"bw_1mib_gbps\": %.3f}}\n",
                    link->name().c_str(), mean, p99, bw_64k, bw_1m, bw_64m, ref_us, ref_gbps);
        return 0;
    }
    std::printf("%s between two processes over loopback\n", link->name().c_str());
    const char* ref = ref_small ? "fi_pingpong tcp rdm" : nullptr;
    dragonx::bench::figure("pingpong_8b_half_rtt_us", mean, "us", ref, ref_us);
    dragonx::bench::figure("pingpong_8b_p99_us", p99, "us");
    dragonx::bench::figure("bw_64kib_gbps", bw_64k, "GB/s");
    dragonx::bench::figure("bw_1mib_gbps", bw_1m, "GB/s", ref_big ? ref : nullptr, ref_gbps);
    dragonx::bench::figure("bw_64mib_gbps", bw_64m, "GB/s");
    if (!ref_small) {
        std::printf("fi_pingpong not found (Debian package libfabric-bin): no reference\n");
    }
    return 0;
}
