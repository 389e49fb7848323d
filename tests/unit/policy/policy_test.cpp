// policy_test.cpp - dragonx::policy: merge (set fields win, defaults included), the global
// policy, validation, text form, and the codec (set/unset kept, malformed input rejected).
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <dragonx/policy/policy.hpp>

#include "support.hpp"

using dragonx::distribution;
using dragonx::errc;
using dragonx::placement;
using dragonx::policy;
using dragonx::test::errc_of;

static_assert(std::is_nothrow_move_constructible_v<policy>);
static_assert(std::is_copy_constructible_v<policy>);
static_assert(dragonx::encodable<policy> && dragonx::decodable<policy>);

namespace {

// A policy with every field set, none to its global default.
policy full_policy()
{
    policy p;
    p.placement_kind = placement::host_name;
    p.host_name = "nid00042";
    p.host_id = 7;
    p.distribution_kind = distribution::block;
    p.cpu_affinity = std::vector<int>{0, 2, 4};
    p.gpu_affinity = std::vector<int>{3, 1};
    return p;
}

// The policy whose set fields are the bits of `mask` (in declaration order), values from
// full_policy().
policy policy_with_fields(unsigned mask)
{
    const policy full = full_policy();
    policy p;
    if ((mask & 1U) != 0) {
        p.placement_kind = full.placement_kind;
    }
    if ((mask & 2U) != 0) {
        p.host_name = full.host_name;
    }
    if ((mask & 4U) != 0) {
        p.host_id = full.host_id;
    }
    if ((mask & 8U) != 0) {
        p.distribution_kind = full.distribution_kind;
    }
    if ((mask & 16U) != 0) {
        p.cpu_affinity = full.cpu_affinity;
    }
    if ((mask & 32U) != 0) {
        p.gpu_affinity = full.gpu_affinity;
    }
    return p;
}

dragonx::bytes bytes_of(std::initializer_list<int> values)
{
    dragonx::bytes b;
    for (int v : values) {
        b.push_back(static_cast<std::byte>(v));
    }
    return b;
}

}  // namespace

TEST_CASE("a fresh policy has every field unset", "[policy]")
{
    const policy p;
    CHECK_FALSE(p.placement_kind);
    CHECK_FALSE(p.host_name);
    CHECK_FALSE(p.host_id);
    CHECK_FALSE(p.distribution_kind);
    CHECK_FALSE(p.cpu_affinity);
    CHECK_FALSE(p.gpu_affinity);
    CHECK(p == policy{});
    CHECK_FALSE(p == full_policy());
}

TEST_CASE("global_policy is placement anywhere, distribution roundrobin, nothing else",
          "[policy]")
{
    policy expected;
    expected.placement_kind = placement::anywhere;
    expected.distribution_kind = distribution::roundrobin;
    CHECK(dragonx::global_policy() == expected);
}

TEST_CASE("merge: every set field of high wins, unset fields come from low", "[policy]")
{
    const policy low = full_policy();

    SECTION("an empty high keeps low") { CHECK(dragonx::merge(low, policy{}) == low); }
    SECTION("an empty low takes high") { CHECK(dragonx::merge(policy{}, low) == low); }
    SECTION("each field on its own")
    {
        for (unsigned bit = 0; bit < 6; ++bit) {
            policy high;
            policy expected = low;
            switch (bit) {
            case 0:
                high.placement_kind = expected.placement_kind = placement::host_id;
                break;
            case 1:
                high.host_name = expected.host_name = "other";
                break;
            case 2:
                high.host_id = expected.host_id = 3;
                break;
            case 3:
                high.distribution_kind = expected.distribution_kind = distribution::roundrobin;
                break;
            case 4:
                high.cpu_affinity = expected.cpu_affinity = std::vector<int>{9};
                break;
            default:
                high.gpu_affinity = expected.gpu_affinity = std::vector<int>{0};
                break;
            }
            INFO("field " << bit);
            CHECK(dragonx::merge(low, high) == expected);
        }
    }
}

TEST_CASE("merge: a value equal to the global default still wins (spec §5.2 QUIRK fixed)",
          "[policy]")
{
    // A context asks for block on a named host; the global policy merged on top of it must not
    // mask the context's distribution or placement.
    policy context;
    context.placement_kind = placement::host_name;
    context.host_name = "n1";
    context.distribution_kind = distribution::block;

    const policy effective = dragonx::merge(dragonx::global_policy(), context);
    CHECK(effective.placement_kind == placement::host_name);
    CHECK(effective.distribution_kind == distribution::block);
    CHECK(effective.host_name == "n1");

    // An explicit roundrobin/anywhere (the defaults) overrides the context's choice.
    policy explicit_policy;
    explicit_policy.placement_kind = placement::anywhere;
    explicit_policy.distribution_kind = distribution::roundrobin;
    const policy overridden = dragonx::merge(context, explicit_policy);
    CHECK(overridden.placement_kind == placement::anywhere);
    CHECK(overridden.distribution_kind == distribution::roundrobin);
    CHECK(overridden.host_name == "n1");
}

TEST_CASE("merge: a set but empty affinity list overrides a lower list", "[policy]")
{
    policy low;
    low.cpu_affinity = std::vector<int>{1, 2};
    low.gpu_affinity = std::vector<int>{0};
    policy high;
    high.cpu_affinity = std::vector<int>{};
    const policy merged = dragonx::merge(low, high);
    REQUIRE(merged.cpu_affinity);
    CHECK(merged.cpu_affinity->empty());
    CHECK(merged.gpu_affinity == std::vector<int>{0});
}

TEST_CASE("merge: the documented hierarchy, most specific last", "[policy]")
{
    policy group;
    group.distribution_kind = distribution::block;
    group.cpu_affinity = std::vector<int>{0, 1};
    policy tmpl;
    tmpl.cpu_affinity = std::vector<int>{2};
    policy explicit_policy;
    explicit_policy.placement_kind = placement::host_id;
    explicit_policy.host_id = 1;

    using dragonx::merge;
    const policy effective =
        merge(dragonx::global_policy(), merge(group, merge(tmpl, explicit_policy)));
    CHECK(effective.placement_kind == placement::host_id);
    CHECK(effective.host_id == 1U);
    CHECK(effective.distribution_kind == distribution::block);
    CHECK(effective.cpu_affinity == std::vector<int>{2});
    CHECK_FALSE(effective.gpu_affinity);
}

TEST_CASE("validate: pinned placements need their host, ids are not negative", "[policy]")
{
    std::string what;
    policy p;
    CHECK(errc_of([&] { dragonx::validate(p); }) == errc::ok);

    p.placement_kind = placement::host_name;
    CHECK(errc_of([&] { dragonx::validate(p); }, &what) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("host_name"));
    p.host_name = "";
    CHECK(errc_of([&] { dragonx::validate(p); }) == errc::invalid_argument);
    p.host_name = "n0";
    CHECK(errc_of([&] { dragonx::validate(p); }) == errc::ok);

    p.placement_kind = placement::host_id;
    CHECK(errc_of([&] { dragonx::validate(p); }, &what) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("host_id"));
    p.host_id = 0;
    CHECK(errc_of([&] { dragonx::validate(p); }) == errc::ok);

    p.cpu_affinity = std::vector<int>{0, -1};
    CHECK(errc_of([&] { dragonx::validate(p); }, &what) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("cpu_affinity"));
    p.cpu_affinity.reset();
    p.gpu_affinity = std::vector<int>{-2};
    CHECK(errc_of([&] { dragonx::validate(p); }, &what) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("gpu_affinity"));
}

TEST_CASE("to_string names the set fields only", "[policy]")
{
    CHECK(dragonx::to_string(policy{}) == "policy{}");
    policy p;
    p.placement_kind = placement::host_name;
    p.host_name = "n1";
    p.cpu_affinity = std::vector<int>{0, 3};
    CHECK(dragonx::to_string(p) == "policy{placement=host_name, host_name=n1, cpu_affinity=[0,3]}");
    CHECK(dragonx::to_string(distribution::block) == "block");
}

TEST_CASE("codec<policy>: every combination of set fields round-trips", "[policy][codec]")
{
    for (unsigned mask = 0; mask < 64; ++mask) {
        const policy p = policy_with_fields(mask);
        INFO("field mask " << mask << ": " << dragonx::to_string(p));
        const auto encoded = dragonx::encode(p);
        CHECK(dragonx::decode<policy>(encoded) == p);
    }
}

TEST_CASE("codec<policy>: set-but-empty values stay set", "[policy][codec]")
{
    policy p;
    p.host_name = "";
    p.host_id = 0;
    p.cpu_affinity = std::vector<int>{};
    p.gpu_affinity = std::vector<int>{};
    const policy back = dragonx::decode<policy>(dragonx::encode(p));
    CHECK(back == p);
    REQUIRE(back.cpu_affinity);
    CHECK(back.cpu_affinity->empty());
    REQUIRE(back.host_name);
    CHECK(back.host_name->empty());
}

TEST_CASE("codec<policy>: policies inside a larger message keep their boundaries",
          "[policy][codec]")
{
    dragonx::encoder out;
    const policy a = full_policy();
    const policy b = policy_with_fields(0b101010U);
    dragonx::codec<policy>::encode(a, out);
    out.value(std::uint32_t{99});
    dragonx::codec<policy>::encode(b, out);
    const auto message = out.to_bytes();

    dragonx::decoder in(message, "test message");
    CHECK(dragonx::codec<policy>::decode(in) == a);
    CHECK(in.value<std::uint32_t>() == 99U);
    CHECK(dragonx::codec<policy>::decode(in) == b);
    CHECK(in.at_end());
}

TEST_CASE("codec<policy>: malformed input throws malformed_message", "[policy][codec]")
{
    std::string what;
    auto decode = [](const dragonx::bytes& b) { (void)dragonx::decode<policy>(b, "policy"); };

    SECTION("empty input")
    {
        CHECK(errc_of([&] { decode({}); }) == errc::malformed_message);
    }
    SECTION("unknown field bits")
    {
        CHECK(errc_of([&] { decode(bytes_of({1, 0x40})); }, &what) == errc::malformed_message);
        CHECK_THAT(what, Catch::Contains("field"));
    }
    SECTION("placement out of range")
    {
        CHECK(errc_of([&] { decode(bytes_of({1, 0x01, 1, 4})); }, &what) ==
              errc::malformed_message);
        CHECK_THAT(what, Catch::Contains("placement"));
    }
    SECTION("distribution out of range")
    {
        CHECK(errc_of([&] { decode(bytes_of({1, 0x08, 1, 2})); }, &what) ==
              errc::malformed_message);
        CHECK_THAT(what, Catch::Contains("distribution"));
    }
    SECTION("a set field with no chunk")
    {
        CHECK(errc_of([&] { decode(bytes_of({1, 0x04})); }) == errc::malformed_message);
    }
    SECTION("host_id of the wrong size")
    {
        CHECK(errc_of([&] { decode(bytes_of({1, 0x04, 2, 7, 0})); }) == errc::malformed_message);
    }
    SECTION("cpu list that is not a whole number of ints")
    {
        CHECK(errc_of([&] { decode(bytes_of({1, 0x10, 3, 1, 0, 0})); }) ==
              errc::malformed_message);
    }
    SECTION("a mask chunk of the wrong size")
    {
        CHECK(errc_of([&] { decode(bytes_of({2, 0, 0})); }) == errc::malformed_message);
    }
    SECTION("bytes left over")
    {
        auto b = dragonx::encode(full_policy());
        b.push_back(std::byte{0});
        CHECK(errc_of([&] { decode(b); }) == errc::malformed_message);
    }
    SECTION("every truncation of a full policy")
    {
        const auto b = dragonx::encode(full_policy());
        for (std::size_t n = 0; n < b.size(); ++n) {
            INFO("truncated to " << n << " of " << b.size() << " bytes");
            const dragonx::bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
            CHECK(errc_of([&] { decode(cut); }) == errc::malformed_message);
        }
    }
}
