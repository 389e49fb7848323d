// allocation_test.cpp - allocate, free, sizes, exhaustion, blocking with timeouts, statistics.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include <dragonx/common/error.hpp>
#include <dragonx/pool/pool.hpp>

using dragonx::errc;
using dragonx::pool::allocation;
using dragonx::pool::pool;
using namespace std::chrono_literals;

namespace {

bool throws_errc(errc e, const std::function<void()>& f)
{
    try {
        f();
    } catch (const dragonx::error& err) {
        return err.is(e);
    }
    return false;
}

}  // namespace

TEST_CASE("blocks are powers of two from 64 bytes, and zero bytes is legal", "[pool]")
{
    auto p = pool::create({.size = 1 << 20});
    auto zero = p.try_allocate(0);
    REQUIRE(zero);
    CHECK(zero->size() == 0);
    CHECK(zero->capacity() == 64);
    CHECK(zero->data() != nullptr);
    CHECK(zero->bytes().empty());

    for (std::uint64_t n : {1u, 63u, 64u, 65u, 1000u, 4096u, 4097u, 100000u}) {
        auto a = p.try_allocate(n);
        REQUIRE(a);
        CHECK(a->size() == n);
        CHECK(a->capacity() >= std::max<std::uint64_t>(n, 64));
        CHECK(a->capacity() < 2 * std::max<std::uint64_t>(n, 64));
        CHECK((a->offset() % a->capacity()) == 0);
        std::fill(a->data(), a->data() + a->capacity(), std::byte{0xab});  // all of it is ours
    }
}

TEST_CASE("the reference expectation: 32 KiB holds two 10,000-byte blocks, not a third",
          "[pool]")
{
    auto p = pool::create({.size = 32 * 1024});
    auto a = p.try_allocate(10000);
    auto b = p.try_allocate(10000);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->capacity() == 16384);
    CHECK_FALSE(p.try_allocate(5000));
    CHECK(p.stats().free_bytes == 0);
}

TEST_CASE("exhaustion is a value for try_allocate and a timeout for allocate", "[pool]")
{
    auto p = pool::create({.size = 64 * 1024});
    std::vector<allocation> held;
    while (auto a = p.try_allocate(1024)) {
        held.push_back(std::move(*a));
    }
    CHECK(held.size() == 64);
    CHECK_FALSE(p.try_allocate(64));

    const auto t0 = std::chrono::steady_clock::now();
    CHECK(throws_errc(errc::timeout, [&] { (void)p.allocate(1024, 100ms); }));
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 100ms);
    CHECK(waited < 200ms);

    CHECK(throws_errc(errc::timeout, [&] { (void)p.allocate(1024, 0ns); }));
    CHECK(throws_errc(errc::invalid_argument, [&] { (void)p.allocate(1024, -1ns); }));
}

TEST_CASE("a blocked allocate wakes when a block is freed", "[pool]")
{
    auto p = pool::create({.size = 64 * 1024});
    std::vector<allocation> held;
    while (auto a = p.try_allocate(4096)) {
        held.push_back(std::move(*a));
    }
    std::thread freer([&] {
        std::this_thread::sleep_for(50ms);
        held.pop_back();
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto a = p.allocate(4096, 5s);
    const auto waited = std::chrono::steady_clock::now() - t0;
    freer.join();
    CHECK(a.capacity() == 4096);
    CHECK(waited >= 40ms);
    CHECK(waited < 1s);
}

TEST_CASE("a request larger than the pool is an error, not a wait", "[pool]")
{
    auto p = pool::create({.size = 64 * 1024});
    CHECK(throws_errc(errc::invalid_argument, [&] { (void)p.try_allocate(64 * 1024 + 1); }));
    CHECK(throws_errc(errc::invalid_argument,
                      [&] { (void)p.allocate(1 << 30, dragonx::forever); }));
    auto whole = p.try_allocate(64 * 1024);
    CHECK(whole);
}

TEST_CASE("a second free of the same block is refused and harms nothing", "[pool]")
{
    auto p = pool::create({.size = 8 << 20});
    for (std::uint64_t size : {100u, 600000u, 3u << 20}) {  // cached orders, and heap-only
        auto a = p.try_allocate(size);
        REQUIRE(a);
        const auto desc = a->descriptor();
        auto twin = p.attach_allocation(desc);  // two owners of one block: a caller bug
        a->free();
        CHECK(throws_errc(errc::invalid_allocation, [&] { twin.free(); }));
        CHECK(throws_errc(errc::invalid_allocation, [&] { (void)p.attach_allocation(desc); }));
        CHECK(p.stats().free_bytes == p.size());
    }
}

TEST_CASE("release hands ownership on; attach takes it back", "[pool]")
{
    auto p = pool::create({.size = 1 << 20});
    const auto start = p.stats().free_bytes;
    std::string desc;
    {
        auto a = p.allocate(5000, 1s);
        desc = a.release();
        CHECK_FALSE(a);
    }
    CHECK(p.stats().free_bytes == start - 8192);
    {
        auto b = p.attach_allocation(desc);
        CHECK(b.size() == 5000);
    }
    CHECK(p.stats().free_bytes == start);
}

TEST_CASE("free space returns exactly to its start after a fill-and-free cycle", "[pool]")
{
    auto p = pool::create({.size = 3 * 1024 * 1024 + 4096});  // not a power of two
    const auto before = p.stats();
    CHECK(before.total_bytes == 3 * 1024 * 1024 + 4096);
    CHECK(before.free_bytes == before.total_bytes);
    CHECK(before.utilization == Approx(0.0));

    std::vector<allocation> held;
    std::uint64_t taken = 0;
    const std::uint64_t sizes[] = {0, 64, 100, 1000, 5000, 70000, 1 << 20, 2 << 20};
    for (int round = 0; round < 3; ++round) {
        for (auto size : sizes) {
            while (auto a = p.try_allocate(size)) {
                taken += a->capacity();
                held.push_back(std::move(*a));
                if (held.size() % 97 == 0) {
                    break;  // mix the sizes
                }
            }
        }
    }
    const auto full = p.stats();
    CHECK(full.free_bytes == before.total_bytes - taken);
    CHECK(full.utilization > 0.9);

    std::reverse(held.begin(), held.begin() + static_cast<std::ptrdiff_t>(held.size() / 2));
    held.clear();
    const auto after = p.stats();
    CHECK(after.free_bytes == before.free_bytes);
    CHECK(after.utilization == Approx(0.0));

    // And the space is really there again: the largest block can be had.
    CHECK(p.try_allocate(2 << 20));
}

TEST_CASE("stats count free blocks per size class", "[pool]")
{
    auto p = pool::create({.size = 1 << 20});
    const auto fresh = p.stats();
    REQUIRE(fresh.free_blocks.size() == 15);  // 64 B .. 1 MiB
    CHECK(fresh.free_blocks.front().block_size == 64);
    CHECK(fresh.free_blocks.back().block_size == (1 << 20));
    CHECK(fresh.free_blocks.back().free_blocks == 1);

    std::vector<allocation> held;
    for (int i = 0; i < 10; ++i) {
        held.push_back(*p.try_allocate(64));
    }
    held.clear();
    std::uint64_t bytes = 0;
    for (const auto& c : p.stats().free_blocks) {
        bytes += c.block_size * c.free_blocks;
    }
    CHECK(bytes == p.stats().free_bytes);
}

TEST_CASE("allocate and free from many threads at once", "[pool]")
{
    auto p = pool::create({.size = 8 << 20});
    std::vector<std::thread> threads;
    std::atomic<int> bad{0};
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::vector<allocation> held;
            for (int i = 0; i < 20000; ++i) {
                auto a = p.try_allocate(static_cast<std::uint64_t>(64 << (i % 6)));
                if (!a) {
                    held.clear();
                    continue;
                }
                const auto tag = static_cast<std::byte>(t * 50 + i % 50);
                std::fill(a->data(), a->data() + a->capacity(), tag);
                held.push_back(std::move(*a));
                if (held.size() > 8) {
                    const auto& first = held.front();
                    const auto expect = first.data()[0];
                    if (!std::all_of(first.data(), first.data() + first.capacity(),
                                     [&](std::byte b) { return b == expect; })) {
                        ++bad;
                    }
                    held.erase(held.begin());
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    CHECK(bad == 0);
    CHECK(p.stats().free_bytes == p.size());
}
