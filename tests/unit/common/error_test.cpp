// error_test.cpp - dragonx::errc, its category, dragonx::error, and the wire reader/writer.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include <dragonx/common/error.hpp>
#include <dragonx/common/wire.hpp>

static_assert(std::is_base_of_v<std::system_error, dragonx::error>);
static_assert(std::is_error_code_enum_v<dragonx::errc>);
static_assert(!std::is_error_condition_enum_v<dragonx::errc>);
static_assert(std::is_convertible_v<dragonx::errc, std::error_code>);
static_assert(std::is_same_v<std::underlying_type_t<dragonx::errc>, int>);

using Catch::Matchers::Contains;
using dragonx::errc;

namespace {

/// Runs `f` and returns the dragonx::error it throws; fails the test if it throws nothing.
template <class F>
dragonx::error thrown_by(F&& f)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        return e;
    }
    FAIL("expected a dragonx::error, nothing was thrown");
    throw std::logic_error("unreachable");
}

std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values)
{
    std::vector<std::byte> out;
    for (unsigned v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

}  // namespace

TEST_CASE("the dragonx error category", "[common][error]")
{
    CHECK(std::string(dragonx::dragonx_category().name()) == "dragonx");
    CHECK(&dragonx::dragonx_category() == &dragonx::dragonx_category());
    CHECK(dragonx::dragonx_category() != std::system_category());
    CHECK(dragonx::dragonx_category() != std::generic_category());
}

TEST_CASE("errc values keep their wire numbers", "[common][error]")
{
    CHECK(static_cast<int>(errc::ok) == 0);
    CHECK(static_cast<int>(errc::invalid_argument) == 1);
    CHECK(static_cast<int>(errc::timeout) == 2);
    CHECK(static_cast<int>(errc::malformed_descriptor) == 7);
    CHECK(static_cast<int>(errc::version_mismatch) == 8);
    CHECK(static_cast<int>(errc::internal) == 17);
    CHECK(static_cast<int>(errc::message_too_large) == 18);
    CHECK(static_cast<int>(errc::malformed_message) == 19);
    CHECK(static_cast<int>(errc::broken_barrier) == 20);
    CHECK(static_cast<int>(errc::no_runtime) == 21);
    CHECK(static_cast<int>(errc::peer_lost) == 22);
    CHECK(static_cast<int>(errc::process_failed) == 23);
    CHECK(static_cast<int>(errc::invalid_operation) == 24);
    CHECK(static_cast<int>(errc::checkpoint_unavailable) == 25);
    CHECK(static_cast<int>(errc::corrupt_file) == 26);
    CHECK(static_cast<int>(errc::task_failed) == 27);
    CHECK(static_cast<int>(errc::worker_lost) == 28);
}

TEST_CASE("dragonx::error is a std::system_error in the dragonx category", "[common][error]")
{
    const dragonx::error e(errc::malformed_descriptor, "pool descriptor: truncated");
    CHECK(e.code().category().name() == std::string("dragonx"));
    CHECK(&e.code().category() == &dragonx::dragonx_category());
    CHECK(e.code().value() == 7);
    CHECK_THAT(e.what(), Contains("pool descriptor: truncated"));
    CHECK_THAT(e.what(), Contains("malformed descriptor"));

    const std::system_error& as_system = e;
    CHECK(as_system.code() == errc::malformed_descriptor);
    const std::exception& as_exception = e;
    CHECK_THAT(as_exception.what(), Contains("truncated"));

    SECTION("is() matches only its own errc")
    {
        CHECK(e.is(errc::malformed_descriptor));
        CHECK_FALSE(e.is(errc::version_mismatch));
        CHECK_FALSE(e.is(errc::ok));
    }
    SECTION("is() does not confuse an errno with the same number")
    {
        // ENOENT is 2 on Linux, like errc::timeout; the categories differ.
        const dragonx::error os(std::error_code(ENOENT, std::system_category()), "open");
        CHECK(os.code().value() == static_cast<int>(errc::timeout));
        CHECK_FALSE(os.is(errc::timeout));
        CHECK(os.code() == std::errc::no_such_file_or_directory);
    }
}

TEST_CASE("errc converts to std::error_code", "[common][error]")
{
    const std::error_code ec = errc::timeout;  // implicit: is_error_code_enum
    CHECK(ec == dragonx::make_error_code(errc::timeout));
    CHECK(ec.category() == dragonx::dragonx_category());
    CHECK(ec.value() == 2);
    CHECK(ec == errc::timeout);
    CHECK(ec != errc::not_found);
    CHECK(ec != std::error_code(2, std::system_category()));
    CHECK(ec != std::errc::timed_out);
    CHECK(static_cast<bool>(ec));
    CHECK_FALSE(static_cast<bool>(dragonx::make_error_code(errc::ok)));

    std::error_code assigned;
    assigned = errc::pool_full;
    CHECK(assigned == errc::pool_full);
}

TEST_CASE("errc values have messages", "[common][error]")
{
    CHECK(dragonx::make_error_code(errc::ok).message() == "ok");
    CHECK(dragonx::make_error_code(errc::invalid_argument).message() == "invalid argument");
    CHECK(dragonx::make_error_code(errc::timeout).message() == "timed out");
    CHECK(dragonx::make_error_code(errc::malformed_descriptor).message() ==
          "malformed descriptor");
    CHECK(dragonx::make_error_code(errc::version_mismatch).message() == "version mismatch");
    CHECK(dragonx::make_error_code(errc::internal).message() == "internal error");
    CHECK(dragonx::dragonx_category().message(999) == "unknown dragonx error 999");

    for (int v = 0; v <= static_cast<int>(errc::worker_lost); ++v) {
        const std::string text = dragonx::dragonx_category().message(v);
        CAPTURE(v, text);
        CHECK_FALSE(text.empty());
        CHECK(text.find("unknown") == std::string::npos);
    }
}

TEST_CASE("throw_error throws the given errc", "[common][error]")
{
    const auto e = thrown_by([] { dragonx::throw_error(errc::pool_full, "pool p: 64 KiB"); });
    CHECK(e.is(errc::pool_full));
    CHECK(e.code() == errc::pool_full);
    CHECK_THAT(e.what(), Contains("pool p: 64 KiB"));

    CHECK_THROWS_AS(dragonx::throw_error(errc::internal, "x"), std::system_error);
    CHECK_THROWS_AS(dragonx::throw_error(errc::internal, "x"), std::exception);
}

TEST_CASE("throw_system_error_on keeps errno", "[common][error]")
{
    SECTION("a failing call: const char* overload")
    {
        const auto e = thrown_by([] {
            errno = EACCES;
            dragonx::throw_system_error_on(true, "x");
        });
        CHECK(e.code() == std::error_code(EACCES, std::system_category()));
        CHECK(&e.code().category() == &std::system_category());
        CHECK_THAT(e.what(), Contains("x"));
        CHECK_FALSE(e.is(errc::internal));
    }
    SECTION("a failing call: std::string overload")
    {
        const std::string what = "stat /no/such/dragonx/file";
        const auto e = thrown_by([&] {
            struct stat st {};
            dragonx::throw_system_error_on(::stat("/no/such/dragonx/file", &st) != 0, what);
        });
        CHECK(e.code() == std::error_code(ENOENT, std::system_category()));
        CHECK_THAT(e.what(), Contains(what));
    }
    SECTION("no failure, no throw, whatever errno holds")
    {
        errno = EIO;
        CHECK_NOTHROW(dragonx::throw_system_error_on(false, "x"));
        CHECK_NOTHROW(dragonx::throw_system_error_on(false, std::string("x")));
    }
}

TEST_CASE("byte_writer writes little-endian integers and prefixed strings", "[common][wire]")
{
    dragonx::byte_writer w;
    w.put<std::uint8_t>(0xab);
    w.put<std::uint16_t>(0x1234);
    w.put<std::uint32_t>(0x01020304);
    w.put<std::int16_t>(-2);
    w.put_string("hi");
    CHECK(w.bytes() == bytes_of({0xab, 0x34, 0x12, 0x04, 0x03, 0x02, 0x01, 0xfe, 0xff, 0x02,
                                 0x00, 'h', 'i'}));

    const auto taken = w.take();
    CHECK(taken.size() == 13);
}

TEST_CASE("byte_writer and byte_reader round-trip", "[common][wire]")
{
    const std::string with_nul("a\0b", 3);
    const std::string longest(0xffff, 'z');

    dragonx::byte_writer w;
    w.put<std::uint8_t>(0xfe);
    w.put<std::uint16_t>(0xbeef);
    w.put<std::uint32_t>(0xdeadbeefu);
    w.put<std::uint64_t>(0x0123456789abcdefULL);
    w.put<std::int64_t>(-5);
    w.put<std::int64_t>(std::numeric_limits<std::int64_t>::min());
    w.put<std::int64_t>(std::numeric_limits<std::int64_t>::max());
    w.put<std::int8_t>(-128);
    w.put<std::int32_t>(-123456789);
    w.put_string("");
    w.put_string("hello, wire");
    w.put_string(with_nul);
    w.put_string(longest);
    w.put_bytes(bytes_of({9, 8, 7}));
    const auto bytes = w.take();

    dragonx::byte_reader r(bytes, errc::corrupt_object, "round trip");
    CHECK(r.get<std::uint8_t>() == 0xfe);
    CHECK(r.get<std::uint16_t>() == 0xbeef);
    CHECK(r.get<std::uint32_t>() == 0xdeadbeefu);
    CHECK(r.get<std::uint64_t>() == 0x0123456789abcdefULL);
    CHECK(r.get<std::int64_t>() == -5);
    CHECK(r.get<std::int64_t>() == std::numeric_limits<std::int64_t>::min());
    CHECK(r.get<std::int64_t>() == std::numeric_limits<std::int64_t>::max());
    CHECK(r.get<std::int8_t>() == -128);
    CHECK(r.get<std::int32_t>() == -123456789);
    CHECK(r.get_string().empty());
    CHECK(r.get_string() == "hello, wire");
    CHECK(r.get_string() == with_nul);
    CHECK(r.get_string() == longest);
    const auto tail = r.get_bytes(3);
    CHECK(std::vector<std::byte>(tail.begin(), tail.end()) == bytes_of({9, 8, 7}));
    CHECK(r.remaining() == 0);
    CHECK_NOTHROW(r.expect_end());
}

TEST_CASE("byte_writer refuses strings longer than 65535 bytes", "[common][wire]")
{
    dragonx::byte_writer w;
    const auto e = thrown_by([&] { w.put_string(std::string(0x10000, 'x')); });
    CHECK(e.is(errc::invalid_argument));
    CHECK(w.bytes().empty());
}

TEST_CASE("byte_reader throws its errc and context when reading past the end", "[common][wire]")
{
    const auto bytes = bytes_of({1, 2, 3});

    SECTION("integer")
    {
        dragonx::byte_reader r(bytes, errc::corrupt_object, "ctx-integer");
        const auto e = thrown_by([&] { (void)r.get<std::uint32_t>(); });
        CHECK(e.is(errc::corrupt_object));
        CHECK_THAT(e.what(), Contains("ctx-integer"));
        CHECK_THAT(e.what(), Contains("truncated"));
        // A failed read consumes nothing.
        CHECK(r.remaining() == 3);
        CHECK(r.get<std::uint16_t>() == 0x0201);
        CHECK(r.get<std::uint8_t>() == 3);
        const auto e2 = thrown_by([&] { (void)r.get<std::uint8_t>(); });
        CHECK(e2.is(errc::corrupt_object));
    }
    SECTION("string body shorter than its length prefix")
    {
        const auto short_string = bytes_of({10, 0, 'a', 'b'});
        dragonx::byte_reader r(short_string, errc::malformed_descriptor, "ctx-string");
        const auto e = thrown_by([&] { (void)r.get_string(); });
        CHECK(e.is(errc::malformed_descriptor));
        CHECK_THAT(e.what(), Contains("ctx-string"));
    }
    SECTION("string length prefix cut short")
    {
        const auto one = bytes_of({5});
        dragonx::byte_reader r(one, errc::version_mismatch, "ctx-prefix");
        const auto e = thrown_by([&] { (void)r.get_string(); });
        CHECK(e.is(errc::version_mismatch));
        CHECK_THAT(e.what(), Contains("ctx-prefix"));
    }
    SECTION("bytes")
    {
        dragonx::byte_reader r(bytes, errc::invalid_allocation, "ctx-bytes");
        const auto e = thrown_by([&] { (void)r.get_bytes(4); });
        CHECK(e.is(errc::invalid_allocation));
        CHECK_THAT(e.what(), Contains("ctx-bytes"));
        CHECK(r.get_bytes(3).size() == 3);
        CHECK(r.get_bytes(0).empty());
    }
    SECTION("empty input")
    {
        dragonx::byte_reader r({}, errc::not_found, "ctx-empty");
        CHECK(r.remaining() == 0);
        CHECK_NOTHROW(r.expect_end());
        const auto e = thrown_by([&] { (void)r.get<std::uint8_t>(); });
        CHECK(e.is(errc::not_found));
        CHECK_THAT(e.what(), Contains("ctx-empty"));
    }
    SECTION("fail() uses the same errc and context")
    {
        dragonx::byte_reader r(bytes, errc::wrong_run, "ctx-fail");
        const auto e = thrown_by([&] { r.fail("bad magic"); });
        CHECK(e.is(errc::wrong_run));
        CHECK_THAT(e.what(), Contains("ctx-fail"));
        CHECK_THAT(e.what(), Contains("bad magic"));
    }
}

TEST_CASE("byte_reader::expect_end throws on trailing bytes", "[common][wire]")
{
    dragonx::byte_writer w;
    w.put<std::uint32_t>(42);
    w.put<std::uint8_t>(0);
    const auto bytes = w.take();

    dragonx::byte_reader r(bytes, errc::malformed_descriptor, "ctx-end");
    CHECK(r.get<std::uint32_t>() == 42);
    const auto e = thrown_by([&] { r.expect_end(); });
    CHECK(e.is(errc::malformed_descriptor));
    CHECK_THAT(e.what(), Contains("ctx-end"));
    CHECK_THAT(e.what(), Contains("1 unexpected trailing bytes"));
    CHECK(r.get<std::uint8_t>() == 0);
    CHECK_NOTHROW(r.expect_end());
}
