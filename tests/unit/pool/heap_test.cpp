// heap_test.cpp - the allocator against a model, odd pool sizes, and a lock holder that dies.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include <dragonx/pool/pool.hpp>

#include "support.hpp"

using dragonx::pool::allocation;
using dragonx::pool::pool;
using namespace std::chrono_literals;

TEST_CASE("random allocation and free never overlap and account exactly", "[pool][heap]")
{
    for (std::uint64_t pool_size : {std::uint64_t{1} << 20, std::uint64_t{5} << 20 | 12288}) {
        auto p = pool::create({.size = pool_size});
        std::mt19937_64 rng(pool_size);
        std::map<std::uint64_t, allocation> live;  // offset -> block
        std::uint64_t used = 0;
        for (int step = 0; step < 50000; ++step) {
            if (live.empty() || rng() % 100 < 55) {
                // Mostly small blocks, sometimes past the cached sizes.
                const std::uint64_t size = rng() % 50 == 0 ? (rng() % (3 << 20)) : rng() % 5000;
                auto a = p.try_allocate(std::min(size, p.size()));
                if (!a) {
                    continue;
                }
                REQUIRE(a->offset() + a->capacity() <= p.size());  // never the reserved tail
                auto next = live.lower_bound(a->offset());
                if (next != live.end()) {
                    REQUIRE(a->offset() + a->capacity() <= next->first);
                }
                if (next != live.begin()) {
                    auto prev = std::prev(next);
                    REQUIRE(prev->first + prev->second.capacity() <= a->offset());
                }
                used += a->capacity();
                live.emplace(a->offset(), std::move(*a));
            } else {
                auto it = live.begin();
                std::advance(it, static_cast<long>(rng() % live.size()));
                used -= it->second.capacity();
                live.erase(it);
            }
            if (step % 997 == 0) {
                REQUIRE(p.stats().free_bytes == p.size() - used);
            }
        }
        live.clear();
        REQUIRE(p.stats().free_bytes == p.size());
        // After draining, the heap coalesces back to its largest blocks.
        auto big = p.try_allocate(std::uint64_t{1} << 20);
        CHECK(big);
    }
}

TEST_CASE("a process killed while holding the heap lock does not stop the others",
          "[pool][heap][multiprocess]")
{
    auto p = pool::create({.size = 16 << 20});
    const auto desc = p.descriptor();
    std::vector<allocation> held;
    held.push_back(*p.try_allocate(3 << 20));  // heap-only sizes
    held.push_back(*p.try_allocate(100));
    const auto free_before = p.stats().free_bytes;

    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    dragonx::test::child victim([&] {
        auto q = pool::attach(desc);
        dragonx::pool::detail::lock_forever_for_test(q);
        const char c = 'x';
        (void)!::write(ready[1], &c, 1);
        ::pause();  // holds the lock until killed
        return true;
    });
    char c = 0;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    ::close(ready[1]);
    victim.kill();

    // The next locker finds the owner dead, rebuilds, and everything still adds up.
    auto a = p.allocate(3 << 20, 2s);
    const auto s = p.stats();
    CHECK(s.recoveries == 1);
    CHECK(s.free_bytes == free_before - (4 << 20));
    held.clear();
    a.free();
    CHECK(p.stats().free_bytes == p.size());
    CHECK(p.try_allocate(8 << 20));
}
