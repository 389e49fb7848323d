// create_attach_test.cpp - pool creation, naming, attachment, ownership and destruction.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include <dragonx/common/error.hpp>
#include <dragonx/pool/pool.hpp>

#include "support.hpp"

using dragonx::errc;
using dragonx::test::errc_of;
using dragonx::pool::pool;

static_assert(std::is_nothrow_move_constructible_v<pool>);
static_assert(!std::is_copy_constructible_v<pool>);
static_assert(std::is_nothrow_move_constructible_v<dragonx::pool::allocation>);
static_assert(!std::is_copy_constructible_v<dragonx::pool::allocation>);

namespace {

bool shm_exists(const std::string& name)
{
    struct stat st {};
    return ::stat(("/dev/shm" + name).c_str(), &st) == 0;
}

// Sets an environment variable for one scope, restoring the previous value after.
class scoped_env {
public:
    scoped_env(const char* name, const char* value) : name_(name)
    {
        if (const char* old = std::getenv(name)) {
            old_ = old;
            had_ = true;
        }
        ::setenv(name, value, 1);
    }
    ~scoped_env()
    {
        if (had_) {
            ::setenv(name_, old_.c_str(), 1);
        } else {
            ::unsetenv(name_);
        }
    }

private:
    const char* name_;
    std::string old_;
    bool had_ = false;
};

}  // namespace

TEST_CASE("a pool is a 0600 shm object named after its run, node and id", "[pool]")
{
    auto p = pool::create({.size = 1 << 20, .id = 0x2a});
    const std::string run = std::getenv("DRAGONX_RUN");
    CHECK(p.name() == "/dragonx-" + run + "-n0-000000000000002a");
    CHECK(p.run() == run);
    CHECK(p.id() == 0x2a);
    CHECK(p.size() == (1 << 20));
    CHECK(p.owner());
    struct stat st {};
    REQUIRE(::stat(("/dev/shm" + p.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("sizes are rounded up to 4 KiB and checked", "[pool]")
{
    auto p = pool::create({.size = 5000});
    CHECK(p.size() == 8192);
    CHECK(p.stats().total_bytes == 8192);
    CHECK(p.stats().free_bytes == 8192);

    std::string what;
    CHECK(errc_of([] { (void)pool::create({.size = 4095}); }, &what) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("below the minimum"));
    CHECK(errc_of([] { (void)pool::create({.size = 0}); }) == errc::invalid_argument);
    CHECK(errc_of([] { (void)pool::create({.size = dragonx::pool::max_pool_size + 1}); }, &what) ==
          errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("above the maximum"));
    CHECK(errc_of([] { (void)pool::create({.size = 1 << 20, .run = "bad-run"}); }) ==
          errc::invalid_argument);
}

TEST_CASE("a name that exists already is refused and left alone", "[pool]")
{
    auto p = pool::create({.size = 1 << 16, .id = 7});
    auto a = p.allocate(100, std::chrono::seconds(1));
    std::string what;
    CHECK(errc_of([] { (void)pool::create({.size = 1 << 16, .id = 7}); }, &what) ==
          errc::already_exists);
    CHECK_THAT(what, Catch::Contains("already exists"));
    CHECK_THAT(what, Catch::Contains(p.name()));
    // The existing pool is untouched.
    CHECK(p.stats().free_bytes == (1 << 16) - 128);
}

TEST_CASE("a pool bigger than /dev/shm is refused with a message saying so", "[pool]")
{
    struct statvfs fs {};
    REQUIRE(::statvfs("/dev/shm", &fs) == 0);
    const std::uint64_t avail = std::uint64_t{fs.f_bavail} * fs.f_frsize;
    const std::uint64_t too_big = avail + (std::uint64_t{1} << 30);
    if (too_big > dragonx::pool::max_pool_size) {
        WARN("/dev/shm is larger than the largest pool; nothing to test");
        return;
    }
    std::string what;
    CHECK(errc_of([&] { (void)pool::create({.size = too_big, .id = 99}); }, &what) ==
          errc::no_space);
    CHECK_THAT(what, Catch::Contains("/dev/shm"));
    // Nothing was left behind by the failed attempt.
    CHECK_FALSE(shm_exists("/dragonx-" + std::string(std::getenv("DRAGONX_RUN")) +
                           "-n0-0000000000000063"));
}

TEST_CASE("reserve commits the space up front", "[pool]")
{
    auto p = pool::create({.size = 1 << 20, .reserve = true});
    struct stat st {};
    REQUIRE(::stat(("/dev/shm" + p.name()).c_str(), &st) == 0);
    CHECK(static_cast<std::uint64_t>(st.st_blocks) * 512 >= (1u << 20));
}

TEST_CASE("attach by descriptor shares the memory", "[pool]")
{
    auto p = pool::create({.size = 1 << 20});
    auto q = pool::attach(p.descriptor());
    CHECK_FALSE(q.owner());
    CHECK(q.name() == p.name());
    CHECK(q.size() == p.size());
    auto a = p.allocate(256, std::chrono::seconds(1));
    a.bytes()[0] = std::byte{42};
    auto b = q.attach_allocation(a.release());
    CHECK(b.bytes()[0] == std::byte{42});
    CHECK(b.data() != nullptr);
    CHECK(q.stats().free_bytes == p.stats().free_bytes);
}

TEST_CASE("the owner destroys the pool; others only detach", "[pool]")
{
    std::string name;
    std::string desc;
    {
        auto p = pool::create({.size = 1 << 16});
        name = p.name();
        desc = p.descriptor();
        {
            auto q = pool::attach(desc);
        }
        CHECK(shm_exists(name));
    }
    CHECK_FALSE(shm_exists(name));
    std::string what;
    CHECK(errc_of([&] { (void)pool::attach(desc); }, &what) == errc::not_found);
    CHECK_THAT(what, Catch::Contains("does not exist"));
}

TEST_CASE("disown hands destruction to someone else", "[pool]")
{
    auto p = pool::create({.size = 1 << 16});
    const auto name = p.name();
    const auto desc = p.descriptor();
    p.disown();
    CHECK_FALSE(p.owner());
    p.detach();
    CHECK_FALSE(static_cast<bool>(p));
    CHECK(shm_exists(name));
    auto q = pool::attach(desc);  // whoever took over destroys it
    q.destroy();
    CHECK_FALSE(shm_exists(name));
    CHECK(errc_of([&] { (void)q.size(); }) == errc::invalid_argument);
}

TEST_CASE("a recreated pool does not accept the old pool's descriptors", "[pool]")
{
    std::string old_desc;
    {
        auto p = pool::create({.size = 1 << 16, .id = 1234});
        old_desc = p.descriptor();
    }
    auto p = pool::create({.size = 1 << 16, .id = 1234});
    std::string what;
    CHECK(errc_of([&] { (void)pool::attach(old_desc); }, &what) == errc::not_found);
    CHECK_THAT(what, Catch::Contains("recreated"));
}

TEST_CASE("descriptors of another run or node are refused", "[pool]")
{
    auto p = pool::create({.size = 1 << 16});
    const auto desc = p.descriptor();
    {
        scoped_env env("DRAGONX_RUN", "someotherrun");
        std::string what;
        CHECK(errc_of([&] { (void)pool::attach(desc); }, &what) == errc::wrong_run);
        CHECK_THAT(what, Catch::Contains("someotherrun"));
    }
    {
        scoped_env env("DRAGONX_NODE", "3");
        std::string what;
        CHECK(errc_of([&] { (void)pool::attach(desc); }, &what) == errc::not_local);
        CHECK_THAT(what, Catch::Contains("node 0"));
    }
    // A process outside any run may attach a pool it was given.
    std::string saved = std::getenv("DRAGONX_RUN");
    ::unsetenv("DRAGONX_RUN");
    CHECK_NOTHROW(pool::attach(desc));
    ::setenv("DRAGONX_RUN", saved.c_str(), 1);
}

TEST_CASE("a pool attached in another process shares its blocks", "[pool][multiprocess]")
{
    auto p = pool::create({.size = 1 << 20});
    const auto desc = p.descriptor();
    const auto start_free = p.stats().free_bytes;
    auto a = p.allocate(1000, std::chrono::seconds(1));
    for (std::size_t i = 0; i < a.size(); ++i) {
        a.bytes()[i] = static_cast<std::byte>(i * 7);
    }
    const auto alloc_desc = a.release();
    dragonx::test::child c([&] {
        auto q = pool::attach(desc);  // a fresh mapping, at another address
        auto b = q.attach_allocation(alloc_desc);
        for (std::size_t i = 0; i < b.size(); ++i) {
            if (b.bytes()[i] != static_cast<std::byte>(i * 7)) {
                return false;
            }
        }
        return true;  // b frees the block as it goes
    });
    REQUIRE(c.succeeded());
    CHECK(p.stats().free_bytes == start_free);
}

TEST_CASE("a kept pool outlives its handle and is reclaimed with its blocks", "[pool][keep]")
{
    const std::string kept = "/dragonx-kept-test-" + std::to_string(::getpid());
    auto p = pool::create({.size = 1 << 20});
    const std::string old_name = p.name();
    const std::string old_descriptor = p.descriptor();
    auto block = p.allocate(3000, std::chrono::seconds(1));
    std::memcpy(block.data(), "kept bytes", 10);
    const auto offset = block.offset();
    block.disown();
    const auto free_before = p.stats().free_bytes;

    p.keep(kept);
    CHECK_FALSE(p);
    CHECK_FALSE(shm_exists(old_name));
    CHECK(shm_exists(kept));
    CHECK(errc_of([&] { (void)pool::attach(old_descriptor); }) == errc::not_found);

    auto q = pool::reclaim(kept, {.id = 0x5eed});
    CHECK_FALSE(shm_exists(kept));
    CHECK(shm_exists(q.name()));
    CHECK(q.owner());
    CHECK(q.id() == 0x5eed);
    CHECK(q.stats().free_bytes == free_before);
    auto again = q.attach_allocation(offset, 3000);
    CHECK(std::memcmp(again.data(), "kept bytes", 10) == 0);
    // The new identity's descriptors attach.
    auto r = pool::attach(q.descriptor());
    CHECK(r.size() == q.size());
    const std::string new_name = q.name();
    r = {};
    again = {};
    q = {};
    CHECK_FALSE(shm_exists(new_name));
}

TEST_CASE("keep and reclaim refuse bad names, missing pools and foreign objects", "[pool][keep]")
{
    auto p = pool::create({.size = 1 << 16});
    CHECK(errc_of([&] { p.keep("/elsewhere"); }) == errc::invalid_argument);
    CHECK(errc_of([&] { p.keep("/dragonx-kept-a/b"); }) == errc::invalid_argument);
    CHECK(errc_of([&] { p.keep("/dragonx-kept-"); }) == errc::invalid_argument);
    CHECK(p);  // still ours
    CHECK(errc_of([&] { (void)pool::reclaim("/dragonx-kept-nothing-here-1", {}); }) ==
          errc::not_found);

    // A kept name that is not a pool is refused and left where it is.
    const std::string junk = "/dragonx-kept-junk-" + std::to_string(::getpid());
    {
        std::FILE* f = std::fopen(("/dev/shm" + junk).c_str(), "w");
        REQUIRE(f != nullptr);
        std::fputs(std::string(8192, 'x').c_str(), f);
        std::fclose(f);
    }
    CHECK(errc_of([&] { (void)pool::reclaim(junk, {}); }) == errc::corrupt_object);
    CHECK(shm_exists(junk));
    ::unlink(("/dev/shm" + junk).c_str());

    // Keeping onto a name that is taken fails and leaves the pool as it was.
    const std::string taken = "/dragonx-kept-taken-" + std::to_string(::getpid());
    auto other = pool::create({.size = 1 << 16});
    other.keep(taken);
    CHECK(errc_of([&] { p.keep(taken); }) == errc::already_exists);
    CHECK(p);
    CHECK(shm_exists(p.name()));
    auto back = pool::reclaim(taken, {});  // owner: removed at the end of the test
}
