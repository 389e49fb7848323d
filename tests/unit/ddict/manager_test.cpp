// manager_test.cpp - a DDict manager in-process: requests as clients send them into its
// channel, replies read from a reply channel; the protocol's decoders; and a manager fed
// random and truncated requests, which must answer or drop them and keep serving.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/pool/pool.hpp>

#include "manager.hpp"
#include "protocol.hpp"

using namespace std::chrono_literals;
using namespace dragonx;
using namespace dragonx::dict;

namespace {

std::span<const std::byte> bytes_of(const std::string& s) { return as_bytes(s); }

// One manager and one client's reply channel, in this process.
struct rig {
    // The manager is on node 0; the client on `client_node` (another node by default: replies
    // carry values, never references into the manager's pool).
    explicit rig(std::uint64_t total_mem = 8u << 20, std::uint32_t client_node = 1)
        : m(options(total_mem), 0, 0, "test-host")
    {
        client_pool = pool::pool::create({.size = 64u << 20});
        reply = channels::channel::create(client_pool, {.capacity = 64, .block_size = 4096});
        to_manager = channels::channel::attach(m.channel_descriptor());
        send(op::hello, {}, encode(hello_body{reply.descriptor(), client_node}));
    }

    static server_options options(std::uint64_t total_mem)
    {
        server_options o;
        o.name = "test";
        o.managers = 1;
        o.total_mem = total_mem;
        return o;
    }

    std::uint64_t send(op code, std::span<const std::byte> key, std::span<const std::byte> body,
                       std::uint64_t arg = 0, std::uint16_t flags = 0, std::uint64_t checkpoint = 0)
    {
        request_header h{};
        h.code = code;
        h.flags = flags;
        h.key_size = static_cast<std::uint32_t>(key.size());
        h.tag = ++tag;
        h.client = 7;
        h.checkpoint = checkpoint;
        h.arg = arg;
        h.timeout_us = no_timeout;
        std::vector<std::byte> msg(request_size(key.size(), body.size()));
        auto rest = write_request(msg, h, key);
        if (!body.empty()) {
            std::memcpy(rest.data(), body.data(), body.size());
        }
        to_manager.send(msg, 1s);
        m.serve_one(0ns);
        return h.tag;
    }

    // The next reply: its header, text and body (copied).
    struct answer {
        response_header h;
        std::string info;
        std::vector<std::byte> body;
    };
    answer next()
    {
        std::vector<std::byte> scratch(4096);
        auto msg = reply.take(scratch, 1s);
        const auto r = parse_response(msg.bytes());
        return {r.header, std::string(r.info), {r.body.begin(), r.body.end()}};
    }

    answer call(op code, const std::string& key, const std::string& body = {},
                std::uint64_t arg = 0)
    {
        const auto t = send(code, bytes_of(key), bytes_of(body), arg);
        auto a = next();
        REQUIRE(a.h.tag == t);
        return a;
    }

    manager m;
    pool::pool client_pool;
    channels::channel reply;
    channels::channel to_manager;
    std::uint64_t tag = 0;
};

std::string text(const std::vector<std::byte>& b)
{
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

TEST_CASE("protocol decoders reject short and overrunning messages", "[ddict][protocol]")
{
    std::vector<std::byte> tiny(10);
    CHECK_THROWS_AS(parse_request(tiny), error);
    CHECK_THROWS_AS(parse_response(tiny), error);
    request_header h{};
    h.key_size = 100;
    std::vector<std::byte> msg(sizeof h + 10);
    std::memcpy(msg.data(), &h, sizeof h);
    try {
        (void)parse_request(msg);
        FAIL("no error");
    } catch (const error& e) {
        CHECK(e.is(errc::malformed_message));
    }
}

TEST_CASE("descriptors round trip, and garbage is malformed_descriptor", "[ddict][protocol]")
{
    const descriptor_body d{"name", "channel-descriptor", 42, 8};
    const auto text = encode_descriptor(d);
    const auto back = decode_descriptor(text);
    CHECK(back.name == "name");
    CHECK(back.orchestrator == "channel-descriptor");
    CHECK(back.orchestrator_puid == 42);
    CHECK(back.managers == 8);
    std::mt19937_64 rng(5);
    for (int i = 0; i < 5000; ++i) {
        std::string t = text;
        const auto n = 1 + rng() % 4;
        for (std::uint64_t k = 0; k < n; ++k) {
            t[rng() % t.size()] = static_cast<char>(rng() % 128);
        }
        if (rng() % 3 == 0) {
            t.resize(rng() % t.size());
        }
        try {
            (void)decode_descriptor(t);
        } catch (const error& e) {
            CHECK(e.is(errc::malformed_descriptor));
        }
    }
}

TEST_CASE("keys spread evenly over managers", "[ddict][protocol]")
{
    std::vector<int> count(4);
    for (int i = 0; i < 10000; ++i) {
        const auto key = encode(std::string("file-") + std::to_string(i) + ".dat");
        ++count[manager_of(key, 4)];
    }
    for (const int c : count) {
        CHECK(c > 2250);  // within ±10% of 2500
        CHECK(c < 2750);
    }
}

TEST_CASE("a manager answers puts, gets, pops and errors", "[ddict][manager]")
{
    rig r;
    CHECK(r.call(op::put, "k", "value").h.status == 0);
    auto got = r.call(op::get, "k");
    CHECK(got.h.status == 0);
    CHECK(text(got.body) == "value");
    CHECK(r.call(op::contains, "k").h.value == 1);
    CHECK(r.call(op::size, "").h.value == 1);
    CHECK(r.call(op::get, "missing").h.status == static_cast<int>(errc::key_not_found));
    auto popped = r.call(op::pop, "k");
    CHECK(text(popped.body) == "value");
    CHECK(r.call(op::contains, "k").h.value == 0);
    CHECK(r.call(op::put, "", "x").h.status == static_cast<int>(errc::invalid_argument));
    CHECK(r.call(op::fetch_add, "n", "", 3).h.value == 0);
    CHECK(r.call(op::fetch_add, "n", "", 4).h.value == 3);
    CHECK(r.call(op::fetch_add, "k2", "", 1).h.status == 0);
    r.call(op::put, "s", "text");
    CHECK(r.call(op::fetch_add, "s", "", 1).h.status ==
          static_cast<int>(errc::invalid_operation));
}

TEST_CASE("a frozen manager refuses writes and serves reads", "[ddict][manager]")
{
    rig r;
    r.call(op::put, "k", "v");
    CHECK(r.call(op::freeze, "").h.status == 0);
    CHECK(r.call(op::is_frozen, "").h.value == 1);
    CHECK(r.call(op::put, "k", "w").h.status == static_cast<int>(errc::invalid_operation));
    CHECK(r.call(op::pop, "k").h.status == static_cast<int>(errc::invalid_operation));
    CHECK(text(r.call(op::get, "k").body) == "v");
    r.call(op::unfreeze, "");
    CHECK(r.call(op::put, "k", "w").h.status == 0);
}

TEST_CASE("a frozen manager answers a client on its node with the value's place in its pool",
          "[ddict][manager]")
{
    rig r(8u << 20, 0);
    r.call(op::put, "k", "in place");
    auto copied = r.call(op::get, "k");
    CHECK(copied.h.aux == 0);
    CHECK(text(copied.body) == "in place");
    r.call(op::freeze, "");
    const auto a = r.call(op::get, "k");
    REQUIRE(a.h.aux == frozen_reply_marker);
    frozen_value_ref ref{};
    REQUIRE(a.body.size() == sizeof ref);
    std::memcpy(&ref, a.body.data(), sizeof ref);
    auto shard = pool::pool::attach(r.m.shard_pool().descriptor());
    auto block = shard.attach_allocation(ref.block_offset, ref.block_size);
    const auto* at = reinterpret_cast<const char*>(block.data() + ref.value_offset);
    CHECK(std::string(at, ref.value_size) == "in place");
    block.disown();
}

TEST_CASE("a full manager refuses the put and keeps everything else", "[ddict][manager]")
{
    rig r(1u << 20);
    const std::string value(8 << 10, 'x');
    int stored = 0;
    for (;; ++stored) {
        const auto a = r.call(op::put, "k" + std::to_string(stored), value);
        if (a.h.status != 0) {
            CHECK(a.h.status == static_cast<int>(errc::ddict_full));
            break;
        }
        REQUIRE(stored < 1000);
    }
    CHECK(stored > 50);
    CHECK(r.call(op::size, "").h.value == static_cast<std::uint64_t>(stored));
    CHECK(text(r.call(op::get, "k0").body) == value);
    r.call(op::pop, "k0");
    CHECK(r.call(op::put, "again", value).h.status == 0);
}

TEST_CASE("wait_for is answered once the key holds the value", "[ddict][manager]")
{
    rig r;
    const auto t = r.send(op::wait_for, bytes_of("flag"), bytes_of("go"));
    r.call(op::put, "flag", "not yet");
    r.call(op::put, "flag", "go");
    // The put's reply, then the wait_for's (retried after the write).
    auto a = r.next();
    CHECK(a.h.tag == t);
    CHECK(a.h.status == 0);
}

TEST_CASE("a manager survives random and truncated requests", "[ddict][manager][fuzz]")
{
    rig r;
    std::mt19937_64 rng(11);
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::byte> msg(rng() % 200);
        for (auto& b : msg) {
            b = static_cast<std::byte>(rng());
        }
        if (msg.size() >= sizeof(request_header) && rng() % 2 == 0) {
            // A plausible header with random fields: a real op, this client, random sizes.
            request_header h{};
            h.code = static_cast<op>(1 + rng() % 20);
            h.key_size = static_cast<std::uint32_t>(rng() % 300);
            h.client = 7;
            h.tag = 1'000'000 + static_cast<std::uint64_t>(i);
            h.checkpoint = rng() % 3;
            h.timeout_us = 0;
            if (h.code == op::shutdown || h.code == op::hello || h.code == op::goodbye) {
                h.code = op::get;
            }
            std::memcpy(msg.data(), &h, sizeof h);
        }
        (void)r.to_manager.try_send(msg);
        r.m.serve_one(0ns);
        // Drain whatever it answered.
        std::vector<std::byte> scratch(4096);
        while (r.reply.try_take(scratch)) {
        }
    }
    // Random requests may have frozen it or moved its checkpoints on: valid requests.
    r.call(op::unfreeze, "");
    const auto newest = r.call(op::newest, "").h.value;
    r.send(op::put, bytes_of("after"), bytes_of("fuzz"), 0, 0, newest);
    CHECK(r.next().h.status == 0);
    r.send(op::get, bytes_of("after"), {}, 0, 0, newest);
    CHECK(text(r.next().body) == "fuzz");
}

TEST_CASE("size and listings at a retired checkpoint are errors, as gets are", "[ddict][manager]")
{
    rig r;
    r.send(op::put, bytes_of("k"), bytes_of("v"), 0, 0, 1);  // moves the set on to checkpoint 1
    CHECK(r.next().h.status == 0);
    const auto retired = static_cast<int>(errc::checkpoint_retired);
    CHECK(r.call(op::size, "").h.status == retired);
    CHECK(r.call(op::list, "").h.status == retired);
    CHECK(r.call(op::get, "k").h.status == retired);
    r.send(op::size, {}, {}, 0, 0, 1);
    CHECK(r.next().h.value == 1);
}
