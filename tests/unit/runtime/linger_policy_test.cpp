// linger_policy_test.cpp - the transport agent's choice of letting a result wait for a
// request: it keeps lingering while that pays, nearly stops when it does not, and notices
// when the pattern changes back.
#include <catch2/catch.hpp>

#include <type_traits>

#include "transport/linger_policy.hpp"

namespace rt = dragonx::rt::detail;

static_assert(std::is_nothrow_default_constructible_v<rt::linger_policy>);

namespace {

/// How many of `n` results the policy holds, each hold ending as `paid`.
int holds_of(rt::linger_policy& p, int n, bool paid)
{
    int held = 0;
    for (int i = 0; i < n; ++i) {
        if (p.should_hold()) {
            ++held;
            if (paid) {
                p.paid_off();
            } else {
                p.ran_out();
            }
        }
    }
    return held;
}

}  // namespace

TEST_CASE("linger policy: a ping-pong keeps every result lingering", "[transport]")
{
    rt::linger_policy p;
    CHECK(holds_of(p, 1000, true) == 1000);
}

TEST_CASE("linger policy: a stream nobody answers lingers rarely", "[transport]")
{
    rt::linger_policy p;
    // It starts out lingering, gives up once the score is spent, then explores one in 8.
    const int held = holds_of(p, 8000, false);
    CHECK(held >= 1000);
    CHECK(held <= 1000 + rt::linger_policy::max_score + 1);
}

TEST_CASE("linger policy: after a stream, answers bring the linger back", "[transport]")
{
    rt::linger_policy p;
    (void)holds_of(p, 1000, false);
    // Explored holds that pay raise the score by 2, ran-out ones lower it by 1: a few paid
    // explorations are enough to linger on every result again.
    int results = 0;
    while (!p.should_hold() && results < 100) {
        ++results;
    }
    CHECK(results < static_cast<int>(rt::linger_policy::explore_every));
    p.paid_off();
    (void)holds_of(p, 200, true);
    CHECK(holds_of(p, 100, true) == 100);
}
