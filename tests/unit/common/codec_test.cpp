// codec_test.cpp - dragonx::codec: round trips of the provided codecs, chunk boundaries, a
// user codec, and malformed input.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <variant>
#include <string>
#include <vector>

#include <dragonx/common/codec.hpp>

#include "support.hpp"

using dragonx::bytes;
using dragonx::decoder;
using dragonx::encoder;
using dragonx::errc;
using dragonx::test::errc_of;

namespace {

struct point {
    double x = 0;
    double y = 0;
    std::string label;
    bool operator==(const point&) const = default;
};

enum class color : std::uint8_t { red = 1, green = 2 };

}  // namespace

template <>
struct dragonx::codec<point> {
    static void encode(const point& p, encoder& out)
    {
        out.value(p.x);
        out.value(p.y);
        out.chunk_view(dragonx::as_bytes(p.label));
    }
    static point decode(decoder& in)
    {
        point p;
        p.x = in.value<double>();
        p.y = in.value<double>();
        p.label = in.string();
        return p;
    }
};

namespace {

template <class T>
T round_trip(const T& v)
{
    return dragonx::decode<T>(dragonx::encode(v));
}

}  // namespace

TEST_CASE("provided codecs round-trip their values", "[common][codec]")
{
    CHECK(round_trip(0) == 0);
    CHECK(round_trip(-123456789) == -123456789);
    CHECK(round_trip(std::numeric_limits<std::uint64_t>::max()) ==
          std::numeric_limits<std::uint64_t>::max());
    CHECK(round_trip(3.25) == 3.25);
    CHECK(round_trip(true));
    CHECK(round_trip(color::green) == color::green);
    CHECK(round_trip(std::string()).empty());
    CHECK(round_trip(std::string("hello")) == "hello");
    const std::string big(100000, 'z');
    CHECK(round_trip(big) == big);
    const std::string with_nul("a\0b", 3);
    CHECK(round_trip(with_nul) == with_nul);
    CHECK(round_trip(std::vector<double>{1.5, -2.5, 1e300}) ==
          std::vector<double>{1.5, -2.5, 1e300});
    CHECK(round_trip(std::vector<int>{}).empty());
    CHECK(round_trip(std::array<std::int16_t, 3>{1, -2, 3}) ==
          std::array<std::int16_t, 3>{1, -2, 3});
    const bytes raw{std::byte{0}, std::byte{0xff}, std::byte{0x80}};
    CHECK(round_trip(raw) == raw);
    // A span encodes; it decodes as bytes.
    CHECK(dragonx::decode<bytes>(dragonx::encode(std::span<const std::byte>(raw))) == raw);
}

TEST_CASE("the encoded form is LEB128 length + bytes per chunk", "[common][codec]")
{
    const auto e = dragonx::encode(std::string("abc"));
    REQUIRE(e.size() == 4);
    CHECK(e[0] == std::byte{3});
    CHECK(e[1] == std::byte{'a'});
    // 200 bytes: a two-byte length (0xc8 0x01).
    const auto f = dragonx::encode(std::string(200, 'x'));
    REQUIRE(f.size() == 202);
    CHECK(f[0] == std::byte{0xc8});
    CHECK(f[1] == std::byte{0x01});
    CHECK(encoder::varint_size(0) == 1);
    CHECK(encoder::varint_size(127) == 1);
    CHECK(encoder::varint_size(128) == 2);
    CHECK(encoder::varint_size(std::numeric_limits<std::uint64_t>::max()) == 10);
}

TEST_CASE("chunk boundaries survive, and a user codec composes chunks", "[common][codec]")
{
    encoder out;
    out.chunk_view(dragonx::as_bytes("one"));  // a literal: lives for ever
    out.chunk_view(dragonx::as_bytes(""));
    out.chunk(dragonx::as_bytes(std::string("three")));  // copied: the temporary dies here
    out.value(std::uint32_t{7});
    CHECK(out.chunk_count() == 4);
    const auto message = out.to_bytes();
    CHECK(message.size() == out.size());

    decoder in(message);
    CHECK(in.string() == "one");
    CHECK(in.string().empty());
    CHECK(in.string() == "three");
    CHECK(in.value<std::uint32_t>() == 7);
    CHECK(in.at_end());
    in.expect_end();

    const point p{1.5, -2, "origin-ish"};
    CHECK(round_trip(p) == p);
    out.clear();
    CHECK(out.size() == 0);
    CHECK(out.chunk_count() == 0);
}

TEST_CASE("malformed messages are rejected with errc::malformed_message", "[common][codec]")
{
    const auto good = dragonx::encode(std::vector<std::uint32_t>{1, 2, 3});
    std::string what;

    // Truncated anywhere.
    for (std::size_t n = 0; n < good.size(); ++n) {
        const std::span<const std::byte> cut(good.data(), n);
        CAPTURE(n);
        CHECK(errc_of([&] { (void)dragonx::decode<std::vector<std::uint32_t>>(cut); }) ==
              errc::malformed_message);
    }
    // Left-over bytes.
    auto longer = good;
    longer.push_back(std::byte{0});
    CHECK(errc_of([&] { (void)dragonx::decode<std::vector<std::uint32_t>>(longer, "my value"); },
                  &what) == errc::malformed_message);
    CHECK_THAT(what, Catch::Contains("my value") && Catch::Contains("left over"));
    // Wrong element size and wrong value size.
    CHECK(errc_of([&] { (void)dragonx::decode<std::vector<std::uint64_t>>(good); }) ==
          errc::malformed_message);
    CHECK(errc_of([&] { (void)dragonx::decode<double>(dragonx::encode(1)); }) ==
          errc::malformed_message);
    CHECK(errc_of([&] { (void)dragonx::decode<std::array<int, 2>>(good); }) ==
          errc::malformed_message);
    // A length that never ends, or claims more than there is.
    const bytes endless(12, std::byte{0xff});
    CHECK(errc_of([&] { (void)dragonx::decode<std::string>(endless); }) ==
          errc::malformed_message);
    const bytes liar{std::byte{0x7f}, std::byte{'a'}};
    CHECK(errc_of([&] { (void)dragonx::decode<std::string>(liar); }, &what) ==
          errc::malformed_message);
    CHECK_THAT(what, Catch::Contains("truncated"));
    // Missing chunks of a composite value.
    CHECK(errc_of([&] { (void)dragonx::decode<point>(dragonx::encode(2.0)); }) ==
          errc::malformed_message);
}

namespace {

struct job {
    std::string name;
    std::uint32_t rank = 0;
    std::optional<std::vector<int>> cpus;
    std::map<std::string, std::string> env;
    std::vector<std::string> args;
    static auto fields(auto& self)
    {
        return std::tie(self.name, self.rank, self.cpus, self.env, self.args);
    }
    bool operator==(const job&) const = default;
};

struct ping {
    std::uint64_t id = 0;
    static auto fields(auto& self) { return std::tie(self.id); }
    bool operator==(const ping&) const = default;
};

using any_message = std::variant<ping, job, std::string>;

}  // namespace

TEST_CASE("composite codecs: optional, pair, vector, map, variant, described structs",
          "[common][codec]")
{
    CHECK(round_trip(std::optional<int>()) == std::nullopt);
    CHECK(round_trip(std::optional<int>(5)) == 5);
    CHECK(round_trip(std::pair<std::string, double>("x", 2.0)) ==
          std::pair<std::string, double>("x", 2.0));
    const std::vector<std::string> words{"", "a", std::string(300, 'w')};
    CHECK(round_trip(words) == words);
    const std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
    CHECK(round_trip(m) == m);

    const job j{"worker", 3, std::vector<int>{0, 2}, {{"PATH", "/bin"}, {"X", ""}}, {"-v", "x"}};
    CHECK(round_trip(j) == j);
    CHECK(round_trip(job{}) == job{});
    for (const any_message& msg : {any_message(ping{7}), any_message(j), any_message("text")}) {
        CHECK(round_trip(msg) == msg);
    }
}

TEST_CASE("malformed composites are rejected", "[common][codec]")
{
    // An unknown variant alternative.
    encoder out;
    out.value(std::uint32_t{3});
    out.value(std::uint64_t{1});
    CHECK(errc_of([&] { (void)dragonx::decode<any_message>(out.to_bytes()); }) ==
          errc::malformed_message);
    // A count far larger than the message.
    out.clear();
    out.value(std::uint64_t{1} << 60);
    CHECK(errc_of([&] { (void)dragonx::decode<std::vector<std::string>>(out.to_bytes()); }) ==
          errc::malformed_message);
    // A bad presence flag.
    out.clear();
    out.value(std::uint8_t{2});
    out.value(1);
    CHECK(errc_of([&] { (void)dragonx::decode<std::optional<int>>(out.to_bytes()); }) ==
          errc::malformed_message);
    // Every truncation of a described struct.
    const auto good = dragonx::encode(job{"n", 1, std::vector<int>{1}, {{"k", "v"}}, {"a"}});
    for (std::size_t n = 0; n < good.size(); ++n) {
        CAPTURE(n);
        CHECK(errc_of([&] {
                  (void)dragonx::decode<job>(std::span<const std::byte>(good.data(), n));
              }) == errc::malformed_message);
    }
}
