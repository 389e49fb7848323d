// channel_bench.cpp - channel latency, rate and bandwidth, each beside its raw reference
// measured in the same run.
//
// Figures (one line each, or one JSON object with --json):
//   calib_spin_oneway_ns     raw shm ping-pong on two atomics, one way (the calibration)
//   oneway_spin_p50_ns/_p99  channel ping-pong, 8 B, receivers spinning, pinned to CPUs 0 and 1
//   raw_futex_oneway_ns      raw futex wake of a sleeping receiver, one way
//   oneway_sleep_p50_ns      channel, 8 B, to a receiver asleep (no spin, no yield), one way
//   oversub_p50_ns           channel ping-pong while two busy-looping processes compete for
//                            the 2 CPUs (4 busy processes), default wait policy, unpinned
//   rate_64b_msgs_per_s      one sender, one receiver, 64 B messages
//   raw_ring_64b_msgs_per_s  SPSC ring in shared memory, copy in and out, 64 B
//   bw_1mib_copy_gbps        1 MiB messages copied through the channel (slots of 1 MiB)
//   raw_ring_1mib_gbps       the SPSC ring with 1 MiB slots
//   zerocopy_1mib_oneway_ns  1 MiB pool blocks handed over without copying, one way
// Options: --json, --quick.
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/futex.hpp>

#include "harness.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using dragonx::channels::channel;
using namespace std::chrono_literals;
using dragonx::bench::figure;
using dragonx::bench::percentile;
using dragonx::bench::shared_memory;

std::int64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock_type::now().time_since_epoch())
        .count();
}

void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)), &set);
    sched_setaffinity(0, sizeof set, &set);
}

void unpin()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < sysconf(_SC_NPROCESSORS_ONLN); ++c) {
        CPU_SET(c, &set);
    }
    sched_setaffinity(0, sizeof set, &set);
}

// Runs `body` in a forked child (optionally pinned); returns its pid.
pid_t spawn(int cpu, const std::function<void()>& body)
{
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (cpu >= 0) {
            pin(cpu);
        } else {
            unpin();
        }
        body();
        ::_exit(0);
    }
    return pid;
}

// ---- references ---------------------------------------------------------------------------

double raw_spin_oneway_p50(int rounds)
{
    auto* w = static_cast<std::atomic<std::uint64_t>*>(shared_memory(4096));
    auto& ping = w[0];
    auto& pong = w[8];  // another cache line
    ping = 0;
    pong = 0;
    const pid_t pid = spawn(1, [&] {
        for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(rounds); ++i) {
            while (ping.load(std::memory_order_acquire) != i) {
            }
            pong.store(i, std::memory_order_release);
        }
    });
    pin(0);
    std::vector<double> ns;
    for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(rounds); ++i) {
        const auto t0 = now_ns();
        ping.store(i, std::memory_order_release);
        while (pong.load(std::memory_order_acquire) != i) {
        }
        ns.push_back(static_cast<double>(now_ns() - t0) / 2);
    }
    ::waitpid(pid, nullptr, 0);
    ::munmap(w, 4096);
    unpin();
    return percentile(ns, 0.5);
}

// One way to a receiver that is asleep: the sender pauses first so the receiver has gone to
// sleep, stamps the time, and wakes it; the receiver measures the delay.
double raw_futex_oneway_p50(int rounds)
{
    struct shared {
        std::atomic<std::uint32_t> word;
        std::atomic<std::int64_t> sent_ns;
        double ns[1];
    };
    const std::size_t bytes = sizeof(shared) + sizeof(double) * static_cast<std::size_t>(rounds);
    auto* s = static_cast<shared*>(shared_memory(bytes));
    const pid_t pid = spawn(1, [&] {
        for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(rounds); ++i) {
            // Wait for message i (or a later one, if we were descheduled for a whole round).
            for (std::uint32_t w = s->word.load(); w < i; w = s->word.load()) {
                dragonx::futex_wait(s->word, w, std::nullopt);
            }
            s->ns[i - 1] = static_cast<double>(now_ns() - s->sent_ns.load());
        }
    });
    pin(0);
    for (std::uint32_t i = 1; i <= static_cast<std::uint32_t>(rounds); ++i) {
        ::usleep(200);
        s->sent_ns = now_ns();
        s->word.store(i);
        dragonx::futex_wake(s->word, 1);
    }
    ::waitpid(pid, nullptr, 0);
    std::vector<double> ns(s->ns, s->ns + rounds);
    ::munmap(s, bytes);
    unpin();
    return percentile(ns, 0.5);
}

// The same through a channel whose receiver does not spin: 8 B messages carrying the time.
double channel_sleep_oneway_p50(dragonx::pool::pool& pool, int rounds)
{
    auto ch = channel::create(pool, {.capacity = 4, .block_size = 64});
    const auto desc = ch.descriptor();
    auto* ns = static_cast<double*>(shared_memory(sizeof(double) * static_cast<std::size_t>(rounds)));
    const pid_t pid = spawn(1, [&] {
        auto in = channel::attach(desc);
        in.set_wait_policy({.spin = 0ns, .yield = 0ns});
        std::int64_t sent = 0;
        for (int i = 0; i < rounds; ++i) {
            (void)in.recv(std::as_writable_bytes(std::span(&sent, 1)), dragonx::forever);
            ns[i] = static_cast<double>(now_ns() - sent);
        }
    });
    pin(0);
    for (int i = 0; i < rounds; ++i) {
        ::usleep(200);
        const std::int64_t sent = now_ns();
        ch.send(std::as_bytes(std::span(&sent, 1)), dragonx::forever);
    }
    ::waitpid(pid, nullptr, 0);
    std::vector<double> v(ns, ns + rounds);
    ::munmap(ns, sizeof(double) * static_cast<std::size_t>(rounds));
    unpin();
    return percentile(v, 0.5);
}

// SPSC ring, copy in and out: messages per second.
double raw_ring_rate(std::size_t msg_bytes, std::uint64_t count)
{
    constexpr std::uint64_t slots = 16;
    const std::size_t bytes = 128 + slots * msg_bytes;
    auto* base = static_cast<std::byte*>(shared_memory(bytes));
    auto& head = *reinterpret_cast<std::atomic<std::uint64_t>*>(base);
    auto& tail = *reinterpret_cast<std::atomic<std::uint64_t>*>(base + 64);
    std::byte* ring = base + 128;
    head = 0;
    tail = 0;
    const pid_t pid = spawn(1, [&] {
        std::vector<std::byte> out(msg_bytes);
        for (std::uint64_t i = 0; i < count; ++i) {
            while (tail.load(std::memory_order_acquire) == i) {
            }
            std::memcpy(out.data(), ring + (i % slots) * msg_bytes, msg_bytes);
            head.store(i + 1, std::memory_order_release);
        }
    });
    pin(0);
    std::vector<std::byte> in(msg_bytes, std::byte{1});
    const auto t0 = now_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
        while (i - head.load(std::memory_order_acquire) >= slots) {
        }
        std::memcpy(ring + (i % slots) * msg_bytes, in.data(), msg_bytes);
        tail.store(i + 1, std::memory_order_release);
    }
    ::waitpid(pid, nullptr, 0);  // the receiver has copied everything out
    const double secs = static_cast<double>(now_ns() - t0) * 1e-9;
    ::munmap(base, bytes);
    unpin();
    return static_cast<double>(count) / secs;
}

// ---- channels -----------------------------------------------------------------------------

struct pingpong_result {
    double p50;
    double p99;
    double max;
};

// Ping-pong over two channels; `zero_copy` hands 1 MiB pool blocks back and forth instead of
// copying 8 bytes. cpu < 0: unpinned.
pingpong_result channel_pingpong(dragonx::pool::pool& pool, int rounds,
                                 const dragonx::wait_policy& policy, int parent_cpu,
                                 int child_cpu, bool zero_copy = false)
{
    auto ping = channel::create(pool, {.capacity = 4, .block_size = 64});
    auto pong = channel::create(pool, {.capacity = 4, .block_size = 64});
    ping.set_wait_policy(policy);
    pong.set_wait_policy(policy);
    const auto ping_desc = ping.descriptor();
    const auto pong_desc = pong.descriptor();
    const pid_t pid = spawn(child_cpu, [&] {
        auto in = channel::attach(ping_desc);
        auto out = channel::attach(pong_desc);
        in.set_wait_policy(policy);
        std::byte buf[64];
        for (int i = 0; i < rounds; ++i) {
            if (zero_copy) {
                auto block = in.recv_block(dragonx::forever);
                out.send(block, dragonx::forever);
            } else {
                const auto n = in.recv(buf, dragonx::forever);
                out.send(std::span(buf, n), dragonx::forever);
            }
        }
    });
    if (parent_cpu >= 0) {
        pin(parent_cpu);
    }
    std::vector<double> ns;
    std::byte msg[8] = {};
    std::byte buf[64];
    dragonx::pool::allocation block;
    if (zero_copy) {
        block = pool.try_allocate(1 << 20).value();
    }
    for (int i = 0; i < rounds; ++i) {
        const auto t0 = now_ns();
        if (zero_copy) {
            ping.send(block, dragonx::forever);
            block = pong.recv_block(dragonx::forever);
        } else {
            ping.send(msg, dragonx::forever);
            (void)pong.recv(buf, dragonx::forever);
        }
        ns.push_back(static_cast<double>(now_ns() - t0) / 2);
    }
    ::waitpid(pid, nullptr, 0);
    unpin();
    return {percentile(ns, 0.5), percentile(ns, 0.99), percentile(ns, 1.0)};
}

double channel_rate(const dragonx::pool::pool& pool, std::size_t msg_bytes, std::uint32_t block,
                    std::uint32_t capacity, std::uint64_t count)
{
    auto ch = channel::create(pool, {.capacity = capacity, .block_size = block});
    const auto desc = ch.descriptor();
    const pid_t pid = spawn(1, [&] {
        auto in = channel::attach(desc);
        std::vector<std::byte> out(msg_bytes);
        for (std::uint64_t i = 0; i < count; ++i) {
            (void)in.recv(out, dragonx::forever);
        }
    });
    pin(0);
    std::vector<std::byte> msg(msg_bytes, std::byte{1});
    const auto t0 = now_ns();
    for (std::uint64_t i = 0; i < count; ++i) {
        ch.send(msg, dragonx::forever);
    }
    ::waitpid(pid, nullptr, 0);
    const double secs = static_cast<double>(now_ns() - t0) * 1e-9;
    unpin();
    return static_cast<double>(count) / secs;
}

}  // namespace

int main(int argc, char** argv)
{
    const auto [json, quick] = dragonx::bench::parse_options(argc, argv, "channel_bench");
    const int rounds = quick ? 2000 : 20000;
    const int sleep_rounds = quick ? 300 : 3000;
    const std::uint64_t rate_count = quick ? 200'000 : 3'000'000;
    const std::uint64_t big_count = quick ? 300 : 3000;

    auto pool = dragonx::pool::pool::create({.size = 256 << 20});
    const dragonx::wait_policy spinning{.spin = 1s, .yield = 0ns};

    const double calib = raw_spin_oneway_p50(rounds);
    const auto spin = channel_pingpong(pool, rounds, spinning, 0, 1);
    const double raw_futex = raw_futex_oneway_p50(sleep_rounds);
    const double sleep = channel_sleep_oneway_p50(pool, sleep_rounds);

    // Oversubscribed: two busy processes compete with the ping-pong pair for the 2 CPUs.
    auto* stop = static_cast<std::atomic<int>*>(shared_memory(4096));
    std::vector<pid_t> busy;
    for (int b = 0; b < 2; ++b) {
        busy.push_back(spawn(-1, [&] {
            while (stop->load(std::memory_order_relaxed) == 0) {
            }
        }));
    }
    const auto oversub = channel_pingpong(pool, rounds, dragonx::wait_policy{}, -1, -1);
    stop->store(1);
    for (pid_t b : busy) {
        ::waitpid(b, nullptr, 0);
    }
    ::munmap(stop, 4096);

    const double rate = channel_rate(pool, 64, 64, 256, rate_count);
    const double raw_rate = raw_ring_rate(64, rate_count);
    const double mib = 1 << 20;
    const double bw = channel_rate(pool, 1 << 20, 1 << 20, 8, big_count) * mib / 1e9;
    const double raw_bw = raw_ring_rate(1 << 20, big_count) * mib / 1e9;
    const auto zero = channel_pingpong(pool, quick ? 500 : 5000, spinning, 0, 1, true);

    if (json) {
        std::printf(
            "{\"calib_spin_oneway_ns\": %.1f, \"oneway_spin_p50_ns\": %.1f, "
            "\"oneway_spin_p99_ns\": %.1f, \"raw_futex_oneway_ns\": %.1f, "
            "\"oneway_sleep_p50_ns\": %.1f, \"oversub_p50_ns\": %.1f, \"oversub_p99_ns\": %.1f, \"oversub_max_ns\": %.1f, "
            "\"rate_64b_msgs_per_s\": %.0f, \"raw_ring_64b_msgs_per_s\": %.0f, "
            "\"bw_1mib_copy_gbps\": %.2f, \"raw_ring_1mib_gbps\": %.2f, "
            "\"zerocopy_1mib_oneway_ns\": %.1f}\n",
            calib, spin.p50, spin.p99, raw_futex, sleep, oversub.p50, oversub.p99, oversub.max, rate, raw_rate, bw,
            raw_bw, zero.p50);
    } else {
        std::printf("channel_bench: 8 B ping-pong pinned to CPUs 0 and 1 unless noted; %ld CPUs\n",
                    sysconf(_SC_NPROCESSORS_ONLN));
        figure("calib_spin_oneway_ns", calib, "ns");
        figure("oneway_spin_p50_ns", spin.p50, "ns", "calib_spin_oneway", calib);
        figure("oneway_spin_p99_ns", spin.p99, "ns");
        figure("oneway_sleep_p50_ns", sleep, "ns", "raw_futex_oneway", raw_futex);
        figure("oversub_p50_ns", oversub.p50, "ns");
        figure("oversub_p99_ns", oversub.p99, "ns");
        figure("oversub_max_ns", oversub.max, "ns");
        figure("rate_64b_msgs_per_s", rate, "msg/s", "raw_ring_64b", raw_rate);
        figure("bw_1mib_copy_gbps", bw, "GB/s", "raw_ring_1mib", raw_bw);
        figure("zerocopy_1mib_oneway_ns", zero.p50, "ns");
        std::printf("targets: spin p50 <= 4x calib and <= 1 us; sleep <= 1.2x raw futex; "
                    "oversub <= 50 us; >= 5 M msg/s; >= 70%% of the raw ring at 1 MiB\n");
    }
    return 0;
}
