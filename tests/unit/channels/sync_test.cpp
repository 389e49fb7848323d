// sync_test.cpp - event, semaphore and barrier: their states, timeouts, descriptors, lifetime,
// and their use by threads and by processes, including processes killed while using them.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <dragonx/channels/barrier.hpp>
#include <dragonx/channels/channel.hpp>
#include <dragonx/channels/event.hpp>
#include <dragonx/channels/semaphore.hpp>
#include <dragonx/common/error.hpp>

#include "support.hpp"

using dragonx::barrier;
using dragonx::errc;
using dragonx::event;
using dragonx::semaphore;
using dragonx::pool::pool;
using dragonx::test::child;
using dragonx::test::errc_of;
using dragonx::test::shared_object;
using namespace std::chrono_literals;

static_assert(std::is_nothrow_move_constructible_v<event>);
static_assert(!std::is_copy_constructible_v<semaphore>);

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0)
{
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// What f() threw (errc::ok if nothing) and how long it took, in milliseconds.
struct outcome {
    errc code;
    double ms;
};

template <class F>
outcome timed(F&& f)
{
    const auto t0 = clock_type::now();
    const auto code = errc_of(f);
    return {code, ms_since(t0)};
}

// Polls pred() until it holds; false if it still did not after `limit`.
template <class P>
bool eventually(P&& pred, std::chrono::milliseconds limit = 5s)
{
    const auto until = clock_type::now() + limit;
    while (!pred()) {
        if (clock_type::now() >= until) {
            return false;
        }
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

bool exited_ok(const std::optional<int>& status)
{
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// event

TEST_CASE("event: starts clear; set, clear and is_set are seen through every handle", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ev = event::create(p);
    REQUIRE(ev);
    CHECK(ev.owner());
    CHECK_FALSE(ev.is_set());
    auto other = event::attach(ev.descriptor());
    CHECK_FALSE(other.owner());
    CHECK_FALSE(other.is_set());

    ev.set();
    CHECK(ev.is_set());
    CHECK(other.is_set());
    ev.set();  // idempotent
    CHECK(other.is_set());
    other.clear();
    CHECK_FALSE(ev.is_set());
    CHECK_FALSE(other.is_set());
    other.clear();
    CHECK_FALSE(ev.is_set());
    other.set();
    CHECK(ev.is_set());
}

TEST_CASE("event: wait returns at once when set and false at its timeout when clear", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ev = event::create(p);

    bool got = false;
    auto o = timed([&] { got = ev.wait(20ms); });
    CHECK(o.code == errc::ok);
    CHECK_FALSE(got);
    CHECK(o.ms >= 20.0);
    CHECK(o.ms < 200.0);

    got = true;
    o = timed([&] { got = ev.wait(0ns); });
    CHECK(o.code == errc::ok);
    CHECK_FALSE(got);
    CHECK(o.ms < 100.0);

    ev.set();
    got = false;
    o = timed([&] { got = ev.wait(5s); });
    CHECK(o.code == errc::ok);
    CHECK(got);
    CHECK(o.ms < 100.0);
    got = false;
    CHECK(errc_of([&] { got = ev.wait(0ns); }) == errc::ok);
    CHECK(got);
    CHECK(ev.is_set());  // waiting does not consume the flag

    CHECK(errc_of([&] { (void)ev.wait(-1ns); }) == errc::invalid_argument);
    ev.clear();
    CHECK(errc_of([&] { (void)ev.wait(-1ms); }) == errc::invalid_argument);
}

TEST_CASE("event: waiters in other processes wake when it is set", "[sync][multiprocess]")
{
    constexpr int n = 3;
    struct shared {
        std::atomic<int> waiting;
        std::array<std::atomic<std::int64_t>, n> waited_us;
    };
    shared_object<shared> sh;
    auto p = pool::create({.size = 1 << 20});
    auto ev = event::create(p);
    const auto desc = ev.descriptor();

    std::vector<std::unique_ptr<child>> children;
    for (int i = 0; i < n; ++i) {
        children.push_back(std::make_unique<child>([&, i] {
            auto e = event::attach(desc);
            if (e.is_set()) {
                return false;
            }
            const auto t0 = clock_type::now();
            sh->waiting.fetch_add(1);
            const bool woke = e.wait(5s);
            sh->waited_us[i] =
                std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0)
                    .count();
            return woke && e.is_set();
        }));
    }
    CHECK(eventually([&] { return sh->waiting.load() == n; }));
    std::this_thread::sleep_for(30ms);
    CHECK_FALSE(ev.is_set());
    ev.set();
    for (int i = 0; i < n; ++i) {
        CHECK(exited_ok(children[i]->wait_for(10s)));
        // It really waited for the parent: set() came 30 ms after it started waiting.
        CHECK(sh->waited_us[i].load() >= 30'000);
        CHECK(sh->waited_us[i].load() < 4'000'000);
    }
}

TEST_CASE("event: destroy wakes a waiter in another process with not_found", "[sync][multiprocess]")
{
    struct shared {
        std::atomic<int> waiting;
        std::atomic<int> code;
        std::atomic<std::int64_t> waited_ms;
    };
    shared_object<shared> sh;
    auto p = pool::create({.size = 1 << 20});
    const auto start_free = p.stats().free_bytes;
    auto ev = event::create(p);
    const auto desc = ev.descriptor();
    auto other = event::attach(desc);

    child c([&] {
        auto e = event::attach(desc);
        const auto t0 = clock_type::now();
        sh->waiting = 1;
        const auto code = errc_of([&] { (void)e.wait(5s); });
        sh->waited_ms = static_cast<std::int64_t>(ms_since(t0));
        sh->code = static_cast<int>(code);
        return code == errc::not_found;
    });
    CHECK(eventually([&] { return sh->waiting.load() == 1; }));
    std::this_thread::sleep_for(30ms);
    ev.destroy();
    CHECK_FALSE(ev);
    const auto status = c.wait_for(10s);
    CHECK(exited_ok(status));
    CHECK(static_cast<errc>(sh->code.load()) == errc::not_found);
    CHECK(sh->waited_ms.load() < 4000);

    std::string what;
    CHECK(errc_of([&] { (void)event::attach(desc); }, &what) == errc::not_found);
    CHECK_THAT(what, Catch::Contains("destroyed"));
    CHECK(errc_of([&] { (void)other.is_set(); }) == errc::not_found);
    CHECK(errc_of([&] { other.set(); }) == errc::not_found);
    CHECK(errc_of([&] { (void)other.wait(1s); }) == errc::not_found);
    CHECK(errc_of([&] { other.destroy(); }) == errc::not_found);
    CHECK(p.stats().free_bytes == start_free);
}

TEST_CASE("attach checks the kind of object and the descriptor", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ev = event::create(p);
    auto sem = semaphore::create(p);
    auto bar = barrier::create(p, 2);

    std::string what;
    CHECK(errc_of([&] { (void)event::attach(sem.descriptor()); }, &what) ==
          errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("semaphore"));
    CHECK(errc_of([&] { (void)event::attach(bar.descriptor()); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)semaphore::attach(ev.descriptor()); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)semaphore::attach(bar.descriptor()); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)barrier::attach(ev.descriptor()); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)barrier::attach(sem.descriptor()); }) == errc::invalid_argument);

    const auto d = ev.descriptor();
    CHECK(errc_of([&] { (void)event::attach(""); }) == errc::malformed_descriptor);
    CHECK(errc_of([&] { (void)event::attach("garbage"); }) == errc::malformed_descriptor);
    CHECK(errc_of([&] { (void)event::attach("garbage!"); }) == errc::malformed_descriptor);
    for (std::size_t n = 0; n < d.size(); ++n) {
        CHECK(errc_of([&] { (void)event::attach(d.substr(0, n)); }) ==
              errc::malformed_descriptor);
    }
    auto corrupt = d;
    corrupt[d.size() / 2] = corrupt[d.size() / 2] == 'A' ? 'B' : 'A';
    CHECK(errc_of([&] { (void)event::attach(corrupt); }) == errc::malformed_descriptor);
    CHECK(errc_of([&] { (void)event::attach(d + "AAAA"); }) == errc::malformed_descriptor);

    auto ch = dragonx::channels::channel::create(p, {.capacity = 4, .block_size = 64});
    CHECK(errc_of([&] { (void)event::attach(ch.descriptor()); }) == errc::malformed_descriptor);
    CHECK(errc_of([&] { (void)semaphore::attach(ch.descriptor()); }) ==
          errc::malformed_descriptor);
    CHECK(errc_of([&] { (void)barrier::attach(p.descriptor()); }) == errc::malformed_descriptor);

    std::mt19937_64 rng(11);
    for (int i = 0; i < 1000; ++i) {
        std::string s(rng() % 120, 'A');
        for (auto& c : s) {
            c = static_cast<char>(rng() % 256);
        }
        const auto e = errc_of([&] { (void)semaphore::attach(s); });
        CHECK((e == errc::malformed_descriptor || e == errc::version_mismatch));
    }

    // The real descriptors still work after all that.
    CHECK(event::attach(d).descriptor() == d);
    CHECK(semaphore::attach(sem.descriptor()).value() == 1);
    CHECK(barrier::attach(bar.descriptor()).parties() == 2);
}

TEST_CASE("attach from another run or node is refused", "[sync][multiprocess]")
{
    struct shared {
        std::atomic<int> other_node;
        std::atomic<int> other_run;
    };
    shared_object<shared> sh;
    auto p = pool::create({.size = 1 << 20});
    auto ev = event::create(p);
    auto sem = semaphore::create(p);
    const auto ev_desc = ev.descriptor();
    const auto sem_desc = sem.descriptor();
    // In a child, so that the test process keeps its own identity.
    child c([&] {
        ::setenv("DRAGONX_NODE", "1", 1);
        sh->other_node = static_cast<int>(errc_of([&] { (void)event::attach(ev_desc); }));
        ::setenv("DRAGONX_NODE", "0", 1);
        ::setenv("DRAGONX_RUN", "someotherrun", 1);
        sh->other_run = static_cast<int>(errc_of([&] { (void)semaphore::attach(sem_desc); }));
        return true;
    });
    CHECK(exited_ok(c.wait_for(10s)));
    CHECK(static_cast<errc>(sh->other_node.load()) == errc::not_local);
    CHECK(static_cast<errc>(sh->other_run.load()) == errc::wrong_run);
}

TEST_CASE("empty handles, owners and disown", "[sync]")
{
    event e;
    semaphore s;
    barrier b;
    CHECK_FALSE(e);
    CHECK_FALSE(s);
    CHECK_FALSE(b);
    CHECK(errc_of([&] { e.set(); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)e.descriptor(); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)s.value(); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)b.wait(1s); }) == errc::invalid_argument);
    CHECK(errc_of([&] { b.destroy(); }) == errc::invalid_argument);

    auto p = pool::create({.size = 1 << 20});
    const auto start_free = p.stats().free_bytes;
    std::string desc;
    {
        auto owner = semaphore::create(p, {.value = 5});
        desc = owner.descriptor();
        {
            auto other = semaphore::attach(desc);
            CHECK_FALSE(other.owner());
            CHECK(other.try_acquire());
        }  // not the owner: the semaphore stays
        CHECK(owner.value() == 4);
        CHECK(semaphore::attach(desc).value() == 4);
        CHECK(p.stats().free_bytes < start_free);
        // A move hands the ownership over.
        auto moved = std::move(owner);
        CHECK(moved.owner());
        CHECK(moved.value() == 4);
    }  // the owner's handle destroys it
    CHECK(errc_of([&] { (void)semaphore::attach(desc); }) == errc::not_found);
    CHECK(p.stats().free_bytes == start_free);

    {
        auto disowned = barrier::create(p, 3);
        desc = disowned.descriptor();
        disowned.disown();
        CHECK_FALSE(disowned.owner());
    }
    {
        auto again = barrier::attach(desc);  // still there
        CHECK(again.parties() == 3);
        again.destroy();
        CHECK_FALSE(again);
    }
    CHECK(errc_of([&] { (void)barrier::attach(desc); }) == errc::not_found);
    CHECK(p.stats().free_bytes == start_free);
}

TEST_CASE("destroy wakes semaphore and barrier waiters with not_found", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto sem = semaphore::create(p, {.value = 0});
    auto bar = barrier::create(p, 2);
    auto sem2 = semaphore::attach(sem.descriptor());
    auto bar2 = barrier::attach(bar.descriptor());
    outcome sem_out{};
    outcome bar_out{};
    std::thread t1([&] { sem_out = timed([&] { sem2.acquire(5s); }); });
    std::thread t2([&] { bar_out = timed([&] { (void)bar2.wait(5s); }); });
    CHECK(eventually([&] { return bar.n_waiting() == 1; }));
    std::this_thread::sleep_for(30ms);
    sem.destroy();
    bar.destroy();
    t1.join();
    t2.join();
    CHECK(sem_out.code == errc::not_found);
    CHECK(sem_out.ms < 4000.0);
    CHECK(bar_out.code == errc::not_found);
    CHECK(bar_out.ms < 4000.0);
}

// ---------------------------------------------------------------------------------------------
// semaphore

TEST_CASE("semaphore: initial value, try_acquire and release", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    CHECK(errc_of([&] { (void)semaphore::create(p, {.value = -1}); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)semaphore::create(p, {.value = -1, .bounded = true}); }) ==
          errc::invalid_argument);

    auto zero = semaphore::create(p, {.value = 0});
    CHECK(zero.value() == 0);
    CHECK_FALSE(zero.try_acquire());
    CHECK(zero.value() == 0);

    auto s = semaphore::create(p, {.value = 3});
    CHECK_FALSE(s.bounded());
    CHECK(s.value() == 3);
    for (std::int64_t left = 2; left >= 0; --left) {
        CHECK(s.try_acquire());
        CHECK(s.value() == left);
    }
    CHECK_FALSE(s.try_acquire());
    CHECK_FALSE(s.try_acquire());
    CHECK(s.value() == 0);

    CHECK(errc_of([&] { s.release(0); }) == errc::invalid_argument);
    CHECK(errc_of([&] { s.release(-1); }) == errc::invalid_argument);
    CHECK(s.value() == 0);

    auto other = semaphore::attach(s.descriptor());
    CHECK_FALSE(other.bounded());
    other.release(2);
    CHECK(s.value() == 2);
    // Unbounded: it grows past its initial value.
    s.release(10);
    CHECK(other.value() == 12);
    s.release();
    CHECK(s.value() == 13);
    // ... but never overflows.
    CHECK(errc_of([&] { s.release(std::numeric_limits<std::int64_t>::max()); }) ==
          errc::invalid_argument);
    CHECK(s.value() == 13);
    CHECK(other.try_acquire());
    CHECK(s.value() == 12);
}

TEST_CASE("semaphore: a bounded semaphore never holds more than its initial value", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto s = semaphore::create(p, {.value = 2, .bounded = true});
    CHECK(s.bounded());
    CHECK(semaphore::attach(s.descriptor()).bounded());
    CHECK(errc_of([&] { s.release(); }) == errc::invalid_argument);
    CHECK(s.value() == 2);

    CHECK(s.try_acquire());
    CHECK(s.try_acquire());
    CHECK(s.value() == 0);
    std::string what;
    CHECK(errc_of([&] { s.release(3); }, &what) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("bound"));
    CHECK(s.value() == 0);
    s.release(2);
    CHECK(s.value() == 2);
    CHECK(errc_of([&] { s.release(1); }) == errc::invalid_argument);
    CHECK(s.value() == 2);
    CHECK(s.try_acquire());
    s.release();
    CHECK(s.value() == 2);

    auto none = semaphore::create(p, {.value = 0, .bounded = true});
    CHECK(none.bounded());
    CHECK(errc_of([&] { none.release(); }) == errc::invalid_argument);
    CHECK(none.value() == 0);
}

TEST_CASE("semaphore: acquire waits up to its timeout", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto s = semaphore::create(p, {.value = 0});

    auto o = timed([&] { s.acquire(20ms); });
    CHECK(o.code == errc::timeout);
    CHECK(o.ms >= 20.0);
    CHECK(o.ms < 200.0);
    o = timed([&] { s.acquire(0ns); });
    CHECK(o.code == errc::timeout);
    CHECK(o.ms < 100.0);
    CHECK(errc_of([&] { s.acquire(-1ns); }) == errc::invalid_argument);
    CHECK(s.value() == 0);

    s.release();
    CHECK(errc_of([&] { s.acquire(-1ns); }) == errc::invalid_argument);
    CHECK(s.value() == 1);  // a refused acquire takes nothing
    o = timed([&] { s.acquire(5s); });
    CHECK(o.code == errc::ok);
    CHECK(o.ms < 100.0);
    CHECK(s.value() == 0);
    s.release();
    CHECK(errc_of([&] { s.acquire(0ns); }) == errc::ok);
    CHECK(s.value() == 0);
}

TEST_CASE("semaphore: a blocked acquirer in another process wakes on release",
          "[sync][multiprocess]")
{
    struct shared {
        std::atomic<int> waiting;
        std::atomic<std::int64_t> waited_us;
    };
    shared_object<shared> sh;
    auto p = pool::create({.size = 1 << 20});
    auto s = semaphore::create(p, {.value = 0});
    const auto desc = s.descriptor();

    child c([&] {
        auto mine = semaphore::attach(desc);
        const auto t0 = clock_type::now();
        sh->waiting = 1;
        mine.acquire(5s);  // throws errc::timeout (exit 2) if the release never wakes it
        sh->waited_us =
            std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count();
        return true;
    });
    CHECK(eventually([&] { return sh->waiting.load() == 1; }));
    std::this_thread::sleep_for(30ms);
    CHECK(s.value() == 0);
    s.release();
    CHECK(exited_ok(c.wait_for(10s)));
    CHECK(sh->waited_us.load() >= 30'000);
    CHECK(sh->waited_us.load() < 4'000'000);
    CHECK(s.value() == 0);  // the child took the permit with it
}

namespace {

struct exclusion_state {
    std::atomic<int> go;
    std::atomic<int> inside;
    std::atomic<int> most_inside;
    std::atomic<int> overlaps;
    std::atomic<std::int64_t> total;
    std::uint64_t plain_counter;  // changed only under the semaphore when permits == 1
};

// `procs` processes each take a permit `rounds` times: never more than `permits` inside.
void check_exclusion(std::int64_t permits, int procs, int rounds)
{
    shared_object<exclusion_state> sh;
    auto p = pool::create({.size = 1 << 20});
    auto s = semaphore::create(p, {.value = permits});
    const auto desc = s.descriptor();

    std::vector<std::unique_ptr<child>> children;
    for (int i = 0; i < procs; ++i) {
        children.push_back(std::make_unique<child>([&] {
            auto mine = semaphore::attach(desc);
            while (sh->go.load() == 0) {
                std::this_thread::yield();
            }
            for (int r = 0; r < rounds; ++r) {
                mine.acquire(5s);
                const int now = sh->inside.fetch_add(1) + 1;
                if (now > permits) {
                    sh->overlaps.fetch_add(1);
                }
                int most = sh->most_inside.load();
                while (now > most && !sh->most_inside.compare_exchange_weak(most, now)) {
                }
                if (permits == 1) {
                    // A read-modify-write that another holder would tear.
                    const auto v = sh->plain_counter;
                    if (r % 64 == 0) {
                        std::this_thread::yield();
                    }
                    sh->plain_counter = v + 1;
                }
                sh->total.fetch_add(1);
                sh->inside.fetch_sub(1);
                mine.release();
            }
            return true;
        }));
    }
    sh->go = 1;
    for (auto& c : children) {
        CHECK(exited_ok(c->wait_for(60s)));
    }
    CHECK(sh->overlaps.load() == 0);
    CHECK(sh->most_inside.load() <= permits);
    CHECK(sh->most_inside.load() >= 1);
    CHECK(sh->inside.load() == 0);
    CHECK(sh->total.load() == std::int64_t{procs} * rounds);
    if (permits == 1) {
        CHECK(sh->plain_counter == std::uint64_t(procs) * rounds);
    }
    CHECK(s.value() == permits);
}

}  // namespace

TEST_CASE("semaphore: mutual exclusion between processes", "[sync][multiprocess]")
{
    SECTION("one permit")
    {
        check_exclusion(1, 4, 2000);
    }
    SECTION("two permits")
    {
        check_exclusion(2, 4, 1000);
    }
}

TEST_CASE("semaphore: a process killed while holding or waiting breaks nothing",
          "[sync][multiprocess]")
{
    struct shared {
        std::atomic<int> holding;
        std::atomic<int> waiting;
        std::array<std::atomic<std::int64_t>, 3> laps;
    };
    shared_object<shared> sh;
    auto p = pool::create({.size = 1 << 20});
    auto s = semaphore::create(p, {.value = 2});
    const auto desc = s.descriptor();

    // A holder killed: its permit is gone, the rest works.
    {
        child holder([&] {
            auto mine = semaphore::attach(desc);
            mine.acquire(5s);
            sh->holding = 1;
            std::this_thread::sleep_for(60s);
            return true;
        });
        CHECK(eventually([&] { return sh->holding.load() == 1; }));
        CHECK(s.value() == 1);
        holder.kill();
    }
    CHECK(s.value() == 1);
    {
        child other([&] {
            auto mine = semaphore::attach(desc);
            mine.acquire(5s);
            mine.release();
            return mine.value() >= 1;
        });
        CHECK(exited_ok(other.wait_for(10s)));
    }
    CHECK(s.value() == 1);
    CHECK(s.try_acquire());
    CHECK_FALSE(s.try_acquire());
    CHECK(s.value() == 0);

    // A waiter killed while asleep in acquire: a later release still goes to live acquirers.
    {
        child waiter([&] {
            auto mine = semaphore::attach(desc);
            sh->waiting = 1;
            mine.acquire(60s);
            return true;
        });
        CHECK(eventually([&] { return sh->waiting.load() == 1; }));
        std::this_thread::sleep_for(30ms);  // long enough to be asleep on the futex
        waiter.kill();
    }
    CHECK(s.value() == 0);
    outcome o{};
    std::thread t([&] { o = timed([&] { s.acquire(5s); }); });
    std::this_thread::sleep_for(20ms);
    s.release();
    t.join();
    CHECK(o.code == errc::ok);
    CHECK(o.ms < 4000.0);
    CHECK(s.value() == 0);
    s.release();
    CHECK(s.value() == 1);

    // Killed at random points of a busy acquire/release loop: the count stays in range.
    s.release(2);  // 3 permits now
    {
        std::vector<std::unique_ptr<child>> children;
        for (int i = 0; i < 3; ++i) {
            children.push_back(std::make_unique<child>([&, i] {
                auto mine = semaphore::attach(desc);
                for (;;) {
                    mine.acquire(5s);
                    sh->laps[i].fetch_add(1);
                    mine.release();
                }
                return true;
            }));
        }
        std::mt19937 rng(5);
        for (int i = 0; i < 3; ++i) {
            CHECK(eventually([&] { return sh->laps[i].load() >= 100; }, 10s));
        }
        for (auto& c : children) {
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
            c->kill();
        }
    }
    const auto left = s.value();
    CHECK(left >= 0);  // at most one permit lost per killed process
    CHECK(left <= 3);
    for (std::int64_t i = 0; i < left; ++i) {
        CHECK(s.try_acquire());
    }
    CHECK_FALSE(s.try_acquire());
    CHECK(s.value() == 0);
    s.release(left + 1);
    CHECK(s.value() == left + 1);
    CHECK(errc_of([&] { s.acquire(1s); }) == errc::ok);
    CHECK(s.value() == left);
}

// ---------------------------------------------------------------------------------------------
// barrier

TEST_CASE("barrier: parties are checked; a one-party barrier never waits", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    CHECK(errc_of([&] { (void)barrier::create(p, 0); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)barrier::create(p, -1); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)barrier::create(p, (std::int64_t{1} << 31) + 1); }) ==
          errc::invalid_argument);
    {
        auto big = barrier::create(p, std::int64_t{1} << 31);
        CHECK(big.parties() == (std::uint32_t{1} << 31));
    }

    int actions = 0;
    auto b = barrier::create(p, 1, [&] { ++actions; });
    CHECK(b.parties() == 1);
    for (int round = 0; round < 5; ++round) {
        std::uint32_t index = 99;
        const auto o = timed([&] { index = b.wait(5s); });
        CHECK(o.code == errc::ok);
        CHECK(index == 0);
        CHECK(o.ms < 100.0);
        CHECK(b.wait(0ns) == 0);
        CHECK(b.n_waiting() == 0);
        CHECK_FALSE(b.broken());
    }
    CHECK(actions == 10);
    CHECK(errc_of([&] { (void)b.wait(-1ns); }) == errc::invalid_argument);

    auto two = barrier::create(p, 2);
    CHECK(errc_of([&] { (void)two.wait(-1ns); }) == errc::invalid_argument);
    CHECK(two.n_waiting() == 0);  // a refused wait did not arrive
    CHECK_FALSE(two.broken());
}

TEST_CASE("barrier: four processes, fifty rounds, each round a permutation of indices",
          "[sync][multiprocess]")
{
    constexpr int parties = 4;
    constexpr int rounds = 50;
    struct shared {
        std::array<std::atomic<int>, rounds> arrivals;
        std::array<std::atomic<int>, rounds> departures;
        std::array<std::array<int, parties>, rounds> index;
        std::atomic<int> early;     // left a round before every party arrived
        std::atomic<int> overlaps;  // arrived in round r + 1 before round r was left by all
    };
    shared_object<shared> sh;
    for (auto& r : sh->index) {
        r.fill(-1);
    }
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, parties);
    const auto desc = b.descriptor();

    std::vector<std::unique_ptr<child>> children;
    for (int k = 0; k < parties; ++k) {
        children.push_back(std::make_unique<child>([&, k] {
            auto mine = barrier::attach(desc);
            for (int r = 0; r < rounds; ++r) {
                sh->arrivals[r].fetch_add(1);
                const auto i = mine.wait(5s);
                if (i >= parties) {
                    return false;
                }
                sh->index[r][k] = static_cast<int>(i);
                if (sh->arrivals[r].load() != parties) {
                    sh->early.fetch_add(1);
                }
                // Everyone arrived in round r, so everyone had left round r - 1.
                if (r > 0 && sh->departures[r - 1].load() != parties) {
                    sh->overlaps.fetch_add(1);
                }
                sh->departures[r].fetch_add(1);
            }
            return true;
        }));
    }
    for (auto& c : children) {
        CHECK(exited_ok(c->wait_for(60s)));
    }
    CHECK(sh->early.load() == 0);
    CHECK(sh->overlaps.load() == 0);
    const std::array<int, parties> all{0, 1, 2, 3};
    for (int r = 0; r < rounds; ++r) {
        INFO("round " << r);
        auto got = sh->index[r];
        std::sort(got.begin(), got.end());
        CHECK(got == all);
        CHECK(sh->departures[r].load() == parties);
    }
    CHECK(b.n_waiting() == 0);
    CHECK_FALSE(b.broken());
}

TEST_CASE("barrier: the last arrival runs the action before anyone leaves", "[sync]")
{
    constexpr int parties = 4;
    constexpr int rounds = 20;
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, parties);
    std::atomic<int> calls{0};
    std::atomic<int> early{0};
    std::atomic<int> wrong_runner{0};
    std::array<std::atomic<int>, rounds> departures{};
    std::array<int, rounds> runner{};
    runner.fill(-1);
    std::array<std::array<std::uint32_t, parties>, rounds> index{};

    std::vector<barrier> handles;
    for (int k = 0; k < parties; ++k) {
        handles.push_back(barrier::attach(b.descriptor(), [&, k] {
            const int r = calls.fetch_add(1);
            if (r < rounds) {
                runner[r] = k;
                if (departures[r].load() != 0) {
                    early.fetch_add(1);
                }
            }
        }));
    }
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int k = 0; k < parties; ++k) {
        threads.emplace_back([&, k] {
            try {
                for (int r = 0; r < rounds; ++r) {
                    const auto i = handles[k].wait(5s);
                    index[r][k] = i;
                    if (i == parties - 1 && runner[r] != k) {
                        wrong_runner.fetch_add(1);
                    }
                    departures[r].fetch_add(1);
                }
            } catch (...) {
                failures.fetch_add(1);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK(failures.load() == 0);
    CHECK(calls.load() == rounds);
    CHECK(early.load() == 0);
    CHECK(wrong_runner.load() == 0);
    for (int r = 0; r < rounds; ++r) {
        auto got = index[r];
        std::sort(got.begin(), got.end());
        CHECK(got == (std::array<std::uint32_t, parties>{0, 1, 2, 3}));
    }
}

TEST_CASE("barrier: abort breaks it for current and later waiters until reset", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, 2);
    auto other = barrier::attach(b.descriptor());

    outcome o{};
    std::thread t([&] { o = timed([&] { (void)other.wait(5s); }); });
    CHECK(eventually([&] { return b.n_waiting() == 1; }));
    CHECK_FALSE(b.broken());
    b.abort();
    t.join();
    CHECK(o.code == errc::broken_barrier);
    CHECK(o.ms < 2000.0);  // woken by abort(), not by its own timeout
    CHECK(b.broken());
    CHECK(other.broken());

    auto later = timed([&] { (void)b.wait(5s); });
    CHECK(later.code == errc::broken_barrier);
    CHECK(later.ms < 100.0);
    CHECK(errc_of([&] { (void)other.wait(0ns); }) == errc::broken_barrier);
    CHECK(b.broken());

    b.reset();
    CHECK_FALSE(b.broken());
    CHECK(b.n_waiting() == 0);
    std::uint32_t i1 = 9;
    std::uint32_t i2 = 9;
    errc c1 = errc::internal;
    std::thread t2([&] { c1 = errc_of([&] { i1 = other.wait(5s); }); });
    const auto c2 = errc_of([&] { i2 = b.wait(5s); });
    t2.join();
    CHECK(c1 == errc::ok);
    CHECK(c2 == errc::ok);
    CHECK(std::min(i1, i2) == 0);
    CHECK(std::max(i1, i2) == 1);

    // abort() with nobody waiting breaks it as well.
    other.abort();
    CHECK(b.broken());
    CHECK(errc_of([&] { (void)b.wait(1s); }) == errc::broken_barrier);
    other.reset();
    CHECK_FALSE(b.broken());
}

TEST_CASE("barrier: reset breaks the current round only", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, 3);
    auto h1 = barrier::attach(b.descriptor());
    auto h2 = barrier::attach(b.descriptor());

    for (int attempt = 0; attempt < 2; ++attempt) {
        outcome o1{};
        outcome o2{};
        std::thread t1([&] { o1 = timed([&] { (void)h1.wait(5s); }); });
        std::thread t2([&] { o2 = timed([&] { (void)h2.wait(5s); }); });
        CHECK(eventually([&] { return b.n_waiting() == 2; }));
        b.reset();
        t1.join();
        t2.join();
        CHECK(o1.code == errc::broken_barrier);
        CHECK(o2.code == errc::broken_barrier);
        CHECK(o1.ms < 2000.0);
        CHECK(o2.ms < 2000.0);
        CHECK_FALSE(b.broken());
        CHECK(b.n_waiting() == 0);

        // The next round is a full, ordinary one.
        std::uint32_t i1 = 9;
        std::uint32_t i2 = 9;
        std::thread t3([&] { (void)errc_of([&] { i1 = h1.wait(5s); }); });
        std::thread t4([&] { (void)errc_of([&] { i2 = h2.wait(5s); }); });
        CHECK(eventually([&] { return b.n_waiting() == 2; }));
        std::uint32_t i3 = 9;
        CHECK(errc_of([&] { i3 = b.wait(5s); }) == errc::ok);
        t3.join();
        t4.join();
        CHECK(i3 == 2);
        CHECK(std::min(i1, i2) == 0);
        CHECK(std::max(i1, i2) == 1);
        CHECK_FALSE(b.broken());
    }
}

TEST_CASE("barrier: a wait that times out breaks the barrier", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    {
        auto b = barrier::create(p, 2);
        const auto o = timed([&] { (void)b.wait(20ms); });
        CHECK(o.code == errc::timeout);
        CHECK(o.ms >= 20.0);
        CHECK(o.ms < 200.0);
        CHECK(b.broken());
        const auto later = timed([&] { (void)b.wait(5s); });
        CHECK(later.code == errc::broken_barrier);
        CHECK(later.ms < 100.0);
        b.reset();
        CHECK_FALSE(b.broken());
        auto other = barrier::attach(b.descriptor());
        std::uint32_t i1 = 9;
        std::uint32_t i2 = 9;
        std::thread t([&] { (void)errc_of([&] { i1 = other.wait(5s); }); });
        CHECK(errc_of([&] { i2 = b.wait(5s); }) == errc::ok);
        t.join();
        CHECK(std::min(i1, i2) == 0);
        CHECK(std::max(i1, i2) == 1);
    }
    {
        // With three parties, one already waiting is released as broken by the timeout.
        auto b = barrier::create(p, 3);
        auto other = barrier::attach(b.descriptor());
        outcome waiter{};
        std::thread t([&] { waiter = timed([&] { (void)other.wait(5s); }); });
        CHECK(eventually([&] { return b.n_waiting() == 1; }));
        const auto o = timed([&] { (void)b.wait(20ms); });
        t.join();
        CHECK(o.code == errc::timeout);
        CHECK(o.ms >= 20.0);
        CHECK(o.ms < 200.0);
        CHECK(waiter.code == errc::broken_barrier);
        CHECK(waiter.ms < 2000.0);
        CHECK(b.broken());
    }
}

TEST_CASE("barrier: an action that throws goes to the last arrival; the others are broken",
          "[sync]")
{
    constexpr int parties = 3;
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, parties);
    std::atomic<int> calls{0};
    std::vector<barrier> handles;
    for (int k = 0; k < parties; ++k) {
        handles.push_back(barrier::attach(b.descriptor(), [&] {
            if (calls.fetch_add(1) == 0) {
                throw std::runtime_error("action failed");
            }
        }));
    }

    std::atomic<int> runtime_errors{0};
    std::atomic<int> broken{0};
    std::atomic<int> other{0};
    std::array<std::uint32_t, parties> index{};
    const auto run_round = [&] {
        std::vector<std::thread> threads;
        for (int k = 0; k < parties; ++k) {
            threads.emplace_back([&, k] {
                try {
                    index[k] = handles[k].wait(5s);
                } catch (const dragonx::error& e) {
                    (e.is(errc::broken_barrier) ? broken : other).fetch_add(1);
                } catch (const std::runtime_error& e) {
                    (std::string(e.what()) == "action failed" ? runtime_errors : other)
                        .fetch_add(1);
                } catch (...) {
                    other.fetch_add(1);
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
    };

    run_round();
    CHECK(calls.load() == 1);
    CHECK(runtime_errors.load() == 1);
    CHECK(broken.load() == parties - 1);
    CHECK(other.load() == 0);
    CHECK(b.broken());

    b.reset();
    CHECK_FALSE(b.broken());
    runtime_errors = 0;
    broken = 0;
    index.fill(99);
    run_round();
    CHECK(calls.load() == 2);
    CHECK(runtime_errors.load() == 0);
    CHECK(broken.load() == 0);
    CHECK(other.load() == 0);
    auto got = index;
    std::sort(got.begin(), got.end());
    CHECK(got == (std::array<std::uint32_t, parties>{0, 1, 2}));
}

TEST_CASE("barrier: n_waiting counts the waiters of the current round", "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, 3);
    auto h1 = barrier::attach(b.descriptor());
    auto h2 = barrier::attach(b.descriptor());
    CHECK(b.n_waiting() == 0);
    CHECK(h1.parties() == 3);

    std::uint32_t i1 = 9;
    std::uint32_t i2 = 9;
    std::thread t1([&] { (void)errc_of([&] { i1 = h1.wait(5s); }); });
    CHECK(eventually([&] { return b.n_waiting() == 1; }));
    std::this_thread::sleep_for(10ms);
    CHECK(b.n_waiting() == 1);
    std::thread t2([&] { (void)errc_of([&] { i2 = h2.wait(5s); }); });
    CHECK(eventually([&] { return h1.n_waiting() == 2; }));
    std::uint32_t i3 = 9;
    CHECK(errc_of([&] { i3 = b.wait(5s); }) == errc::ok);
    t1.join();
    t2.join();
    CHECK(i1 == 0);
    CHECK(i2 == 1);
    CHECK(i3 == 2);
    CHECK(b.n_waiting() == 0);
    CHECK_FALSE(b.broken());
}

TEST_CASE("barrier: a party killed while waiting leaves the others to time out",
          "[sync][multiprocess]")
{
    struct shared {
        std::atomic<int> waiting;
    };
    shared_object<shared> sh;
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, 3);
    const auto desc = b.descriptor();
    {
        child c([&] {
            auto mine = barrier::attach(desc);
            sh->waiting = 1;
            (void)mine.wait(60s);
            return true;
        });
        CHECK(eventually([&] { return b.n_waiting() == 1; }));
        std::this_thread::sleep_for(20ms);
        c.kill();
    }
    // The dead party counts as arrived, but the third never comes: the parent times out.
    const auto o = timed([&] { (void)b.wait(50ms); });
    CHECK(o.code == errc::timeout);
    CHECK(o.ms >= 50.0);
    CHECK(o.ms < 500.0);
    CHECK(b.broken());

    b.reset();
    CHECK_FALSE(b.broken());
    CHECK(b.n_waiting() == 0);
    child c1([&] { return barrier::attach(desc).wait(5s) < 3; });
    child c2([&] { return barrier::attach(desc).wait(5s) < 3; });
    std::uint32_t mine = 9;
    CHECK(errc_of([&] { mine = b.wait(5s); }) == errc::ok);
    CHECK(mine < 3);
    CHECK(exited_ok(c1.wait_for(10s)));
    CHECK(exited_ok(c2.wait_for(10s)));
}

TEST_CASE("barrier: n_waiting counts no one once the waiters of a broken round have left",
          "[sync]")
{
    auto p = pool::create({.size = 1 << 20});
    auto b = barrier::create(p, 2);
    CHECK(errc_of([&] { (void)b.wait(20ms); }) == errc::timeout);
    CHECK(b.broken());
    CHECK(b.n_waiting() == 0);  // the waiter that timed out has left
    b.reset();

    auto other = barrier::attach(b.descriptor());
    errc code = errc::ok;
    std::thread t([&] { code = errc_of([&] { (void)other.wait(5s); }); });
    CHECK(eventually([&] { return b.n_waiting() == 1; }));
    b.abort();
    t.join();
    CHECK(code == errc::broken_barrier);
    CHECK(b.n_waiting() == 0);  // the aborted waiter has left
}
