// queue_test.cpp - dragonx::queue<T>: typed values through channels, in one process and
// across processes; large values through the pool without leaks; timeouts; bad messages.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <dragonx/channels/queue.hpp>
#include <dragonx/common/error.hpp>

#include "support.hpp"

using dragonx::errc;
using dragonx::queue;
using dragonx::test::child;
using dragonx::test::errc_of;
using dragonx::test::shared_object;
using dragonx::pool::pool;
using namespace std::chrono_literals;

namespace {

struct sample {
    std::uint32_t producer = 0;
    std::uint64_t seq = 0;
    std::vector<std::uint64_t> payload;  // payload[i] == seq * 31 + i
};

}  // namespace

template <>
struct dragonx::codec<sample> {
    static void encode(const sample& s, encoder& out)
    {
        out.value(s.producer);
        out.value(s.seq);
        codec<std::vector<std::uint64_t>>::encode(s.payload, out);
    }
    static sample decode(decoder& in)
    {
        sample s;
        s.producer = in.value<std::uint32_t>();
        s.seq = in.value<std::uint64_t>();
        s.payload = codec<std::vector<std::uint64_t>>::decode(in);
        return s;
    }
};

TEST_CASE("a queue carries typed values in order", "[queue]")
{
    auto p = pool::create({.size = 4 << 20});
    auto q = queue<std::string>::create(p, {.capacity = 3, .block_size = 64});
    CHECK(q.empty());
    CHECK_FALSE(q.full());
    CHECK(q.capacity() == 3);
    CHECK_FALSE(q.try_get());

    const std::string big(5000, 'B');  // beyond the block size: travels in a pool block
    CHECK(q.try_put("one"));
    CHECK(q.try_put(big));
    q.put("", 1s);
    CHECK(q.full());
    CHECK(q.size() == 3);
    CHECK_FALSE(q.try_put("four"));

    auto other = queue<std::string>::attach(q.descriptor());
    CHECK(other.get(1s) == "one");
    CHECK(other.try_get() == big);
    CHECK(q.get(0ns).empty());
    CHECK(q.empty());

    auto numbers = queue<double>::create(p);
    numbers.put(2.5, 1s);
    CHECK(numbers.get(1s) == 2.5);
    auto vectors = queue<std::vector<int>>::create(p, {.capacity = 4, .block_size = 16});
    const std::vector<int> v(10000, 7);
    vectors.put(v, 1s);
    vectors.put({1, 2}, 1s);
    CHECK(vectors.get(1s) == v);
    CHECK(vectors.get(1s) == std::vector<int>{1, 2});
}

TEST_CASE("queue timeouts are honoured and full/empty are values", "[queue]")
{
    auto p = pool::create({.size = 1 << 20});
    auto q = queue<int>::create(p, {.capacity = 1});
    auto t0 = std::chrono::steady_clock::now();
    CHECK(errc_of([&] { (void)q.get(20ms); }) == errc::timeout);
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 20ms);
    CHECK(took < 200ms);

    q.put(1, 0ns);
    t0 = std::chrono::steady_clock::now();
    CHECK(errc_of([&] { q.put(2, 20ms); }) == errc::timeout);
    took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 20ms);
    CHECK(took < 200ms);
    CHECK(errc_of([&] { q.put(2, -1ms); }) == errc::invalid_argument);
    CHECK(q.get(0ns) == 1);
    CHECK_FALSE(q.poll(0ns));
}

TEST_CASE("large values leave nothing behind in the pool", "[queue]")
{
    auto p = pool::create({.size = 16 << 20});
    const auto before_queue = p.stats().free_bytes;
    auto q = queue<std::vector<std::uint8_t>>::create(p, {.capacity = 8, .block_size = 128});
    const auto start_free = p.stats().free_bytes;
    for (std::size_t n : {0u, 1u, 100u, 125u, 126u, 127u, 128u, 129u, 4096u, 1u << 20}) {
        std::vector<std::uint8_t> v(n);
        for (std::size_t i = 0; i < n; ++i) {
            v[i] = static_cast<std::uint8_t>(i * 7 + n);
        }
        CAPTURE(n);
        q.put(v, 1s);
        CHECK(p.stats().free_bytes <= start_free);
        CHECK(q.get(1s) == v);
        CHECK(p.stats().free_bytes == start_free);
    }
    // Values left in a destroyed queue are freed with it.
    q.put(std::vector<std::uint8_t>(100000, 1), 1s);
    q.put(std::vector<std::uint8_t>(3, 1), 1s);
    CHECK(p.stats().free_bytes < start_free);
    q.destroy();
    CHECK(p.stats().free_bytes == before_queue);
}

TEST_CASE("a value that does not decode as T is reported, not misread", "[queue]")
{
    auto p = pool::create({.size = 1 << 20});
    auto strings = queue<std::string>::create(p);
    auto doubles = queue<double>::attach(strings.descriptor());
    strings.put("not a double", 1s);
    std::string what;
    CHECK(errc_of([&] { (void)doubles.get(1s); }, &what) == errc::malformed_message);
    CHECK_THAT(what, Catch::Contains("queue message"));
    CHECK(doubles.empty());  // consumed
    doubles.put(1.0, 1s);    // and the queue still works
    CHECK(doubles.get(1s) == 1.0);
}

TEST_CASE("queues across processes: exactly once, in producer order, mixed sizes",
          "[queue][multiprocess]")
{
    constexpr std::uint32_t producers = 2;
    constexpr std::uint32_t consumers = 2;
    constexpr std::uint64_t per_producer = 20'000;
    auto p = pool::create({.size = 64 << 20});
    auto q = queue<sample>::create(p, {.capacity = 64, .block_size = 256});
    const auto desc = q.descriptor();
    const auto start_free = p.stats().free_bytes;

    struct tally {
        std::atomic<std::uint8_t> seen[producers][per_producer];
        std::atomic<std::uint64_t> received;
    };
    shared_object<tally> t;

    std::vector<std::unique_ptr<child>> procs;
    for (std::uint32_t k = 0; k < producers; ++k) {
        procs.push_back(std::make_unique<child>([&, k] {
            auto out = queue<sample>::attach(desc);
            sample s;
            s.producer = k;
            for (std::uint64_t seq = 0; seq < per_producer; ++seq) {
                s.seq = seq;
                // 0..63 words: both sides of the 256-byte slot.
                s.payload.resize((seq * 13 + k) % 64);
                for (std::size_t i = 0; i < s.payload.size(); ++i) {
                    s.payload[i] = seq * 31 + i;
                }
                out.put(s, 30s);
            }
            return true;
        }));
    }
    for (std::uint32_t k = 0; k < consumers; ++k) {
        procs.push_back(std::make_unique<child>([&] {
            auto in = queue<sample>::attach(desc);
            std::uint64_t last[producers];
            std::fill(std::begin(last), std::end(last), ~std::uint64_t{0});
            while (t->received.load() < producers * per_producer) {
                auto s = in.try_get();
                if (!s) {
                    (void)in.poll(10ms);
                    continue;
                }
                if (s->producer >= producers || s->seq >= per_producer ||
                    s->payload.size() != (s->seq * 13 + s->producer) % 64) {
                    std::fprintf(stderr, "corrupt value\n");
                    return false;
                }
                for (std::size_t i = 0; i < s->payload.size(); ++i) {
                    if (s->payload[i] != s->seq * 31 + i) {
                        std::fprintf(stderr, "corrupt payload\n");
                        return false;
                    }
                }
                if (last[s->producer] != ~std::uint64_t{0} && s->seq <= last[s->producer]) {
                    std::fprintf(stderr, "out of order\n");
                    return false;
                }
                last[s->producer] = s->seq;
                if (t->seen[s->producer][s->seq].fetch_add(1) != 0) {
                    std::fprintf(stderr, "duplicate\n");
                    return false;
                }
                ++t->received;
            }
            return true;
        }));
    }
    for (auto& proc : procs) {
        CHECK(proc->succeeded(120s));
    }
    std::uint64_t missing = 0;
    for (std::uint32_t k = 0; k < producers; ++k) {
        for (std::uint64_t s = 0; s < per_producer; ++s) {
            missing += t->seen[k][s].load() != 1;
        }
    }
    CHECK(missing == 0);
    CHECK(q.empty());
    CHECK(p.stats().free_bytes == start_free);
}
