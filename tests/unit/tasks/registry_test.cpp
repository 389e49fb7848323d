// registry_test.cpp - dragonx::task_registry and task<R(A...)> without a run: names, and
// calls through the invokers as a worker makes them (arguments in, results out by codecs).
#include <catch2/catch.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/tasks/registry.hpp>
#include <dragonx/tasks/task_pool.hpp>

#include "support.hpp"

using dragonx::bytes;
using dragonx::decoder;
using dragonx::encoder;
using dragonx::errc;
using dragonx::task;
using dragonx::task_registry;
using dragonx::test::errc_of;

namespace {

/// A value with a codec from its fields().
struct sample {
    std::int64_t id = 0;
    std::string label;
    std::vector<double> values;

    static auto fields(auto& self) { return std::tie(self.id, self.label, self.values); }
    bool operator==(const sample&) const = default;
};

int twice(int x) { return 2 * x; }

}  // namespace

// A task's signature is the function's, with arguments and result taken by value.
static_assert(std::is_same_v<dragonx::detail::callable_traits<decltype(&twice)>::type,
                             task<int(int)>>);
static_assert(std::is_same_v<dragonx::detail::callable_traits<decltype([](const std::string&,
                                                                           sample) {})>::type,
                             task<void(std::string, sample)>>);
static_assert(std::is_copy_constructible_v<task<int(int)>>);
static_assert(std::is_nothrow_move_constructible_v<task<int(int)>>);

namespace {

// Calls `t` as a worker runs a chunk: `calls` argument tuples encoded back to back, one
// invocation per call, then the results decoded from what the invocations appended.
template <class R, class... A>
std::vector<R> run_chunk(const task_registry& registry, const task<R(A...)>& t,
                         const std::vector<std::tuple<A...>>& calls)
{
    encoder out;
    for (const auto& args : calls) {
        std::apply([&](const A&... a) { task<R(A...)>::encode_args(out, a...); }, args);
    }
    const bytes message = out.to_bytes();
    const auto* invoke = registry.find(t.name());
    REQUIRE(invoke != nullptr);
    decoder in(message, "test arguments");
    encoder scratch;
    dragonx::detail::chunk_outcome outcome{.ok = true,
                                           .count = static_cast<std::uint32_t>(calls.size())};
    for (std::size_t i = 0; i < calls.size(); ++i) {
        (*invoke)(in, scratch, outcome.results);
    }
    in.expect_end();
    std::vector<R> results;
    dragonx::detail::decode_results(outcome, results);
    return results;
}

// One call with arguments `args`: its encoded results (empty for a void task).
bytes invoke_once(const task_registry& registry, const std::string& name, const bytes& args)
{
    const auto* invoke = registry.find(name);
    REQUIRE(invoke != nullptr);
    decoder in(args, "test arguments");
    encoder scratch;
    bytes results;
    (*invoke)(in, scratch, results);
    in.expect_end();
    return results;
}

}  // namespace

TEST_CASE("task_registry finds what was added, by name", "[tasks][registry]")
{
    task_registry registry;
    const auto square = registry.add("square", [](int x) { return x * x; });
    const auto doubled = registry.add("twice", &twice);
    const auto by_function = registry.add("twice_too", twice);
    CHECK(square.name() == "square");
    CHECK(doubled.name() == "twice");
    CHECK(by_function.name() == "twice_too");
    CHECK(registry.find("square") != nullptr);
    CHECK(registry.find("twice") != nullptr);
    CHECK(registry.find("missing") == nullptr);
    CHECK(registry.find("") == nullptr);
    CHECK(registry.names() == std::vector<std::string>{"square", "twice", "twice_too"});
}

TEST_CASE("task_registry refuses a name twice, and an empty name", "[tasks][registry]")
{
    task_registry registry;
    (void)registry.add("square", [](int x) { return x * x; });
    std::string what;
    CHECK(errc_of([&] { (void)registry.add("square", [](int x) { return x; }); }, &what) ==
          errc::already_exists);
    CHECK(what.find("'square'") != std::string::npos);
    CHECK(errc_of([&] { (void)registry.add("", [](int x) { return x; }); }) ==
          errc::invalid_argument);
    // The first registration is the one that stays.
    CHECK(dragonx::decode<int>(invoke_once(registry, "square", dragonx::encode(7))) == 49);
    CHECK(registry.names() == std::vector<std::string>{"square"});
}

TEST_CASE("invokers round-trip arguments and results through codecs", "[tasks][registry]")
{
    task_registry registry;

    SECTION("ints, several calls in one chunk")
    {
        const auto square = registry.add("square", [](int x) { return x * x; });
        CHECK(run_chunk(registry, square, std::vector<std::tuple<int>>{{0}, {-3}, {12}}) ==
              std::vector<int>{0, 9, 144});
    }
    SECTION("strings, including an empty one and one with zero bytes")
    {
        const auto shout = registry.add("shout", [](std::string s) { return s + "!"; });
        const std::string with_zero("a\0b", 3);
        CHECK(run_chunk(registry, shout,
                        std::vector<std::tuple<std::string>>{{""}, {"hi"}, {with_zero}}) ==
              std::vector<std::string>{"!", "hi!", with_zero + "!"});
    }
    SECTION("a struct with fields, in and out")
    {
        const auto grow = registry.add("grow", [](sample s) {
            s.id += 1;
            s.label += "+";
            s.values.push_back(0.5);
            return s;
        });
        const sample in{41, "x", {1.0, 2.0}};
        CHECK(run_chunk(registry, grow, std::vector<std::tuple<sample>>{{in}}) ==
              std::vector<sample>{{42, "x+", {1.0, 2.0, 0.5}}});
    }
    SECTION("several arguments of different types, in order")
    {
        const auto describe = registry.add("describe", [](int n, std::string s, double d) {
            return std::to_string(n) + "/" + s + "/" + std::to_string(d);
        });
        const auto minus = registry.add("minus", [](std::int64_t a, std::int64_t b) {
            return a - b;
        });
        CHECK(run_chunk(registry, describe,
                        std::vector<std::tuple<int, std::string, double>>{{3, "x", 0.5}}) ==
              std::vector<std::string>{"3/x/" + std::to_string(0.5)});
        CHECK(run_chunk(registry, minus,
                        std::vector<std::tuple<std::int64_t, std::int64_t>>{{10, 3}, {3, 10}}) ==
              std::vector<std::int64_t>{7, -7});
    }
    SECTION("no arguments")
    {
        const auto answer = registry.add("answer", [] { return 42; });
        encoder none;
        const bytes results = invoke_once(registry, answer.name(), none.to_bytes());
        CHECK(dragonx::decode<int>(results) == 42);
    }
    SECTION("a void result appends nothing, and the function runs")
    {
        int total = 0;
        const auto add_to_total = registry.add("add", [&total](int x) { total += x; });
        encoder out;
        task<void(int)>::encode_args(out, 5);
        CHECK(invoke_once(registry, add_to_total.name(), out.to_bytes()).empty());
        CHECK(total == 5);
    }
}

TEST_CASE("what a task throws comes out of its invoker", "[tasks][registry]")
{
    task_registry registry;
    (void)registry.add("unlucky", [](int x) {
        if (x == 13) {
            throw std::runtime_error("unlucky input 13");
        }
        return x;
    });
    (void)registry.add("refuse", [](int) -> int {
        dragonx::throw_error(errc::invalid_argument, "refused");
    });
    encoder thirteen;
    thirteen.value(13);
    CHECK_THROWS_WITH(invoke_once(registry, "unlucky", thirteen.to_bytes()), "unlucky input 13");
    CHECK(errc_of([&] { (void)invoke_once(registry, "refuse", thirteen.to_bytes()); }) ==
          errc::invalid_argument);

    // Arguments that do not decode as the task's: malformed_message, the function not run.
    encoder missing;
    CHECK(errc_of([&] { (void)invoke_once(registry, "unlucky", missing.to_bytes()); }) ==
          errc::malformed_message);
    encoder wrong_size;
    wrong_size.value(std::int64_t{13});
    CHECK(errc_of([&] { (void)invoke_once(registry, "unlucky", wrong_size.to_bytes()); }) ==
          errc::malformed_message);
}

TEST_CASE("task::bind encodes arguments that the task's invoker decodes", "[tasks][registry]")
{
    task_registry registry;
    std::vector<std::string> seen;
    const auto remember = registry.add("remember", [&seen](std::string s, int n, sample x) {
        seen.push_back(s + ":" + std::to_string(n) + ":" + x.label);
    });
    const auto call = remember.bind("key", 7, sample{1, "label", {2.0}});
    CHECK(call.name == "remember");
    CHECK(invoke_once(registry, call.name, call.args).empty());
    CHECK(seen == std::vector<std::string>{"key:7:label"});

    const auto square = registry.add("square", [](int x) { return x * x; });
    const auto square_of_9 = square.bind(9);
    CHECK(dragonx::decode<int>(invoke_once(registry, square_of_9.name, square_of_9.args)) == 81);
}
