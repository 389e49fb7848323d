// multiprocess_test.cpp - channels shared by processes: stress with exactly-once delivery and
// per-producer order, and senders or receivers killed at any point.
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/error.hpp>

#include "support.hpp"

using dragonx::channels::channel;
using dragonx::pool::pool;
using dragonx::test::child;
using dragonx::test::shared_object;
using namespace std::chrono_literals;

namespace {

// Message body: producer, sequence number, then a pattern derived from both, so a torn or
// mixed-up message is detected by its content.
struct message_head {
    std::uint32_t producer;
    std::uint32_t length;
    std::uint64_t seq;
};

std::size_t message_size(std::uint64_t seq)
{
    // Mostly inline sizes, one in sixteen past the slot (block_size 256).
    return seq % 16 == 0 ? 300 + (seq * 7919) % 20000 : sizeof(message_head) + (seq * 31) % 200;
}

void fill(std::vector<std::byte>& buf, std::uint32_t producer, std::uint64_t seq)
{
    const std::size_t n = message_size(seq);
    buf.resize(n);
    const message_head h{producer, static_cast<std::uint32_t>(n), seq};
    std::memcpy(buf.data(), &h, sizeof h);
    for (std::size_t i = sizeof h; i < n; ++i) {
        buf[i] = static_cast<std::byte>((seq + i + producer) & 0xff);
    }
}

bool valid(const std::byte* data, std::size_t n, message_head& h)
{
    if (n < sizeof h) {
        return false;
    }
    std::memcpy(&h, data, sizeof h);
    if (h.length != n || n != message_size(h.seq)) {
        return false;
    }
    for (std::size_t i = sizeof h; i < n; ++i) {
        if (data[i] != static_cast<std::byte>((h.seq + i + h.producer) & 0xff)) {
            return false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("several producers and consumers: every message exactly once, in producer order",
          "[channels][multiprocess][slow]")
{
    constexpr std::uint32_t producers = 2;
    constexpr std::uint32_t consumers = 2;
    constexpr std::uint64_t per_producer = 500'000;  // 10^6 messages in all
    auto p = pool::create({.size = 64 << 20});
    auto ch = channel::create(p, {.capacity = 256, .block_size = 256});
    const auto desc = ch.descriptor();
    const auto start_free = p.stats().free_bytes;

    struct tally {
        std::atomic<std::uint8_t> seen[producers][per_producer];
        std::atomic<std::uint64_t> received;
    };
    shared_object<tally> t;

    std::vector<std::unique_ptr<child>> procs;
    for (std::uint32_t k = 0; k < producers; ++k) {
        procs.push_back(std::make_unique<child>([&, k] {
            auto c = channel::attach(desc);
            std::vector<std::byte> buf;
            for (std::uint64_t seq = 0; seq < per_producer; ++seq) {
                fill(buf, k, seq);
                c.send(buf, 30s);
            }
            return true;
        }));
    }
    for (std::uint32_t k = 0; k < consumers; ++k) {
        procs.push_back(std::make_unique<child>([&] {
            auto c = channel::attach(desc);
            std::vector<std::byte> buf(1 << 16);
            std::uint64_t last[producers];
            std::fill(std::begin(last), std::end(last), ~std::uint64_t{0});
            while (t->received.load() < producers * per_producer) {
                std::optional<std::size_t> n;
                try {
                    n = c.recv(buf, 100ms);
                } catch (const dragonx::error& e) {
                    if (e.is(dragonx::errc::timeout)) {
                        continue;  // the others may have taken the last messages
                    }
                    throw;
                }
                message_head h{};
                if (!valid(buf.data(), *n, h) || h.producer >= producers ||
                    h.seq >= per_producer) {
                    std::fprintf(stderr, "corrupt message\n");
                    return false;
                }
                // FIFO: each consumer sees each producer's messages in increasing order.
                if (last[h.producer] != ~std::uint64_t{0} && h.seq <= last[h.producer]) {
                    std::fprintf(stderr, "out of order: %llu after %llu\n",
                                 static_cast<unsigned long long>(h.seq),
                                 static_cast<unsigned long long>(last[h.producer]));
                    return false;
                }
                last[h.producer] = h.seq;
                if (t->seen[h.producer][h.seq].fetch_add(1) != 0) {
                    std::fprintf(stderr, "duplicate message\n");
                    return false;
                }
                ++t->received;
            }
            return true;
        }));
    }
    for (auto& proc : procs) {
        CHECK(proc->succeeded(240s));
    }
    CHECK(t->received.load() == producers * per_producer);
    std::uint64_t missing = 0;
    for (std::uint32_t k = 0; k < producers; ++k) {
        for (std::uint64_t s = 0; s < per_producer; ++s) {
            missing += t->seen[k][s].load() != 1;
        }
    }
    CHECK(missing == 0);
    CHECK(ch.size() == 0);
    CHECK(p.stats().free_bytes == start_free);  // every large message's block came back
}

TEST_CASE("senders and receivers killed at any point do not wedge the channel",
          "[channels][multiprocess][slow]")
{
    auto p = pool::create({.size = 64 << 20});
    auto ch = channel::create(p, {.capacity = 64, .block_size = 128});
    const auto desc = ch.descriptor();
    struct progress {
        std::atomic<std::uint64_t> loops;
    };
    shared_object<progress> prog;
    std::mt19937_64 rng(11);

    for (int round = 0; round < 30; ++round) {
        prog->loops = 0;
        const bool sender = round % 2 == 0;
        child victim([&] {
            auto c = channel::attach(desc);
            std::vector<std::byte> buf(1 << 16);
            for (std::uint64_t i = 0;; ++i) {
                if (sender) {
                    fill(buf, 9, i);
                    (void)c.try_send(std::span(buf.data(), message_size(i)));
                } else {
                    try {
                        (void)c.try_recv(buf);
                    } catch (const dragonx::error&) {
                        return false;
                    }
                }
                ++prog->loops;
            }
        });
        // Keep the channel half full so both kinds of victim have work.
        std::vector<std::byte> buf;
        for (std::uint64_t i = 0; ch.size() < 32 && i < 32; ++i) {
            fill(buf, 1, i);
            (void)ch.try_send(buf);
        }
        while (prog->loops.load() < 100) {
            std::this_thread::yield();
        }
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
        victim.kill();

        // The survivors go on: a round trip through the channel still works, every
        // message still in it is intact, and the locks are free.
        std::vector<std::byte> in(1 << 16);
        while (auto n = ch.try_recv(in)) {
            message_head h{};
            REQUIRE(valid(in.data(), *n, h));
        }
        fill(buf, 2, 16);  // a large one, through the pool
        ch.send(buf, 1s);
        const auto n = ch.recv(in, 1s);
        message_head h{};
        CHECK(valid(in.data(), n, h));
        CHECK(h.producer == 2);
    }
    CHECK(ch.size() == 0);
}
