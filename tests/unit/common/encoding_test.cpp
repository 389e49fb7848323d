// encoding_test.cpp - base64url (no padding) and hex: vectors, round trips, rejection.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/encoding.hpp>

using namespace std::string_view_literals;

namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::vector<std::byte> bytes_of(std::string_view text)
{
    std::vector<std::byte> out;
    out.reserve(text.size());
    for (char c : text) {
        out.push_back(static_cast<std::byte>(static_cast<unsigned char>(c)));
    }
    return out;
}

std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values)
{
    std::vector<std::byte> out;
    out.reserve(values.size());
    for (unsigned v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

std::vector<std::byte> random_bytes(std::mt19937_64& rng, std::size_t n)
{
    std::vector<std::byte> out(n);
    for (auto& b : out) {
        b = static_cast<std::byte>(rng() & 0xffu);
    }
    return out;
}

bool only_alphabet(std::string_view text)
{
    return text.find_first_not_of(alphabet) == std::string_view::npos;
}

}  // namespace

TEST_CASE("base64url encodes the RFC 4648 vectors without padding", "[common][encoding]")
{
    struct vector_case {
        std::string_view plain;
        std::string_view encoded;
    };
    const vector_case cases[] = {
        {"", ""},
        {"f", "Zg"},
        {"fo", "Zm8"},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.plain, c.encoded);
        CHECK(dragonx::base64url_encode(bytes_of(c.plain)) == c.encoded);
        const auto decoded = dragonx::base64url_decode(c.encoded);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == bytes_of(c.plain));
    }
}

TEST_CASE("base64url uses '-' and '_' for 62 and 63", "[common][encoding]")
{
    // Standard base64 of fb ff is "+/8=": base64url replaces '+' and '/' and drops the '='.
    CHECK(dragonx::base64url_encode(bytes_of({0xfb, 0xff})) == "-_8");
    CHECK(dragonx::base64url_encode(bytes_of({0xfb, 0xef, 0xbe})) == "----");
    CHECK(dragonx::base64url_encode(bytes_of({0xff, 0xff, 0xff})) == "____");
    CHECK(dragonx::base64url_encode(bytes_of({0x00, 0x00, 0x00})) == "AAAA");

    auto decoded = dragonx::base64url_decode("-_8");
    REQUIRE(decoded.has_value());
    CHECK(*decoded == bytes_of({0xfb, 0xff}));
    decoded = dragonx::base64url_decode("----");
    REQUIRE(decoded.has_value());
    CHECK(*decoded == bytes_of({0xfb, 0xef, 0xbe}));
    decoded = dragonx::base64url_decode("____");
    REQUIRE(decoded.has_value());
    CHECK(*decoded == bytes_of({0xff, 0xff, 0xff}));
}

TEST_CASE("base64url round-trips random bytes of every length 0..100", "[common][encoding]")
{
    std::mt19937_64 rng(0x6261736536347531ULL);
    for (std::size_t n = 0; n <= 100; ++n) {
        for (int rep = 0; rep < 8; ++rep) {
            const auto bytes = random_bytes(rng, n);
            const std::string text = dragonx::base64url_encode(bytes);
            CAPTURE(n, text);
            REQUIRE(text.size() == (4 * n + 2) / 3);
            REQUIRE(only_alphabet(text));
            const auto decoded = dragonx::base64url_decode(text);
            REQUIRE(decoded.has_value());
            REQUIRE(*decoded == bytes);
        }
    }
}

TEST_CASE("base64url round-trips every byte value", "[common][encoding]")
{
    std::vector<std::byte> all;
    for (unsigned v = 0; v < 256; ++v) {
        all.push_back(static_cast<std::byte>(v));
        const std::vector<std::byte> one{static_cast<std::byte>(v)};
        const auto decoded = dragonx::base64url_decode(dragonx::base64url_encode(one));
        REQUIRE(decoded.has_value());
        CHECK(*decoded == one);
    }
    const auto decoded = dragonx::base64url_decode(dragonx::base64url_encode(all));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == all);
}

TEST_CASE("base64url rejects characters outside the alphabet", "[common][encoding]")
{
    const std::string bad_chars[] = {"+", "/", "=", " ", std::string(1, '\0'), "\n", ".", "\xff",
                                     "*"};
    for (const auto& bad : bad_chars) {
        // Splice the bad character into every position of a valid 4-character group, so that
        // neither the length nor the trailing bits can be the reason for the rejection.
        for (std::size_t pos = 0; pos < 4; ++pos) {
            std::string text = "Zm9v";
            text.replace(pos, 1, bad);
            CAPTURE(text, pos);
            CHECK_FALSE(dragonx::base64url_decode(text).has_value());
        }
    }
    // Standard base64 and padded forms are not base64url.
    CHECK_FALSE(dragonx::base64url_decode("+/8=").has_value());
    CHECK_FALSE(dragonx::base64url_decode("+/8").has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zg==").has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zm8=").has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zm9v\0"sv).has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zm\0v"sv).has_value());
    // A multi-byte UTF-8 character.
    CHECK_FALSE(dragonx::base64url_decode("Zm\xc3\xa9").has_value());
}

TEST_CASE("base64url rejects lengths of 4k+1", "[common][encoding]")
{
    for (std::size_t k = 0; k < 6; ++k) {
        const std::string text(4 * k + 1, 'A');
        CAPTURE(text);
        CHECK_FALSE(dragonx::base64url_decode(text).has_value());
    }
    CHECK_FALSE(dragonx::base64url_decode("Zm9vY").has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zm9vYmFyZ").has_value());
}

TEST_CASE("base64url rejects non-canonical trailing bits", "[common][encoding]")
{
    CHECK_FALSE(dragonx::base64url_decode("Zh").has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zm9").has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zm9vYh").has_value());
    CHECK_FALSE(dragonx::base64url_decode("Zm9vYmF").has_value());

    SECTION("two characters: the last one must leave its low 4 bits zero")
    {
        for (std::size_t i = 0; i < alphabet.size(); ++i) {
            for (std::size_t j = 0; j < alphabet.size(); ++j) {
                const std::string text{alphabet[i], alphabet[j]};
                CAPTURE(text);
                const auto decoded = dragonx::base64url_decode(text);
                REQUIRE(decoded.has_value() == ((j & 0xfu) == 0));
                if (decoded) {
                    REQUIRE(decoded->size() == 1);
                    REQUIRE(dragonx::base64url_encode(*decoded) == text);
                }
            }
        }
    }
    SECTION("three characters: the last one must leave its low 2 bits zero")
    {
        for (std::size_t i = 0; i < alphabet.size(); ++i) {
            for (std::size_t j = 0; j < alphabet.size(); ++j) {
                const std::string text{'Z', alphabet[i], alphabet[j]};
                CAPTURE(text);
                const auto decoded = dragonx::base64url_decode(text);
                REQUIRE(decoded.has_value() == ((j & 0x3u) == 0));
                if (decoded) {
                    REQUIRE(decoded->size() == 2);
                    REQUIRE(dragonx::base64url_encode(*decoded) == text);
                }
            }
        }
    }
}

TEST_CASE("hex encodes lower case and round-trips", "[common][encoding][hex]")
{
    CHECK(dragonx::hex_encode({}).empty());
    CHECK(dragonx::hex_encode(bytes_of({0x00, 0x01, 0x7f, 0x80, 0xab, 0xff})) == "00017f80abff");
    CHECK(dragonx::hex_encode(bytes_of("foobar")) == "666f6f626172");

    const auto empty = dragonx::hex_decode("");
    REQUIRE(empty.has_value());
    CHECK(empty->empty());

    std::mt19937_64 rng(0x6865785f74657374ULL);
    for (std::size_t n = 0; n <= 64; ++n) {
        const auto bytes = random_bytes(rng, n);
        const std::string text = dragonx::hex_encode(bytes);
        CAPTURE(n, text);
        REQUIRE(text.size() == 2 * n);
        REQUIRE(text.find_first_not_of("0123456789abcdef") == std::string::npos);
        const auto decoded = dragonx::hex_decode(text);
        REQUIRE(decoded.has_value());
        REQUIRE(*decoded == bytes);
    }
}

TEST_CASE("hex accepts upper and mixed case", "[common][encoding][hex]")
{
    const auto expected = bytes_of({0xde, 0xad, 0xbe, 0xef, 0x0a, 0xf0});
    for (std::string_view text : {"DEADBEEF0AF0"sv, "deadbeef0af0"sv, "dEaDbEeF0aF0"sv}) {
        CAPTURE(text);
        const auto decoded = dragonx::hex_decode(text);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == expected);
    }
}

TEST_CASE("hex rejects odd lengths and non-hex characters", "[common][encoding][hex]")
{
    for (std::string_view text : {"a"sv, "abc"sv, "0"sv, "deadbee"sv}) {
        CAPTURE(text);
        CHECK_FALSE(dragonx::hex_decode(text).has_value());
    }
    for (std::string_view text :
         {"0g"sv, "g0"sv, "zz"sv, "  "sv, "0x12"sv, "-1"sv, "+1"sv, "0 "sv, "\0\0"sv,
          "ab\xff\xff"sv, "0G"sv, "/0"sv, ":0"sv, "@0"sv, "`0"sv}) {
        CAPTURE(text);
        CHECK_FALSE(dragonx::hex_decode(text).has_value());
    }
}
