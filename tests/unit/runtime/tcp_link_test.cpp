// tcp_link_test.cpp - the transport agents' TCP link over real sockets: frames of every size
// arrive whole and in order, only peers that know the run secret are heard, and a peer that
// goes away is reported lost once.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <vector>

#include <asio/io_context.hpp>

#include "auth.hpp"
#include "transport/tcp_link.hpp"

using dragonx::rt::detail::make_secret;
using dragonx::rt::detail::make_tcp_link;
using dragonx::rt::detail::peer_link;

namespace {

struct received {
    std::vector<std::pair<std::uint32_t, std::vector<std::byte>>> frames;
    std::map<std::uint32_t, int> lost;
};

peer_link::handlers recorder(received& r)
{
    return {.on_frame = [&r](std::uint32_t node,
                             std::span<const std::byte> f) {
                r.frames.emplace_back(node, std::vector<std::byte>(f.begin(), f.end()));
            },
            .on_lost = [&r](std::uint32_t node, const std::string&) { ++r.lost[node]; }};
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed)
{
    std::vector<std::byte> v(n);
    for (std::size_t i = 0; i < n; ++i) {
        v[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
    }
    return v;
}

// Runs the loop until `done` or 10 s.
template <class Pred>
bool run_until(asio::io_context& io, Pred done)
{
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done() && std::chrono::steady_clock::now() < until) {
        io.run_for(std::chrono::milliseconds(5));
    }
    return done();
}

// Nodes 0 (a) and 1 (b) of one run, started, each knowing the other; ra and rb record what
// they get.
struct linked_pair {
    std::unique_ptr<peer_link> a;
    std::unique_ptr<peer_link> b;
    received ra;
    received rb;

    explicit linked_pair(asio::io_context& io)
    {
        const auto secret = make_secret();
        a = make_tcp_link(io, secret, 0, "127.0.0.1", "127.0.0.1");
        b = make_tcp_link(io, secret, 1, "127.0.0.1", "127.0.0.1");
        a->start(recorder(ra));
        b->start(recorder(rb));
        a->set_peers({a->address(), b->address()});
        b->set_peers({a->address(), b->address()});
    }
};

}  // namespace

TEST_CASE("tcp link: frames of every size arrive whole and in order", "[transport]")
{
    asio::io_context io;
    linked_pair pair(io);
    auto& [a, b, ra, rb] = pair;

    const std::vector<std::size_t> sizes = {0, 1, 8, 4096, 65536, 1 << 20, 16 << 20};
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        const auto body = pattern(sizes[i], static_cast<unsigned>(i));
        const auto head = pattern(3, 99);
        const std::span<const std::byte> parts[] = {head, body};
        a->send(1, parts);
    }
    constexpr int burst = 5000;
    for (int i = 0; i < burst; ++i) {
        const auto n = static_cast<std::uint32_t>(i);
        const std::span<const std::byte> parts[] = {std::as_bytes(std::span(&n, 1))};
        a->send(1, parts);
    }
    const auto reply = pattern(10, 7);
    const std::span<const std::byte> back[] = {reply};
    b->send(0, back);

    REQUIRE(run_until(io, [&] { return rb.frames.size() == sizes.size() + burst &&
                                       ra.frames.size() == 1; }));
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        INFO("frame " << i);
        CHECK(rb.frames[i].first == 0);
        auto expected = pattern(3, 99);
        const auto body = pattern(sizes[i], static_cast<unsigned>(i));
        expected.insert(expected.end(), body.begin(), body.end());
        CHECK(rb.frames[i].second == expected);
    }
    for (int i = 0; i < burst; ++i) {
        std::uint32_t n = 0;
        std::memcpy(&n, rb.frames[sizes.size() + static_cast<std::size_t>(i)].second.data(), 4);
        REQUIRE(n == static_cast<std::uint32_t>(i));
    }
    CHECK(ra.frames[0].first == 1);
    CHECK(ra.frames[0].second == reply);
    CHECK(ra.lost.empty());
    CHECK(rb.lost.empty());
}

TEST_CASE("tcp link: a peer with another secret is not heard", "[transport]")
{
    asio::io_context io;
    auto a = make_tcp_link(io, make_secret(), 0, "127.0.0.1", "127.0.0.1");
    auto intruder = make_tcp_link(io, make_secret(), 1, "127.0.0.1", "127.0.0.1");
    received ra;
    received ri;
    a->start(recorder(ra));
    intruder->start(recorder(ri));
    intruder->set_peers({a->address(), intruder->address()});
    const auto body = pattern(100, 1);
    const std::span<const std::byte> parts[] = {body};
    intruder->send(0, parts);
    // The intruder learns that node 0 does not accept it; node 0 delivers nothing.
    REQUIRE(run_until(io, [&] { return ri.lost.count(0) == 1; }));
    io.run_for(std::chrono::milliseconds(100));
    CHECK(ra.frames.empty());
}

TEST_CASE("tcp link: a peer that goes away is reported lost, once", "[transport]")
{
    asio::io_context io;
    linked_pair pair(io);
    auto& [a, b, ra, rb] = pair;
    const auto body = pattern(8, 1);
    const std::span<const std::byte> parts[] = {body};
    a->send(1, parts);
    b->send(0, parts);
    REQUIRE(run_until(io, [&] { return ra.frames.size() == 1 && rb.frames.size() == 1; }));
    b->close();
    b.reset();
    REQUIRE(run_until(io, [&] { return ra.lost.count(1) == 1; }));
    a->send(1, parts);  // to a node already lost: dropped, not reported again
    io.run_for(std::chrono::milliseconds(100));
    CHECK(ra.lost[1] == 1);

    // A node nobody knows the address of is lost at the first frame.
    a->send(7, parts);
    REQUIRE(run_until(io, [&] { return ra.lost.count(7) == 1; }));
}
