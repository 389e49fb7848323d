// wire_test.cpp - the transport's frames: a well-formed frame splits into its parts, and any
// truncated, oversized or random input is refused with malformed_message, never trusted.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "transport/wire.hpp"

namespace wire = dragonx::rt::detail::wire;
using dragonx::errc;

namespace {

std::vector<std::byte> frame(const wire::frame_header& h, std::string_view channel,
                             std::string_view payload)
{
    std::vector<std::byte> out(sizeof h + channel.size() + payload.size());
    std::memcpy(out.data(), &h, sizeof h);
    std::memcpy(out.data() + sizeof h, channel.data(), channel.size());
    std::memcpy(out.data() + sizeof h + channel.size(), payload.data(), payload.size());
    return out;
}

errc parse_error(std::span<const std::byte> bytes)
{
    try {
        (void)wire::parse(bytes);
    } catch (const dragonx::error& e) {
        return static_cast<errc>(e.code().value());
    }
    return errc::ok;
}

}  // namespace

TEST_CASE("a transport frame splits into header, channel and payload", "[transport]")
{
    wire::frame_header h;
    h.kind = static_cast<std::uint8_t>(wire::frame_kind::request);
    h.op = static_cast<std::uint8_t>(wire::op::send);
    h.id = 42;
    h.timeout_ns = 1000;
    h.channel_len = 4;
    h.payload_len = 5;
    const auto f = frame(h, "chan", "hello");
    const auto v = wire::parse(f);
    CHECK(v.header.id == 42);
    CHECK(v.channel == "chan");
    CHECK(std::string(reinterpret_cast<const char*>(v.payload.data()), v.payload.size()) ==
          "hello");
    CHECK(wire::to_timeout(v.header.timeout_ns) == std::chrono::nanoseconds(1000));
    CHECK(wire::to_timeout(-1) == dragonx::forever);
    CHECK_THROWS(wire::to_timeout(-2));

    // Truncated, too long, wrong kind or operation, lengths beyond the limits.
    CHECK(parse_error(std::span(f).first(f.size() - 1)) == errc::malformed_message);
    auto longer = f;
    longer.push_back(std::byte{0});
    CHECK(parse_error(longer) == errc::malformed_message);
    CHECK(parse_error(std::span(f).first(10)) == errc::malformed_message);
    auto bad = h;
    bad.kind = 9;
    CHECK(parse_error(frame(bad, "chan", "hello")) == errc::malformed_message);
    bad = h;
    bad.op = 0;
    CHECK(parse_error(frame(bad, "chan", "hello")) == errc::malformed_message);
    bad = h;
    bad.payload_len = std::uint64_t{1} << 40;
    CHECK(parse_error(frame(bad, "chan", "hello")) == errc::malformed_message);
    bad = h;
    bad.channel_len = 1u << 30;
    CHECK(parse_error(frame(bad, "chan", "hello")) == errc::malformed_message);
}

TEST_CASE("random bytes never parse as something they are not", "[transport]")
{
    std::mt19937_64 rng(12345);
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::byte> junk(rng() % 200);
        for (auto& b : junk) {
            b = static_cast<std::byte>(rng());
        }
        if (junk.size() >= sizeof(wire::frame_header) && (i % 2) == 0) {
            // Half of them with a plausible kind and operation, to get past the first checks.
            junk[0] = std::byte{1};
            junk[1] = std::byte{static_cast<unsigned char>(1 + rng() % 4)};
        }
        try {
            const auto v = wire::parse(junk);
            CHECK(sizeof(wire::frame_header) + v.channel.size() + v.payload.size() ==
                  junk.size());
        } catch (const dragonx::error& e) {
            CHECK(e.is(errc::malformed_message));
        }
    }
}
