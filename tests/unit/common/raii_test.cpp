// raii_test.cpp - unique_fd, mapping, deadline, run identity, random_u64 and futex.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <dragonx/common/deadline.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/futex.hpp>
#include <dragonx/common/identity.hpp>
#include <dragonx/common/mapping.hpp>
#include <dragonx/common/random.hpp>
#include <dragonx/common/unique_fd.hpp>

static_assert(std::is_nothrow_move_constructible_v<dragonx::unique_fd>);
static_assert(std::is_nothrow_move_assignable_v<dragonx::unique_fd>);
static_assert(std::is_nothrow_default_constructible_v<dragonx::unique_fd>);
static_assert(!std::is_copy_constructible_v<dragonx::unique_fd>);
static_assert(!std::is_copy_assignable_v<dragonx::unique_fd>);
static_assert(!std::is_convertible_v<int, dragonx::unique_fd>);  // explicit constructor
static_assert(!std::is_convertible_v<dragonx::unique_fd, bool>);  // explicit operator bool

static_assert(std::is_nothrow_move_constructible_v<dragonx::mapping>);
static_assert(std::is_nothrow_move_assignable_v<dragonx::mapping>);
static_assert(std::is_nothrow_default_constructible_v<dragonx::mapping>);
static_assert(!std::is_copy_constructible_v<dragonx::mapping>);
static_assert(!std::is_copy_assignable_v<dragonx::mapping>);
static_assert(!std::is_convertible_v<dragonx::mapping, bool>);

static_assert(std::is_nothrow_copy_constructible_v<dragonx::deadline>);
static_assert(!std::is_default_constructible_v<dragonx::deadline>);

using namespace std::chrono_literals;
using dragonx::errc;

namespace {

bool fd_is_open(int fd)
{
    return ::fcntl(fd, F_GETFD) != -1;
}

bool fd_is_closed(int fd)
{
    errno = 0;
    const int r = ::fcntl(fd, F_GETFD);
    return r == -1 && errno == EBADF;
}

int open_dev_null()
{
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    return fd;
}

/// True if no page of [p, p + size) is mapped (mincore fails with ENOMEM on unmapped ranges).
bool is_unmapped(const void* p, std::size_t size)
{
    std::vector<unsigned char> vec((size + 4095) / 4096 + 1);
    errno = 0;
    const int r = ::mincore(const_cast<void*>(p), size, vec.data());
    return r == -1 && errno == ENOMEM;
}

/// A memfd of `size` bytes, owned.
dragonx::unique_fd make_memfd(std::size_t size)
{
    dragonx::unique_fd fd(::memfd_create("dragonx-raii-test", MFD_CLOEXEC));
    REQUIRE(fd);
    REQUIRE(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
    return fd;
}

/// Sets or unsets environment variables for a scope and restores their previous values
/// exactly (including "unset") when it ends.
class env_guard {
public:
    env_guard(std::initializer_list<const char*> names)
    {
        for (const char* name : names) {
            const char* value = std::getenv(name);
            saved_.push_back({name, value != nullptr, value != nullptr ? value : ""});
        }
    }
    env_guard(const env_guard&) = delete;
    env_guard& operator=(const env_guard&) = delete;
    ~env_guard()
    {
        for (const auto& s : saved_) {
            if (s.present) {
                ::setenv(s.name.c_str(), s.value.c_str(), 1);
            } else {
                ::unsetenv(s.name.c_str());
            }
        }
    }

    static void set(const char* name, const char* value) { REQUIRE(::setenv(name, value, 1) == 0); }
    static void unset(const char* name) { REQUIRE(::unsetenv(name) == 0); }

private:
    struct saved_var {
        std::string name;
        bool present;
        std::string value;
    };
    std::vector<saved_var> saved_;
};

std::optional<std::string> getenv_opt(const char* name)
{
    const char* v = std::getenv(name);
    return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
}

/// The dragonx::error run_identity::from_environment() throws, or nullopt.
std::optional<dragonx::error> identity_error()
{
    try {
        (void)dragonx::run_identity::from_environment();
    } catch (const dragonx::error& e) {
        return e;
    }
    return std::nullopt;
}

using steady = std::chrono::steady_clock;

}  // namespace

// ---------------------------------------------------------------------------------------------
// unique_fd

TEST_CASE("unique_fd is empty by default", "[common][raii][unique_fd]")
{
    const dragonx::unique_fd fd;
    CHECK(fd.get() == -1);
    CHECK_FALSE(fd);
}

TEST_CASE("unique_fd closes in its destructor", "[common][raii][unique_fd]")
{
    int raw = -1;
    {
        const dragonx::unique_fd fd(open_dev_null());
        raw = fd.get();
        CHECK(fd);
        CHECK(fd_is_open(raw));
    }
    CHECK(fd_is_closed(raw));
}

TEST_CASE("unique_fd moves transfer ownership", "[common][raii][unique_fd]")
{
    SECTION("move construction")
    {
        dragonx::unique_fd a(open_dev_null());
        const int raw = a.get();
        {
            const dragonx::unique_fd b(std::move(a));
            CHECK(b.get() == raw);
            CHECK(a.get() == -1);  // NOLINT(bugprone-use-after-move): moved-from state is defined
            CHECK_FALSE(a);
            CHECK(fd_is_open(raw));
        }
        CHECK(fd_is_closed(raw));
    }
    SECTION("move assignment closes the target's old fd")
    {
        dragonx::unique_fd a(open_dev_null());
        dragonx::unique_fd b(open_dev_null());
        const int raw_a = a.get();
        const int raw_b = b.get();
        b = std::move(a);
        CHECK(b.get() == raw_a);
        CHECK(a.get() == -1);  // NOLINT(bugprone-use-after-move)
        CHECK(fd_is_closed(raw_b));
        CHECK(fd_is_open(raw_a));
        b = dragonx::unique_fd();
        CHECK(fd_is_closed(raw_a));
        CHECK_FALSE(b);
    }
    SECTION("self move assignment keeps the fd")
    {
        dragonx::unique_fd a(open_dev_null());
        const int raw = a.get();
        dragonx::unique_fd& alias = a;
        a = std::move(alias);
        CHECK(a.get() == raw);
        CHECK(fd_is_open(raw));
    }
}

TEST_CASE("unique_fd::release gives up ownership without closing", "[common][raii][unique_fd]")
{
    int raw = -1;
    {
        dragonx::unique_fd fd(open_dev_null());
        const int expected = fd.get();
        raw = fd.release();
        CHECK(raw == expected);
        CHECK(fd.get() == -1);
        CHECK_FALSE(fd);
    }
    CHECK(fd_is_open(raw));
    CHECK(::close(raw) == 0);
}

TEST_CASE("unique_fd::reset closes and adopts", "[common][raii][unique_fd]")
{
    dragonx::unique_fd fd(open_dev_null());
    const int first = fd.get();
    const int second = open_dev_null();
    fd.reset(second);
    CHECK(fd.get() == second);
    CHECK(fd_is_closed(first));
    CHECK(fd_is_open(second));
    fd.reset();
    CHECK(fd.get() == -1);
    CHECK_FALSE(fd);
    CHECK(fd_is_closed(second));
    fd.reset();  // no-op when empty
    CHECK_FALSE(fd);
}

// ---------------------------------------------------------------------------------------------
// mapping

TEST_CASE("mapping::map_shared maps a memfd read-write and shared", "[common][raii][mapping]")
{
    constexpr std::size_t size = 2 * 4096;
    const auto fd = make_memfd(size);

    auto m = dragonx::mapping::map_shared(fd.get(), size, "memfd");
    REQUIRE(m);
    REQUIRE(m.data() != nullptr);
    CHECK(m.size() == size);
    for (std::size_t i = 0; i < size; ++i) {
        REQUIRE(m.data()[i] == std::byte{0});  // a fresh memfd reads as zeros
    }
    std::memset(m.data(), 0x5a, size);
    m.data()[size - 1] = std::byte{0xa5};

    // The writes reach the file, and a second mapping of it sees them.
    unsigned char last = 0;
    REQUIRE(::pread(fd.get(), &last, 1, static_cast<off_t>(size - 1)) == 1);
    CHECK(last == 0xa5);
    const auto other = dragonx::mapping::map_shared(fd.get(), size, "memfd again");
    REQUIRE(other);
    CHECK(other.data() != m.data());
    CHECK(other.data()[0] == std::byte{0x5a});
    CHECK(other.data()[size - 1] == std::byte{0xa5});
    other.data()[1] = std::byte{0x11};
    CHECK(m.data()[1] == std::byte{0x11});
}

TEST_CASE("mapping unmaps in its destructor and on reset", "[common][raii][mapping]")
{
    constexpr std::size_t size = 3 * 4096;
    const auto fd = make_memfd(size);

    SECTION("destructor")
    {
        const std::byte* p = nullptr;
        {
            const auto m = dragonx::mapping::map_shared(fd.get(), size, "memfd");
            p = m.data();
            REQUIRE_FALSE(is_unmapped(p, size));
        }
        const bool gone = is_unmapped(p, size);  // checked before anything else can map there
        CHECK(gone);
    }
    SECTION("reset")
    {
        auto m = dragonx::mapping::map_shared(fd.get(), size, "memfd");
        const std::byte* p = m.data();
        m.reset();
        const bool gone = is_unmapped(p, size);
        CHECK(gone);
        CHECK_FALSE(m);
        CHECK(m.data() == nullptr);
        CHECK(m.size() == 0);
        m.reset();  // no-op when empty
        CHECK_FALSE(m);
    }
}

TEST_CASE("mapping moves transfer ownership", "[common][raii][mapping]")
{
    constexpr std::size_t size = 4096;
    const auto fd = make_memfd(size);

    SECTION("move construction leaves the source empty")
    {
        auto a = dragonx::mapping::map_shared(fd.get(), size, "memfd");
        std::byte* p = a.data();
        const dragonx::mapping b(std::move(a));
        CHECK(b.data() == p);
        CHECK(b.size() == size);
        CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move)
        CHECK(a.data() == nullptr);
        CHECK(a.size() == 0);
        p[0] = std::byte{1};  // still mapped
        CHECK(b.data()[0] == std::byte{1});
    }
    SECTION("move assignment unmaps the target's old region")
    {
        auto a = dragonx::mapping::map_shared(fd.get(), size, "memfd a");
        auto b = dragonx::mapping::map_shared(fd.get(), size, "memfd b");
        const std::byte* pa = a.data();
        const std::byte* pb = b.data();
        b = std::move(a);
        const bool old_gone = is_unmapped(pb, size);
        CHECK(old_gone);
        CHECK(b.data() == pa);
        CHECK(b.size() == size);
        CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move)
        CHECK_FALSE(is_unmapped(pa, size));
    }
    SECTION("self move assignment keeps the region")
    {
        auto a = dragonx::mapping::map_shared(fd.get(), size, "memfd");
        const std::byte* p = a.data();
        dragonx::mapping& alias = a;
        a = std::move(alias);
        CHECK(a.data() == p);
        CHECK(a.size() == size);
        CHECK_FALSE(is_unmapped(p, size));
    }
    SECTION("a default mapping is empty")
    {
        const dragonx::mapping m;
        CHECK_FALSE(m);
        CHECK(m.data() == nullptr);
        CHECK(m.size() == 0);
    }
}

TEST_CASE("mapping::map_shared reports mmap failures with errno", "[common][raii][mapping]")
{
    SECTION("bad fd")
    {
        try {
            (void)dragonx::mapping::map_shared(-1, 4096, "no-such-object");
            FAIL("map_shared(-1) succeeded");
        } catch (const dragonx::error& e) {
            CHECK(e.code() == std::error_code(EBADF, std::system_category()));
            CHECK_THAT(e.what(), Catch::Matchers::Contains("mmap no-such-object"));
        }
    }
    SECTION("zero size")
    {
        const auto fd = make_memfd(4096);
        try {
            (void)dragonx::mapping::map_shared(fd.get(), 0, "empty");
            FAIL("map_shared(size 0) succeeded");
        } catch (const dragonx::error& e) {
            CHECK(e.code() == std::error_code(EINVAL, std::system_category()));
            CHECK_THAT(e.what(), Catch::Matchers::Contains("empty"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// deadline

TEST_CASE("deadline::after(forever) never expires", "[common][deadline]")
{
    const auto d = dragonx::deadline::after(dragonx::forever);
    CHECK(d.is_forever());
    CHECK_FALSE(d.expired());
    CHECK_FALSE(d.remaining().has_value());

    const auto d2 = dragonx::deadline::after(std::nullopt);
    CHECK(d2.is_forever());
}

TEST_CASE("deadline::after(0ns) has expired at once", "[common][deadline]")
{
    const auto d = dragonx::deadline::after(0ns);
    CHECK_FALSE(d.is_forever());
    CHECK(d.expired());
    REQUIRE(d.remaining().has_value());
    CHECK(*d.remaining() == 0ns);
}

TEST_CASE("deadline::after rejects negative timeouts", "[common][deadline]")
{
    for (const auto t : {-1ns, std::chrono::nanoseconds(-1s), std::chrono::nanoseconds::min()}) {
        CAPTURE(t.count());
        try {
            (void)dragonx::deadline::after(t);
            FAIL("a negative timeout was accepted");
        } catch (const dragonx::error& e) {
            CHECK(e.is(errc::invalid_argument));
        }
    }
}

TEST_CASE("deadline::after(50ms) counts down", "[common][deadline]")
{
    const auto d = dragonx::deadline::after(50ms);
    const bool expired_at_once = d.expired();
    const auto left = d.remaining();
    CHECK_FALSE(d.is_forever());
    CHECK_FALSE(expired_at_once);
    REQUIRE(left.has_value());
    CHECK(*left > 0ns);
    CHECK(*left <= 50ms);

    SECTION("and expires once the time has passed")
    {
        const auto short_one = dragonx::deadline::after(10ms);
        std::this_thread::sleep_for(15ms);
        CHECK(short_one.expired());
        REQUIRE(short_one.remaining().has_value());
        CHECK(*short_one.remaining() == 0ns);
    }
    SECTION("copies share the point in time")
    {
        const auto copy = d;
        CHECK_FALSE(copy.is_forever());
        REQUIRE(copy.remaining().has_value());
        CHECK(*copy.remaining() <= *left);
    }
}

// ---------------------------------------------------------------------------------------------
// identity

TEST_CASE("run ids are 1..24 characters of [A-Za-z0-9_]", "[common][identity]")
{
    CHECK(dragonx::is_valid_run_id("a"));
    CHECK(dragonx::is_valid_run_id("abc_123"));
    CHECK(dragonx::is_valid_run_id("ABC_xyz_09"));
    CHECK(dragonx::is_valid_run_id("_"));
    CHECK(dragonx::is_valid_run_id(std::string(24, 'x')));
    CHECK(dragonx::is_valid_run_id("abcdefghijklmnopqrstuvwx"));

    CHECK_FALSE(dragonx::is_valid_run_id(""));
    CHECK_FALSE(dragonx::is_valid_run_id(std::string(25, 'x')));
    CHECK_FALSE(dragonx::is_valid_run_id("a-b"));
    CHECK_FALSE(dragonx::is_valid_run_id("a b"));
    CHECK_FALSE(dragonx::is_valid_run_id("a/b"));
    CHECK_FALSE(dragonx::is_valid_run_id("a.b"));
    CHECK_FALSE(dragonx::is_valid_run_id("\xc3\xa9"));  // "é" in UTF-8
    CHECK_FALSE(dragonx::is_valid_run_id(std::string_view("a\0b", 3)));
}

TEST_CASE("run_identity::from_environment reads DRAGONX_RUN and DRAGONX_NODE",
          "[common][identity]")
{
    const auto run_before = getenv_opt("DRAGONX_RUN");
    const auto node_before = getenv_opt("DRAGONX_NODE");
    {
        const env_guard guard{"DRAGONX_RUN", "DRAGONX_NODE"};

        SECTION("in a run")
        {
            env_guard::set("DRAGONX_RUN", "r42_test");
            env_guard::set("DRAGONX_NODE", "7");
            const auto id = dragonx::run_identity::from_environment();
            CHECK(id.run == "r42_test");
            CHECK(id.node == 7);
            CHECK(id.in_run);
        }
        SECTION("the largest node index")
        {
            env_guard::set("DRAGONX_RUN", "r");
            env_guard::set("DRAGONX_NODE", "4294967295");
            CHECK(dragonx::run_identity::from_environment().node == 4294967295u);
        }
        SECTION("no DRAGONX_NODE means node 0")
        {
            env_guard::set("DRAGONX_RUN", "r1");
            env_guard::unset("DRAGONX_NODE");
            const auto id = dragonx::run_identity::from_environment();
            CHECK(id.run == "r1");
            CHECK(id.node == 0);
            CHECK(id.in_run);
        }
        SECTION("outside a run")
        {
            env_guard::unset("DRAGONX_RUN");
            env_guard::unset("DRAGONX_NODE");
            const auto id = dragonx::run_identity::from_environment();
            CHECK(id.run == "solo" + std::to_string(::getpid()));
            CHECK(id.node == 0);
            CHECK_FALSE(id.in_run);
            CHECK(dragonx::is_valid_run_id(id.run));
        }
        SECTION("an empty DRAGONX_RUN counts as outside a run")
        {
            env_guard::set("DRAGONX_RUN", "");
            env_guard::set("DRAGONX_NODE", "3");
            const auto id = dragonx::run_identity::from_environment();
            CHECK(id.run == "solo" + std::to_string(::getpid()));
            CHECK(id.node == 3);
            CHECK_FALSE(id.in_run);
        }
        SECTION("an invalid DRAGONX_RUN throws invalid_argument")
        {
            env_guard::set("DRAGONX_NODE", "0");
            for (const char* bad : {"a-b", "a b", "x/y", "abcdefghijklmnopqrstuvwxy"}) {
                CAPTURE(bad);
                env_guard::set("DRAGONX_RUN", bad);
                const auto err = identity_error();
                REQUIRE(err.has_value());
                CHECK(err->is(errc::invalid_argument));
                CHECK_THAT(err->what(), Catch::Matchers::Contains("DRAGONX_RUN"));
            }
        }
        SECTION("an invalid DRAGONX_NODE throws invalid_argument")
        {
            env_guard::set("DRAGONX_RUN", "r1");
            for (const char* bad : {"x1", "1x", "-1", "+1", " 1", "1 ", "0x10", "1.5",
                                    "4294967296", "99999999999999999999"}) {
                CAPTURE(bad);
                env_guard::set("DRAGONX_NODE", bad);
                const auto err = identity_error();
                REQUIRE(err.has_value());
                CHECK(err->is(errc::invalid_argument));
                CHECK_THAT(err->what(), Catch::Matchers::Contains("DRAGONX_NODE"));
            }
        }
    }
    // The guard put the environment back exactly as it found it.
    CHECK(getenv_opt("DRAGONX_RUN") == run_before);
    CHECK(getenv_opt("DRAGONX_NODE") == node_before);
}

// ---------------------------------------------------------------------------------------------
// random

TEST_CASE("random_u64 returns different values", "[common][random]")
{
    const auto a = dragonx::random_u64();
    const auto b = dragonx::random_u64();
    CHECK(a != b);

    std::set<std::uint64_t> seen;
    std::uint64_t all_or = 0;
    std::uint64_t all_and = ~std::uint64_t{0};
    for (int i = 0; i < 64; ++i) {
        const auto v = dragonx::random_u64();
        seen.insert(v);
        all_or |= v;
        all_and &= v;
    }
    CHECK(seen.size() == 64);
    CHECK(all_or == ~std::uint64_t{0});  // every bit is set somewhere...
    CHECK(all_and == 0);                 // ...and clear somewhere
}

// ---------------------------------------------------------------------------------------------
// futex

TEST_CASE("futex_wait returns at once when the value differs", "[common][futex]")
{
    std::atomic<std::uint32_t> word{5};
    const auto start = steady::now();
    dragonx::futex_wait(word, 4, 2s);
    dragonx::futex_wait(word, 6, std::nullopt);
    const auto took = steady::now() - start;
    CHECK(took < 500ms);
}

TEST_CASE("futex_wait with a zero or negative limit does not block", "[common][futex]")
{
    std::atomic<std::uint32_t> word{0};
    const auto start = steady::now();
    dragonx::futex_wait(word, 0, 0ns);
    dragonx::futex_wait(word, 0, -5ms);
    const auto took = steady::now() - start;
    CHECK(took < 500ms);
}

TEST_CASE("futex_wait gives up after its limit", "[common][futex]")
{
    std::atomic<std::uint32_t> word{0};
    const auto start = steady::now();
    dragonx::futex_wait(word, 0, 20ms);
    const auto took = steady::now() - start;
    CAPTURE(std::chrono::duration_cast<std::chrono::microseconds>(took).count());
    CHECK(took >= 15ms);
    CHECK(took <= 500ms);
}

namespace {

/// Runs a waiter thread on `word` (expected 0, limit 2 s) and wakes it from this thread,
/// through `wake_word` (the same futex, possibly at another address), until it returns.
/// Returns how long the waiter slept.
steady::duration wake_waiter(const std::atomic<std::uint32_t>& word,
                             const std::atomic<std::uint32_t>& wake_word)
{
    std::atomic<bool> started{false};
    std::atomic<bool> returned{false};
    steady::duration slept{};
    std::thread waiter([&] {
        started.store(true);
        const auto start = steady::now();
        dragonx::futex_wait(word, 0, 2s);  // the watchdog: never longer than 2 s
        slept = steady::now() - start;
        returned.store(true);
    });
    while (!started.load()) {
        std::this_thread::yield();
    }
    std::this_thread::sleep_for(10ms);
    // A wake that comes before the waiter is in the kernel is lost (the word never changes), so
    // keep waking until it returns.
    const auto give_up = steady::now() + 3s;
    while (!returned.load() && steady::now() < give_up) {
        dragonx::futex_wake(wake_word, 1);
        std::this_thread::sleep_for(10ms);
    }
    waiter.join();
    return slept;
}

}  // namespace

TEST_CASE("futex_wake releases a waiter", "[common][futex]")
{
    std::atomic<std::uint32_t> word{0};
    const auto slept = wake_waiter(word, word);
    CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(slept).count());
    CHECK(slept < 1s);
    CHECK(word.load() == 0);  // woken, not released by a changed value
}

TEST_CASE("futex wake and wait meet through two mappings of one page", "[common][futex]")
{
    // Shared (not private) futexes are keyed by the page: a waiter and a waker that map the
    // same object at different addresses must still meet.
    constexpr std::size_t size = 4096;
    const auto fd = make_memfd(size);
    const auto a = dragonx::mapping::map_shared(fd.get(), size, "futex a");
    const auto b = dragonx::mapping::map_shared(fd.get(), size, "futex b");
    REQUIRE(a.data() != b.data());
    auto* word_a = new (a.data()) std::atomic<std::uint32_t>(0);
    auto* word_b = std::launder(reinterpret_cast<std::atomic<std::uint32_t>*>(b.data()));
    word_a->store(0);

    const auto slept = wake_waiter(*word_a, *word_b);
    CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(slept).count());
    CHECK(slept < 1s);
}
