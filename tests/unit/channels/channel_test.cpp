// channel_test.cpp - channels in one process: order, sizes, ownership, timeouts, polling,
// destruction, remote handles and malformed descriptors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/channels/transport.hpp>
#include <dragonx/common/error.hpp>

#include "support.hpp"

using dragonx::errc;
using dragonx::test::errc_of;
using dragonx::channels::channel;
using dragonx::channels::poll_event;
using dragonx::pool::pool;
using namespace std::chrono_literals;

static_assert(std::is_nothrow_move_constructible_v<channel>);
static_assert(!std::is_copy_constructible_v<channel>);

namespace {

std::span<const std::byte> as_bytes(const std::string& s)
{
    return std::as_bytes(std::span(s.data(), s.size()));
}

std::string recv_string(channel& ch, dragonx::timeout limit = 1s)
{
    std::vector<std::byte> buf(4 << 20);
    const auto n = ch.recv(buf, limit);
    return {reinterpret_cast<const char*>(buf.data()), n};
}

}  // namespace

TEST_CASE("options are checked", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    CHECK(errc_of([&] { (void)channel::create(p, {.capacity = 0}); }) == errc::invalid_argument);
    CHECK(errc_of([&] { (void)channel::create(p, {.block_size = 4}); }) ==
          errc::invalid_argument);
    CHECK(errc_of([&] { (void)channel::create(p, {.capacity = 1u << 25}); }) ==
          errc::invalid_argument);
    CHECK(errc_of([&] { (void)channel::create(p, {.capacity = 10000, .block_size = 4096}); }) ==
          errc::pool_full);
}

TEST_CASE("messages come out in order, each once", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 8, .block_size = 64});
    CHECK(ch.capacity() == 8);
    CHECK(ch.block_size() == 64);
    CHECK(ch.is_local());
    CHECK(ch.size() == 0);
    for (int i = 0; i < 8; ++i) {
        CHECK(ch.try_send(as_bytes("m" + std::to_string(i))));
    }
    CHECK(ch.size() == 8);
    CHECK_FALSE(ch.try_send(as_bytes("full")));
    for (int i = 0; i < 8; ++i) {
        CHECK(recv_string(ch) == "m" + std::to_string(i));
    }
    std::byte b[8];
    CHECK_FALSE(ch.try_recv(b));
    // Around the ring several times.
    for (int i = 0; i < 100; ++i) {
        REQUIRE(ch.try_send(as_bytes(std::to_string(i))));
        REQUIRE(ch.try_send(as_bytes(std::to_string(i + 1000))));
        CHECK(recv_string(ch) == std::to_string(i));
        CHECK(recv_string(ch) == std::to_string(i + 1000));
    }
}

TEST_CASE("sizes across the slot boundary arrive intact and leak nothing", "[channels]")
{
    auto p = pool::create({.size = 8 << 20});
    auto ch = channel::create(p, {.capacity = 16, .block_size = 64});
    const auto start_free = p.stats().free_bytes;
    for (std::size_t n : {0u, 1u, 63u, 64u, 65u, 1000u, 100000u, 3000000u}) {
        std::string msg(n, '\0');
        for (std::size_t i = 0; i < n; ++i) {
            msg[i] = static_cast<char>('a' + (i * 31 + n) % 26);
        }
        ch.send(as_bytes(msg), 1s);
        CHECK(recv_string(ch) == msg);
        // The same through recv_block.
        ch.send(as_bytes(msg), 1s);
        auto block = ch.recv_block(1s);
        CHECK(block.size() == n);
        CHECK(std::memcmp(block.data(), msg.data(), n) == 0);
    }
    CHECK(p.stats().free_bytes == start_free);
}

TEST_CASE("a block of the channel's pool is handed over without a copy", "[channels]")
{
    auto p = pool::create({.size = 8 << 20});
    auto ch = channel::create(p, {.capacity = 4, .block_size = 64});
    const auto start_free = p.stats().free_bytes;
    auto block = p.allocate(1 << 20, 1s);
    std::memset(block.data(), 0x5a, block.size());
    const auto offset = block.offset();
    ch.send(block, 1s);
    CHECK_FALSE(block);  // ownership moved
    auto got = ch.recv_block(1s);
    CHECK(got.offset() == offset);  // the very same block
    CHECK(got.size() == (1 << 20));
    CHECK(got.data()[12345] == std::byte{0x5a});
    got = {};
    CHECK(p.stats().free_bytes == start_free);

    // A block of another pool travels as a copy and is freed.
    auto other = pool::create({.size = 1 << 20});
    auto foreign = other.allocate(100, 1s);
    std::memset(foreign.data(), 7, 100);
    ch.send(foreign, 1s);
    CHECK_FALSE(foreign);
    CHECK(other.stats().free_bytes == other.size());
    CHECK(recv_string(ch) == std::string(100, '\7'));
}

TEST_CASE("a message too large for the buffer stays in the channel", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 4, .block_size = 64});
    ch.send(as_bytes(std::string(40, 'x')), 1s);
    ch.send(as_bytes(std::string(500, 'y')), 1s);
    std::byte small[10];
    std::string what;
    CHECK(errc_of([&] { (void)ch.try_recv(small); }, &what) == errc::message_too_large);
    CHECK_THAT(what, Catch::Contains("40 bytes"));
    CHECK(ch.peek_size() == 40u);
    CHECK(recv_string(ch) == std::string(40, 'x'));
    CHECK(errc_of([&] { (void)ch.recv(small, 1s); }) == errc::message_too_large);
    CHECK(recv_string(ch) == std::string(500, 'y'));
    CHECK_FALSE(ch.peek_size());
}

// The shortest of three timings of `op`, each checked not to end before `limit`. One timing can be
// descheduled for tens of milliseconds on a loaded two-vCPU machine (CI runs the ASan tests two at
// a time); a timeout that really fires late is late every time.
template <class Op>
std::chrono::nanoseconds shortest_timed_out_wait(std::chrono::milliseconds limit, Op op)
{
    auto shortest = std::chrono::nanoseconds::max();
    for (int attempt = 0; attempt < 3; ++attempt) {
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(errc_of(op) == errc::timeout);
        const auto waited = std::chrono::steady_clock::now() - t0;
        CHECK(waited >= limit);
        shortest = std::min<std::chrono::nanoseconds>(shortest, waited);
    }
    return shortest;
}

TEST_CASE("timeouts are honoured within milliseconds", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 1, .block_size = 64});
    std::byte b[64];
    CHECK(shortest_timed_out_wait(50ms, [&] { (void)ch.recv(b, 50ms); }) < 100ms);

    ch.send(as_bytes("one"), 0ns);
    CHECK(shortest_timed_out_wait(50ms, [&] { ch.send(as_bytes("two"), 50ms); }) < 100ms);

    CHECK(errc_of([&] { ch.send(as_bytes("two"), 0ns); }) == errc::timeout);
    CHECK(errc_of([&] { ch.send(as_bytes("two"), -1ns); }) == errc::invalid_argument);
    CHECK(ch.size() == 1);
}

TEST_CASE("a blocked receiver wakes when a message arrives", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 4, .block_size = 64});
    for (auto sleep : {0ms, 1ms, 30ms}) {  // spinning, yielding and sleeping receivers
        std::thread sender([&] {
            std::this_thread::sleep_for(sleep);
            ch.send(as_bytes("wake"), 1s);
        });
        CHECK(recv_string(ch, dragonx::forever) == "wake");
        sender.join();
    }
}

TEST_CASE("poll waits for readable, writable and empty", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 2, .block_size = 64});
    CHECK(ch.poll(poll_event::writable, 0ns));
    CHECK(ch.poll(poll_event::empty, 0ns));
    CHECK_FALSE(ch.poll(poll_event::readable, 10ms));
    ch.send(as_bytes("a"), 0ns);
    ch.send(as_bytes("b"), 0ns);
    CHECK(ch.poll(poll_event::readable, 0ns));
    CHECK_FALSE(ch.poll(poll_event::writable, 10ms));
    CHECK_FALSE(ch.poll(poll_event::empty, 10ms));
    std::thread drain([&] {
        std::this_thread::sleep_for(20ms);
        (void)recv_string(ch);
        (void)recv_string(ch);
    });
    CHECK(ch.poll(poll_event::empty, 2s));
    drain.join();
}

TEST_CASE("destroying a channel frees its memory and queued blocks", "[channels]")
{
    auto p = pool::create({.size = 8 << 20});
    const auto start_free = p.stats().free_bytes;
    {
        auto ch = channel::create(p, {.capacity = 4, .block_size = 64});
        auto other = channel::attach(ch.descriptor());
        ch.send(as_bytes(std::string(100000, 'z')), 1s);  // a pool block, queued
        ch.send(as_bytes("inline"), 1s);
        ch.destroy();
        std::byte b[8];
        std::string what;
        CHECK(errc_of([&] { (void)other.try_recv(b); }, &what) == errc::not_found);
        CHECK_THAT(what, Catch::Contains("destroyed"));
        CHECK(errc_of([&] { (void)channel::attach(other.descriptor()); }) == errc::not_found);
    }
    CHECK(p.stats().free_bytes == start_free);
    {
        auto ch = channel::create(p, {.capacity = 4, .block_size = 64});
        ch.send(as_bytes("left behind"), 1s);
    }  // the owner's handle destroys it
    CHECK(p.stats().free_bytes == start_free);
}

TEST_CASE("channel descriptors: round trip and malformed input", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 4, .block_size = 64, .id = 99});
    const auto d = ch.descriptor();
    CHECK(d.size() < 200);
    auto other = channel::attach(d);
    CHECK(other.id() == 99);
    CHECK_FALSE(other.owner());
    other.send(as_bytes("via attach"), 1s);
    CHECK(recv_string(ch) == "via attach");

    for (std::size_t n = 0; n < d.size(); ++n) {
        CHECK(errc_of([&] { (void)channel::attach(d.substr(0, n)); }) ==
              errc::malformed_descriptor);
    }
    std::mt19937_64 rng(3);
    for (int i = 0; i < 2000; ++i) {
        std::string s(rng() % 200, 'A');
        for (auto& c : s) {
            c = static_cast<char>(rng() % 256);
        }
        const auto e = errc_of([&] { (void)channel::attach(s); });
        CHECK((e == errc::malformed_descriptor || e == errc::version_mismatch));
    }
    CHECK(errc_of([&] { (void)channel::attach(p.descriptor()); }) == errc::malformed_descriptor);
}

namespace {

// An in-process stand-in for the transport: forwards to channels it holds, by descriptor.
class loopback_transport : public dragonx::channels::transport {
public:
    explicit loopback_transport(channel& target) : target_(target) {}
    bool send(std::string_view, std::span<const std::byte> bytes, dragonx::timeout) override
    {
        return target_.try_send(bytes);
    }
    std::optional<std::vector<std::byte>> recv(std::string_view, dragonx::timeout,
                                               std::size_t max_bytes) override
    {
        std::vector<std::byte> scratch(target_.block_size());
        auto m = target_.try_take(scratch, max_bytes);
        if (!m) {
            return std::nullopt;
        }
        return std::vector<std::byte>(m->bytes().begin(), m->bytes().end());
    }
    std::optional<dragonx::pool::allocation> recv_block(std::string_view, dragonx::timeout) override
    {
        return target_.try_recv_block();
    }
    bool poll(std::string_view, poll_event e, dragonx::timeout t) override
    {
        return target_.poll(e, t);
    }
    std::uint64_t size(std::string_view) override { return target_.size(); }

private:
    channel& target_;
};

class scoped_node {
public:
    explicit scoped_node(const char* node) { ::setenv("DRAGONX_NODE", node, 1); }
    ~scoped_node() { ::setenv("DRAGONX_NODE", "0", 1); }
};

}  // namespace

TEST_CASE("another node's channel goes through the transport, or fails clearly", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 4, .block_size = 64});
    const auto d = ch.descriptor();
    scoped_node elsewhere("1");  // this process now claims to be on node 1

    auto remote = channel::attach(d);
    CHECK_FALSE(remote.is_local());
    CHECK(remote.node() == 0);
    std::string what;
    CHECK(errc_of([&] { (void)remote.try_send(as_bytes("x")); }, &what) == errc::no_transport);
    CHECK_THAT(what, Catch::Contains("node 0"));

    loopback_transport loop(ch);
    auto via = channel::attach(d, &loop);
    CHECK(via.try_send(as_bytes("across")));
    CHECK(via.size() == 1);
    std::byte b[64];
    auto n = via.try_recv(b);
    REQUIRE(n);
    CHECK(std::string(reinterpret_cast<const char*>(b), *n) == "across");

    // Every receive flavour works through the transport, for messages on both sides of the
    // slot size.
    const std::string big(1000, 'b');
    for (const std::string& msg : {std::string("small"), big}) {
        CHECK(via.try_send(as_bytes(msg)));
        auto block = via.recv_block(100ms);
        CHECK(std::string(reinterpret_cast<const char*>(block.data()), block.size()) == msg);
        CHECK(via.try_send(as_bytes(msg)));
        std::byte scratch[64];
        auto m = via.take(scratch, 100ms);
        CHECK(std::string(reinterpret_cast<const char*>(m.bytes().data()), m.size()) == msg);
    }
    CHECK(errc_of([&] { (void)via.recv_block(1ms); }) == errc::timeout);
    CHECK(errc_of([&] { (void)via.take({}, 1ms); }) == errc::timeout);
    CHECK(errc_of([&] { (void)via.pool(); }) == errc::not_local);
}

TEST_CASE("try_take with a size limit leaves a larger message in the channel", "[channels]")
{
    auto p = pool::create({.size = 1 << 20});
    auto ch = channel::create(p, {.capacity = 4, .block_size = 64});
    const std::string big(1000, 'q');
    REQUIRE(ch.try_send(as_bytes(big)));
    REQUIRE(ch.try_send(as_bytes("small")));
    std::byte scratch[64];
    CHECK(errc_of([&] { (void)ch.try_take(scratch, 999); }) == errc::message_too_large);
    CHECK(ch.size() == 2);
    auto m = ch.try_take(scratch, 1000);
    REQUIRE(m);
    CHECK(m->size() == 1000);
    CHECK(errc_of([&] { (void)ch.try_take(scratch, 4); }) == errc::message_too_large);
    m = ch.try_take(scratch, 5);
    REQUIRE(m);
    CHECK(std::string(reinterpret_cast<const char*>(m->bytes().data()), m->size()) == "small");
}
