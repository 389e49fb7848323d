// channel_set_test.cpp - waiting for the first of several channels: in one process, woken
// from another process while asleep, fairness, timeouts and bad input.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <dragonx/channels/channel_set.hpp>
#include <dragonx/common/error.hpp>

#include "support.hpp"

using dragonx::errc;
using dragonx::channels::channel;
using dragonx::channels::channel_set;
using dragonx::test::child;
using dragonx::test::errc_of;
using dragonx::pool::pool;
using namespace std::chrono_literals;

namespace {

const std::byte one_byte[1] = {std::byte{1}};

}  // namespace

TEST_CASE("a channel set reports the channel that has a message", "[channel_set]")
{
    auto p = pool::create({.size = 1 << 20});
    auto a = channel::create(p, {.capacity = 4, .block_size = 16});
    auto b = channel::create(p, {.capacity = 4, .block_size = 16});
    auto c = channel::create(p, {.capacity = 4, .block_size = 16});
    channel_set set({&a, &b, &c});
    CHECK(set.size() == 3);

    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(set.poll(20ms));
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 20ms);
    CHECK(took < 200ms);
    CHECK_FALSE(set.poll(0ns));

    CHECK(b.try_send(one_byte));
    CHECK(set.poll(0ns) == 1u);
    CHECK(set.poll(1s) == 1u);  // still there: poll does not take it
    std::byte buf[16];
    CHECK(b.try_recv(buf));
    CHECK(c.try_send(one_byte));
    CHECK(set.poll(1s) == 2u);
    CHECK(errc_of([&] { (void)set.poll(-1ms); }) == errc::invalid_argument);
}

TEST_CASE("a busy channel does not hide the others", "[channel_set]")
{
    auto p = pool::create({.size = 1 << 20});
    auto a = channel::create(p, {.capacity = 8, .block_size = 16});
    auto b = channel::create(p, {.capacity = 8, .block_size = 16});
    channel_set set({&a, &b});
    for (int i = 0; i < 4; ++i) {
        CHECK(a.try_send(one_byte));
        CHECK(b.try_send(one_byte));
    }
    // Both always have messages: the answers alternate.
    std::vector<std::size_t> seen;
    for (int i = 0; i < 6; ++i) {
        seen.push_back(*set.poll(0ns));
    }
    CHECK(seen == std::vector<std::size_t>{0, 1, 0, 1, 0, 1});
}

TEST_CASE("a sleeping channel set wakes when another process sends", "[channel_set]")
{
    auto p = pool::create({.size = 1 << 20});
    std::vector<channel> chans;
    for (int i = 0; i < 5; ++i) {
        chans.push_back(channel::create(p, {.capacity = 4, .block_size = 16}));
    }
    std::vector<const channel*> ptrs;
    for (auto& ch : chans) {
        ptrs.push_back(&ch);
    }
    channel_set set(ptrs);
    for (std::size_t target : {3u, 0u, 4u}) {
        const auto desc = chans[target].descriptor();
        child sender([&] {
            std::this_thread::sleep_for(100ms);  // long enough for the set to be asleep
            auto ch = channel::attach(desc);
            return ch.try_send(one_byte);
        });
        const auto t0 = std::chrono::steady_clock::now();
        const auto got = set.poll(5s);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(got == target);
        CHECK(took >= 90ms);
        CHECK(took < 1s);
        CHECK(sender.succeeded(5s));
        std::byte buf[16];
        CHECK(chans[target].try_recv(buf));
    }
}

TEST_CASE("channel sets reject bad input and notice destroyed channels", "[channel_set]")
{
    auto p = pool::create({.size = 1 << 20});
    auto a = channel::create(p, {.capacity = 4, .block_size = 16});
    CHECK(errc_of([] { channel_set set({}); }) == errc::invalid_argument);
    CHECK(errc_of([] { channel_set set({nullptr}); }) == errc::invalid_argument);
    channel empty;
    CHECK(errc_of([&] { channel_set set({&empty}); }) == errc::invalid_argument);
    std::vector<const channel*> too_many(129, &a);
    CHECK(errc_of([&] { channel_set set(too_many); }) == errc::invalid_argument);

    {
        ::setenv("DRAGONX_NODE", "1", 1);  // this process now claims to be on node 1
        auto remote = channel::attach(a.descriptor());
        ::setenv("DRAGONX_NODE", "0", 1);
        std::string what;
        CHECK(errc_of([&] { channel_set set({&remote}); }, &what) == errc::not_local);
        CHECK_THAT(what, Catch::Contains("node 0"));
    }

    auto b = channel::attach(a.descriptor());
    channel_set set({&b});
    std::thread destroyer([&] {
        std::this_thread::sleep_for(100ms);
        a.destroy();
    });
    CHECK(errc_of([&] { (void)set.poll(5s); }) == errc::not_found);
    destroyer.join();
}
