// protocol_test.cpp - the messages between a task_pool and its workers (tasks/src/protocol.hpp):
// kinds, the run header, the hello and failed messages, and the hex of the worker environment.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/tasks/registry.hpp>
#include <dragonx/tasks/task_pool.hpp>

#include "protocol.hpp"
#include "support.hpp"

using dragonx::bytes;
using dragonx::decoder;
using dragonx::encoder;
using dragonx::errc;
using dragonx::test::errc_of;
using dragonx::tasks::message_kind;

namespace {

bytes bytes_of(std::initializer_list<unsigned> values)
{
    bytes out;
    for (const unsigned v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

}  // namespace

TEST_CASE("hex: lowercase digits, two per byte, and back", "[tasks][protocol]")
{
    using dragonx::tasks::from_hex;
    using dragonx::tasks::to_hex;
    CHECK(to_hex({}).empty());
    CHECK(from_hex("").empty());
    CHECK(to_hex(bytes_of({0x00, 0x0f, 0xa5, 0xff})) == "000fa5ff");
    CHECK(from_hex("000fa5ff") == bytes_of({0x00, 0x0f, 0xa5, 0xff}));

    bytes every_byte;
    for (unsigned v = 0; v < 256; ++v) {
        every_byte.push_back(static_cast<std::byte>(v));
    }
    const std::string text = to_hex(every_byte);
    CHECK(text.size() == 512);
    CHECK(from_hex(text) == every_byte);
}

TEST_CASE("hex: text that is not what to_hex writes is malformed", "[tasks][protocol]")
{
    using dragonx::tasks::from_hex;
    for (const std::string bad : {"0", "abc", "0g", "g0", "zz", "0 ", "-1", "0x00", "AB"}) {
        INFO("text '" << bad << "'");
        CHECK(errc_of([&] { (void)from_hex(bad); }) == errc::malformed_message);
    }
}

TEST_CASE("message kinds round-trip, and unknown ones are refused", "[tasks][protocol]")
{
    for (const auto kind : {message_kind::run, message_kind::stop, message_kind::hello,
                            message_kind::done, message_kind::failed, message_kind::wake}) {
        encoder out;
        dragonx::tasks::write_kind(out, kind);
        const bytes message = out.to_bytes();
        decoder in(message);
        CHECK(dragonx::tasks::read_kind(in) == kind);
        CHECK(in.at_end());
    }
    for (const std::uint8_t unknown : {0, 7, 255}) {
        INFO("kind " << int(unknown));
        encoder out;
        out.value(unknown);
        const bytes message = out.to_bytes();
        decoder in(message);
        CHECK(errc_of([&] { (void)dragonx::tasks::read_kind(in); }) == errc::malformed_message);
    }
    encoder wide;
    wide.value(std::uint32_t{1});  // a kind is one byte
    const bytes message = wide.to_bytes();
    decoder in(message);
    CHECK(errc_of([&] { (void)dragonx::tasks::read_kind(in); }) == errc::malformed_message);
    decoder empty(std::span<const std::byte>{});
    CHECK(errc_of([&] { (void)dragonx::tasks::read_kind(empty); }) == errc::malformed_message);
}

TEST_CASE("a run message: the header, then each call's arguments", "[tasks][protocol]")
{
    // What task_pool writes for a chunk and what a worker reads (worker.cpp's run_chunk).
    dragonx::task_registry registry;
    const auto concat = registry.add(
        "concat", [](std::string s, int n) { return s + ":" + std::to_string(n); });
    encoder out;
    dragonx::detail::write_run_header(out, 0x1122334455667788, concat.name(), 2);
    // The encoder refers to the strings' bytes until written out: they must outlive it.
    const std::string a = "a";
    const std::string b = "b";
    decltype(concat)::encode_args(out, a, 1);
    decltype(concat)::encode_args(out, b, 2);
    const bytes message = out.to_bytes();

    decoder in(message, "run message");
    REQUIRE(dragonx::tasks::read_kind(in) == message_kind::run);
    CHECK(in.value<std::uint64_t>() == 0x1122334455667788);
    const std::string name = in.string();
    CHECK(name == "concat");
    const auto count = in.value<std::uint32_t>();
    REQUIRE(count == 2);
    const auto* invoke = registry.find(name);
    REQUIRE(invoke != nullptr);
    encoder scratch;
    dragonx::detail::chunk_outcome outcome{.ok = true, .count = count};
    for (std::uint32_t i = 0; i < count; ++i) {
        (*invoke)(in, scratch, outcome.results);
    }
    in.expect_end();
    std::vector<std::string> results;
    dragonx::detail::decode_results(outcome, results);
    CHECK(results == std::vector<std::string>{"a:1", "b:2"});
}

TEST_CASE("hello and failed messages round-trip", "[tasks][protocol]")
{
    const dragonx::tasks::hello_message hello{3, 77, 1, "node1", "initializer 'x' failed"};
    const auto h = dragonx::decode<dragonx::tasks::hello_message>(dragonx::encode(hello));
    CHECK(h.slot == 3);
    CHECK(h.puid == 77);
    CHECK(h.node == 1);
    CHECK(h.hostname == "node1");
    CHECK(h.init_error == "initializer 'x' failed");

    const dragonx::tasks::failed_message failed{42, 5, "unlucky input 13"};
    const auto f = dragonx::decode<dragonx::tasks::failed_message>(dragonx::encode(failed));
    CHECK(f.key == 42);
    CHECK(f.index == 5);
    CHECK(f.message == "unlucky input 13");
}
