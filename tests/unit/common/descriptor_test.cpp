// descriptor_test.cpp - descriptor framing: round trips, kind and version checks, fuzzing.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/descriptor.hpp>
#include <dragonx/common/encoding.hpp>
#include <dragonx/common/error.hpp>

using Catch::Matchers::Contains;
using dragonx::descriptor_kind;

namespace {

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr descriptor_kind all_kinds[] = {descriptor_kind::pool, descriptor_kind::allocation,
                                         descriptor_kind::channel};

std::vector<std::byte> random_bytes(std::mt19937_64& rng, std::size_t n)
{
    std::vector<std::byte> out(n);
    for (auto& b : out) {
        b = static_cast<std::byte>(rng() & 0xffu);
    }
    return out;
}

/// The dragonx::error open_descriptor() throws for `text`, or std::nullopt if it accepted it.
/// Any other exception escapes and fails the test.
std::optional<dragonx::error> open_error(std::string_view text, descriptor_kind kind,
                                         std::uint8_t version)
{
    try {
        (void)dragonx::open_descriptor(text, kind, version);
    } catch (const dragonx::error& e) {
        return e;
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("descriptor kinds have names", "[common][descriptor]")
{
    CHECK(dragonx::descriptor_kind_name(descriptor_kind::pool) == "pool descriptor");
    CHECK(dragonx::descriptor_kind_name(descriptor_kind::allocation) == "allocation descriptor");
    CHECK(dragonx::descriptor_kind_name(descriptor_kind::channel) == "channel descriptor");
    CHECK(dragonx::descriptor_kind_name(static_cast<descriptor_kind>('Z')) ==
          "unknown descriptor");
}

TEST_CASE("descriptors round-trip payloads of several sizes", "[common][descriptor]")
{
    std::mt19937_64 rng(0x6465736372697074ULL);
    for (const std::size_t size : {0, 1, 2, 3, 4, 5, 7, 8, 31, 64, 255, 1000, 65537}) {
        for (const auto kind : all_kinds) {
            for (const std::uint8_t version : {0, 1, 2, 255}) {
                const auto payload = random_bytes(rng, size);
                const std::string text = dragonx::seal_descriptor(kind, version, payload);
                CAPTURE(size, static_cast<char>(kind), static_cast<int>(version));
                // Four header bytes and a four-byte checksum frame the payload.
                REQUIRE(text.size() == (4 * (size + 8) + 2) / 3);
                REQUIRE(text.find_first_not_of(alphabet) == std::string::npos);
                REQUIRE(dragonx::open_descriptor(text, kind, version) == payload);
            }
        }
    }
}

TEST_CASE("sealing is deterministic and depends on every input", "[common][descriptor]")
{
    const std::vector<std::byte> payload{std::byte{1}, std::byte{2}, std::byte{3}};
    const auto a = dragonx::seal_descriptor(descriptor_kind::pool, 1, payload);
    CHECK(a == dragonx::seal_descriptor(descriptor_kind::pool, 1, payload));
    CHECK(a != dragonx::seal_descriptor(descriptor_kind::allocation, 1, payload));
    CHECK(a != dragonx::seal_descriptor(descriptor_kind::pool, 2, payload));
    const std::vector<std::byte> other{std::byte{1}, std::byte{2}, std::byte{4}};
    CHECK(a != dragonx::seal_descriptor(descriptor_kind::pool, 1, other));
}

TEST_CASE("a descriptor of the wrong kind is rejected, naming both kinds",
          "[common][descriptor]")
{
    const std::vector<std::byte> payload{std::byte{0x42}, std::byte{0x43}};
    for (const auto sealed : all_kinds) {
        const std::string text = dragonx::seal_descriptor(sealed, 1, payload);
        for (const auto wanted : all_kinds) {
            CAPTURE(static_cast<char>(sealed), static_cast<char>(wanted));
            const auto err = open_error(text, wanted, 1);
            if (sealed == wanted) {
                CHECK_FALSE(err.has_value());
                continue;
            }
            REQUIRE(err.has_value());
            CHECK(err->is(dragonx::errc::malformed_descriptor));
            CHECK(err->code() == dragonx::errc::malformed_descriptor);
            CHECK_THAT(err->what(), Contains(std::string(dragonx::descriptor_kind_name(sealed))));
            CHECK_THAT(err->what(), Contains(std::string(dragonx::descriptor_kind_name(wanted))));
        }
    }

    SECTION("an unknown kind byte is reported as such")
    {
        const std::string text =
            dragonx::seal_descriptor(static_cast<descriptor_kind>('Z'), 1, payload);
        const auto err = open_error(text, descriptor_kind::pool, 1);
        REQUIRE(err.has_value());
        CHECK(err->is(dragonx::errc::malformed_descriptor));
        CHECK_THAT(err->what(), Contains("unknown descriptor"));
        CHECK_THAT(err->what(), Contains("pool descriptor"));
    }
}

TEST_CASE("a descriptor of another format version is rejected", "[common][descriptor]")
{
    const std::vector<std::byte> payload{std::byte{7}};
    const std::pair<std::uint8_t, std::uint8_t> cases[] = {{1, 2}, {2, 1}, {0, 255}, {255, 0}};
    for (const auto& [sealed, wanted] : cases) {
        CAPTURE(static_cast<int>(sealed), static_cast<int>(wanted));
        const std::string text =
            dragonx::seal_descriptor(descriptor_kind::channel, sealed, payload);
        const auto err = open_error(text, descriptor_kind::channel, wanted);
        REQUIRE(err.has_value());
        CHECK(err->is(dragonx::errc::version_mismatch));
        CHECK_FALSE(err->is(dragonx::errc::malformed_descriptor));
        CHECK_THAT(err->what(), Contains("channel descriptor"));
        CHECK_THAT(err->what(), Contains(std::to_string(sealed)));
        CHECK_THAT(err->what(), Contains(std::to_string(wanted)));
    }
}

TEST_CASE("malformed frames are rejected as malformed descriptors", "[common][descriptor]")
{
    const std::vector<std::byte> payload{std::byte{0x10}, std::byte{0x20}, std::byte{0x30},
                                         std::byte{0x40}};
    const std::string good = dragonx::seal_descriptor(descriptor_kind::pool, 3, payload);
    const auto frame = dragonx::base64url_decode(good);
    REQUIRE(frame.has_value());
    REQUIRE(frame->size() == payload.size() + 8);

    const auto rejected = [](std::string_view text) {
        const auto err = open_error(text, descriptor_kind::pool, 3);
        return err.has_value() && err->is(dragonx::errc::malformed_descriptor);
    };

    SECTION("not base64url")
    {
        CHECK(rejected("!!!!!!!!!!!!"));
        CHECK(rejected(" " + good));
        CHECK(rejected(good + "\n"));
        CHECK(rejected(good + "="));
    }
    SECTION("too short")
    {
        CHECK(rejected(""));
        CHECK(rejected(dragonx::base64url_encode(std::span(*frame).first(7))));
    }
    SECTION("not ours: wrong magic")
    {
        for (std::size_t i = 0; i < 2; ++i) {
            auto bad = *frame;
            bad[i] ^= std::byte{0x20};
            const auto err = open_error(dragonx::base64url_encode(bad), descriptor_kind::pool, 3);
            REQUIRE(err.has_value());
            CHECK(err->is(dragonx::errc::malformed_descriptor));
        }
    }
    SECTION("every corrupted byte fails the checksum")
    {
        for (std::size_t i = 2; i < frame->size(); ++i) {
            for (const std::byte flip : {std::byte{0x01}, std::byte{0x80}, std::byte{0xff}}) {
                auto bad = *frame;
                bad[i] ^= flip;
                CAPTURE(i, std::to_integer<int>(flip));
                CHECK(rejected(dragonx::base64url_encode(bad)));
            }
        }
    }
    SECTION("extra bytes after the checksum")
    {
        for (std::size_t extra = 1; extra <= 4; ++extra) {
            auto longer = *frame;
            longer.resize(longer.size() + extra, std::byte{0});
            CAPTURE(extra);
            CHECK(rejected(dragonx::base64url_encode(longer)));
            CHECK(rejected(good + std::string(extra, 'A')));
        }
    }
}

TEST_CASE("every strict prefix of a descriptor is rejected", "[common][descriptor]")
{
    std::mt19937_64 rng(0x7072656669787321ULL);
    for (const std::size_t size : {0, 1, 2, 3, 40}) {
        const auto payload = random_bytes(rng, size);
        const std::string text = dragonx::seal_descriptor(descriptor_kind::allocation, 1, payload);
        for (std::size_t n = 0; n < text.size(); ++n) {
            const std::string_view prefix = std::string_view(text).substr(0, n);
            CAPTURE(size, prefix);
            const auto err = open_error(prefix, descriptor_kind::allocation, 1);
            REQUIRE(err.has_value());
            CHECK(err->is(dragonx::errc::malformed_descriptor));
        }
    }
}

TEST_CASE("changing any one character of a descriptor is detected", "[common][descriptor]")
{
    std::mt19937_64 rng(0x666c697073212121ULL);
    const auto payload = random_bytes(rng, 22);
    const std::string text = dragonx::seal_descriptor(descriptor_kind::pool, 1, payload);
    REQUIRE(dragonx::open_descriptor(text, descriptor_kind::pool, 1) == payload);

    int checked = 0;
    for (std::size_t pos = 0; pos < text.size(); ++pos) {
        for (const char c : alphabet) {
            if (c == text[pos]) {
                continue;
            }
            std::string bad = text;
            bad[pos] = c;
            const auto err = open_error(bad, descriptor_kind::pool, 1);
            if (!err || !err->is(dragonx::errc::malformed_descriptor)) {
                FAIL_CHECK("accepted or misreported a corrupted descriptor: "
                           << bad << " (position " << pos << ")");
            }
            ++checked;
        }
    }
    CHECK(checked == static_cast<int>(text.size() * (alphabet.size() - 1)));
}

TEST_CASE("random strings are rejected with dragonx::error", "[common][descriptor]")
{
    std::mt19937_64 rng(0x72616e646f6d3130ULL);
    std::uniform_int_distribution<std::size_t> length(0, 200);
    std::uniform_int_distribution<std::size_t> letter(0, alphabet.size() - 1);
    std::uniform_int_distribution<int> any_byte(0, 255);
    std::uniform_int_distribution<int> percent(0, 99);
    const descriptor_kind kinds[] = {descriptor_kind::pool, descriptor_kind::allocation,
                                     descriptor_kind::channel};

    int accepted = 0;
    int arbitrary = 0;
    for (int i = 0; i < 10'000; ++i) {
        const std::size_t n = length(rng);
        const bool raw = percent(rng) < 20;  // one in five uses arbitrary bytes
        std::string text;
        text.reserve(n);
        for (std::size_t j = 0; j < n; ++j) {
            text += raw ? static_cast<char>(any_byte(rng)) : alphabet[letter(rng)];
        }
        arbitrary += raw ? 1 : 0;
        const auto kind = kinds[static_cast<std::size_t>(i) % 3];
        const auto version = static_cast<std::uint8_t>(i % 4);
        const auto err = open_error(text, kind, version);
        if (!err) {
            ++accepted;
            FAIL_CHECK("accepted a random string: " << text);
        } else if (!err->is(dragonx::errc::malformed_descriptor) &&
                   !err->is(dragonx::errc::version_mismatch)) {
            FAIL_CHECK("unexpected error " << err->code() << " for: " << text);
        }
    }
    CHECK(accepted == 0);
    CHECK(arbitrary > 1000);  // the generator really mixed in arbitrary bytes
}
