// persist_test.cpp - checkpoint images (image.hpp) and the POSIX persister (persister.hpp):
// round trips, chunked loading, and that torn, flipped, foreign or oversized input is refused
// with nothing left in the pool.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <dragonx/common/error.hpp>
#include <dragonx/pool/pool.hpp>

#include "image.hpp"
#include "persister.hpp"
#include "support.hpp"

using dragonx::errc;
using dragonx::dict::byte_view;
using dragonx::dict::checkpoint_view;
using dragonx::dict::client_id;
using dragonx::dict::image_loader;
using dragonx::dict::image_meta;
using dragonx::dict::image_sink;
using dragonx::dict::loaded_checkpoint;
using dragonx::dict::loaded_image;
using dragonx::dict::persister;
using dragonx::test::temp_dir;
namespace fs = std::filesystem;

static_assert(!std::is_copy_constructible_v<image_loader>);
static_assert(!std::is_copy_assignable_v<image_loader>);
static_assert(std::is_nothrow_move_constructible_v<loaded_image>);

namespace {

byte_view bytes(std::string_view s)
{
    return std::as_bytes(std::span(s.data(), s.size()));
}

std::string text(byte_view b)
{
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string random_bytes(std::size_t n, std::uint32_t seed)
{
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (char& c : s) {
        c = static_cast<char>(rng() & 0xff);
    }
    return s;
}

// Every byte value once.
std::string all_byte_values()
{
    std::string s;
    for (int i = 0; i < 256; ++i) {
        s.push_back(static_cast<char>(i));
    }
    return s;
}

// A checkpoint as plain data: what is written, and what a load must give back.
struct checkpoint_data {
    struct item {
        std::string key;
        std::string value;
        bool persistent = false;
    };
    std::uint64_t id = 0;
    std::vector<item> entries;
    std::vector<std::string> deleted;
    std::vector<client_id> writers;

    [[nodiscard]] checkpoint_view view() const
    {
        checkpoint_view v;
        v.id = id;
        for (const auto& e : entries) {
            v.entries.push_back({bytes(e.key), bytes(e.value), e.persistent});
        }
        v.deleted = deleted;
        v.writers = writers;
        return v;
    }
};

std::vector<checkpoint_view> views(const std::vector<checkpoint_data>& cps)
{
    std::vector<checkpoint_view> v;
    for (const auto& cp : cps) {
        v.push_back(cp.view());
    }
    return v;
}

void require_same(const loaded_checkpoint& got, const checkpoint_data& want)
{
    REQUIRE(got.id == want.id);
    REQUIRE(got.entries.size() == want.entries.size());
    for (std::size_t i = 0; i < want.entries.size(); ++i) {
        const auto& [e, persistent] = got.entries[i];
        REQUIRE(e);
        REQUIRE(text(e.key()) == want.entries[i].key);
        REQUIRE(text(e.value()) == want.entries[i].value);
        REQUIRE(persistent == want.entries[i].persistent);
    }
    REQUIRE(got.deleted == want.deleted);
    REQUIRE(got.writers == want.writers);
}

void require_same(const loaded_image& got, const image_meta& meta,
                  const std::vector<checkpoint_data>& want)
{
    REQUIRE(got.meta.working_set_size == meta.working_set_size);
    REQUIRE(got.meta.wait_for_keys == meta.wait_for_keys);
    REQUIRE(got.meta.wait_for_writers == meta.wait_for_writers);
    REQUIRE(got.meta.manager_id == meta.manager_id);
    REQUIRE(got.meta.managers == meta.managers);
    REQUIRE(got.checkpoints.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        require_same(got.checkpoints[i], want[i]);
    }
}

// Collects what write_image() emits, and the spans it was handed.
class vector_sink final : public image_sink {
public:
    void write(byte_view b) override
    {
        writes.push_back(b);
        bytes.insert(bytes.end(), b.begin(), b.end());
    }
    std::vector<std::byte> bytes;
    std::vector<byte_view> writes;  // valid only while the written data lives
};

// The dragonx::errc a call throws, errc::ok if it returns; anything else fails the test.
errc error_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        if (e.code().category() != dragonx::dragonx_category()) {
            FAIL("a system error: " << e.what());
        }
        return static_cast<errc>(e.code().value());
    }
    return errc::ok;
}

// The message of the dragonx::error a call throws ("" if none).
std::string message_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        return e.what();
    }
    return "";
}

const image_meta test_meta{
    .working_set_size = 3,
    .wait_for_keys = true,
    .wait_for_writers = false,
    .manager_id = 2,
    .managers = 4,
};

// Small checkpoints with the edge cases: empty keys and values, binary bytes, flags, deleted
// keys (one empty), writers, and an empty checkpoint.
std::vector<checkpoint_data> small_checkpoints()
{
    std::vector<checkpoint_data> cps(3);
    cps[0].id = 7;
    cps[0].entries = {
        {"", "", false},
        {"empty value", "", true},
        {"", "empty key", false},
        {all_byte_values(), std::string("\0\xff\0", 3), true},
    };
    cps[0].deleted = {"gone", "", std::string("\0x", 2)};
    cps[0].writers = {1, 0xffffffffffffffffULL};
    cps[1].id = 8;  // nothing at all
    cps[2].id = 9;
    cps[2].entries = {{"k", "v", false}};
    cps[2].writers = {42};
    return cps;
}

std::vector<std::byte> image_of(const std::vector<checkpoint_data>& cps,
                                const image_meta& meta = test_meta)
{
    vector_sink sink;
    const auto v = views(cps);
    dragonx::dict::write_image(meta, v, sink);
    return std::move(sink.bytes);
}

struct pool_fixture {
    dragonx::pool::pool pool = dragonx::pool::pool::create({.size = 64 << 20});
    std::uint64_t start_free = pool.stats().free_bytes;

    [[nodiscard]] std::uint64_t free_bytes() const { return pool.stats().free_bytes; }

    // Feeds `image` in chunks of the sizes `next_chunk` returns, then takes it.
    loaded_image load(byte_view image, const std::function<std::size_t()>& next_chunk,
                      std::uint64_t limit = ~std::uint64_t{0})
    {
        image_loader loader(pool, limit);
        while (!image.empty()) {
            const std::size_t n = std::min(next_chunk(), image.size());
            loader.feed(image.first(n));
            image = image.subspan(n);
        }
        REQUIRE(loader.done());
        return loader.take();
    }

    loaded_image load(byte_view image)
    {
        return load(image, [&] { return image.size(); });
    }
};

}  // namespace

TEST_CASE("image: several checkpoints round trip, large values passed straight to the sink",
          "[ddict][persist]")
{
    pool_fixture f;
    auto cps = small_checkpoints();
    checkpoint_data big;
    big.id = 100;
    const std::string four_mib = random_bytes(4 << 20, 1);
    const std::string big_key = random_bytes(70 * 1024, 2);  // a key large enough to go direct
    big.entries = {{"big", four_mib, true}, {big_key, "small", false}, {"after", "x", false}};
    big.deleted = {"d1", "d2"};
    big.writers = {5, 6, 7};
    cps.push_back(big);

    vector_sink sink;
    const auto v = views(cps);
    dragonx::dict::write_image(test_meta, v, sink);
    REQUIRE(sink.bytes.size() == dragonx::dict::image_size(v));

    // The 4 MiB value and the 70 KiB key were handed over where they lie, not copied.
    const auto direct = [&](const std::string& s) {
        for (const auto& w : sink.writes) {
            if (w.data() == bytes(s).data() && w.size() == s.size()) {
                return true;
            }
        }
        return false;
    };
    CHECK(direct(cps.back().entries[0].value));
    CHECK(direct(cps.back().entries[1].key));
    // Small parts were buffered: far fewer writes than parts.
    CHECK(sink.writes.size() <= 6);

    {
        loaded_image got = f.load(sink.bytes);
        require_same(got, test_meta, cps);
        CHECK(f.free_bytes() < f.start_free);
    }
    REQUIRE(f.free_bytes() == f.start_free);

    // No checkpoints at all.
    const auto empty = image_of({});
    REQUIRE(empty.size() == dragonx::dict::image_size({}));
    loaded_image got = f.load(empty);
    REQUIRE(got.checkpoints.empty());
}

TEST_CASE("image: image_size matches the bytes written", "[ddict][persist]")
{
    std::mt19937 rng(3);
    for (int round = 0; round < 20; ++round) {
        std::vector<checkpoint_data> cps(rng() % 4);
        for (auto& cp : cps) {
            cp.id = rng();
            for (unsigned i = rng() % 6; i > 0; --i) {
                const std::size_t vsize = (rng() % 3 == 0) ? 64 * 1024 + rng() % 1000 : rng() % 300;
                cp.entries.push_back({random_bytes(rng() % 40, rng()), random_bytes(vsize, rng()),
                                      rng() % 2 == 0});
            }
            for (unsigned i = rng() % 4; i > 0; --i) {
                cp.deleted.push_back(random_bytes(rng() % 20, rng()));
            }
            for (unsigned i = rng() % 4; i > 0; --i) {
                cp.writers.push_back(rng());
            }
        }
        vector_sink sink;
        const auto v = views(cps);
        dragonx::dict::write_image(test_meta, v, sink);
        REQUIRE(sink.bytes.size() == dragonx::dict::image_size(v));
    }
}

TEST_CASE("image: fed in 1-byte, 7-byte and random chunks it loads the same", "[ddict][persist]")
{
    pool_fixture f;
    auto cps = small_checkpoints();
    checkpoint_data large;
    large.id = 10;
    large.entries = {{"large", random_bytes(200 * 1024, 4), false}};
    large.deleted = {random_bytes(150 * 1024, 5)};  // grows in chunks inside the loader
    cps.push_back(large);
    const auto image = image_of(cps);

    SECTION("1-byte chunks")
    {
        require_same(f.load(image, [] { return 1; }), test_meta, cps);
    }
    SECTION("7-byte chunks")
    {
        require_same(f.load(image, [] { return 7; }), test_meta, cps);
    }
    SECTION("random chunks")
    {
        std::mt19937 rng(6);
        for (int round = 0; round < 5; ++round) {
            require_same(f.load(image, [&] { return 1 + rng() % 5000; }), test_meta, cps);
        }
    }
    SECTION("next_destination and partial commits")
    {
        std::mt19937 rng(7);
        image_loader loader(f.pool);
        byte_view rest(image);
        while (!loader.done()) {
            const auto to = loader.next_destination();
            REQUIRE(!to.empty());
            const std::size_t n = std::min<std::size_t>({to.size(), rest.size(), 1 + rng() % 999});
            std::memcpy(to.data(), rest.data(), n);
            loader.commit(n);
            rest = rest.subspan(n);
        }
        REQUIRE(rest.empty());
        REQUIRE(loader.total_size() == image.size());
        REQUIRE(loader.next_destination().empty());
        require_same(loader.take(), test_meta, cps);
    }
    REQUIRE(f.free_bytes() == f.start_free);
}

TEST_CASE("image: a truncated image is refused by take()", "[ddict][persist]")
{
    pool_fixture f;
    const auto image = image_of(small_checkpoints());
    for (std::size_t len = 0; len < image.size(); ++len) {
        INFO("prefix of " << len << " bytes");
        image_loader loader(f.pool);
        loader.feed(byte_view(image).first(len));
        REQUIRE(!loader.done());
        REQUIRE(error_of([&] { (void)loader.take(); }) == errc::corrupt_file);
    }
    REQUIRE(message_of([&] {
                image_loader loader(f.pool);
                loader.feed(byte_view(image).first(image.size() - 1));
                (void)loader.take();
            }).find("truncated") != std::string::npos);
    REQUIRE(f.free_bytes() == f.start_free);
}

TEST_CASE("image: bytes past the end are refused", "[ddict][persist]")
{
    pool_fixture f;
    auto image = image_of(small_checkpoints());
    image.push_back(std::byte{0});
    image_loader loader(f.pool);
    REQUIRE(error_of([&] { loader.feed(image); }) == errc::corrupt_file);
}

TEST_CASE("image: every single-byte flip is detected", "[ddict][persist]")
{
    pool_fixture f;
    const auto image = image_of(small_checkpoints());
    for (const std::uint8_t mask : {0x01, 0x80, 0xff}) {
        for (std::size_t i = 0; i < image.size(); ++i) {
            INFO("byte " << i << " of " << image.size() << " xor " << int(mask));
            auto bad = image;
            bad[i] ^= std::byte{mask};
            REQUIRE(error_of([&] {
                        image_loader loader(f.pool);
                        loader.feed(bad);
                        (void)loader.take();
                    }) == errc::corrupt_file);
        }
    }
    REQUIRE(f.free_bytes() == f.start_free);
    const std::string what = message_of([&] {
        auto bad = image;
        bad[bad.size() - 1] ^= std::byte{1};
        image_loader loader(f.pool);
        loader.feed(bad);
        (void)loader.take();
    });
    REQUIRE(what.find("checksum mismatch") != std::string::npos);
}

TEST_CASE("image: garbage headers with huge counts and sizes allocate nothing",
          "[ddict][persist]")
{
    // Offsets of the version-1 layout (image.cpp): image header fields total_size at 16 and
    // checkpoint_count at 32; the first checkpoint header at 48 (entry, deleted and writer
    // counts at 56, 64, 72); its first entry header at 80 (key size at 80, value size at 88).
    pool_fixture f;
    const auto image = image_of(small_checkpoints());
    const auto patched = [&](std::size_t at, std::uint64_t value, std::size_t width = 8) {
        auto bad = image;
        std::memcpy(bad.data() + at, &value, width);
        return bad;
    };
    const auto start = std::chrono::steady_clock::now();
    for (const std::uint64_t huge : {std::uint64_t{1} << 20, std::uint64_t{1} << 40,
                                     std::uint64_t{1} << 62, ~std::uint64_t{0}}) {
        for (const std::size_t at : {32, 56, 64, 72, 88}) {
            INFO("field at " << at << " = " << huge);
            // Refused with the header's own total as bound, with or without a limit.
            for (const std::uint64_t limit : {std::uint64_t(image.size()), ~std::uint64_t{0}}) {
                REQUIRE(error_of([&] {
                            image_loader loader(f.pool, limit);
                            loader.feed(patched(at, huge));
                            (void)loader.take();
                        }) == errc::corrupt_file);
            }
        }
        // Key size (u32).
        const auto key_size = 0x80000000U | static_cast<std::uint32_t>(huge >> 33);
        REQUIRE(error_of([&] {
                    image_loader loader(f.pool);
                    loader.feed(patched(80, key_size, 4));
                    (void)loader.take();
                }) == errc::corrupt_file);
        // A lying total size: refused by a limit at once ...
        REQUIRE(error_of([&] {
                    image_loader loader(f.pool, image.size());
                    loader.feed(patched(16, huge));
                }) == errc::corrupt_file);
        // ... and without one, huge counts under it still allocate nothing: the image just
        // ends early.
        for (const std::size_t at : {32, 56, 64, 72}) {
            auto bad = patched(16, huge);
            const std::uint64_t count = huge / 64;
            std::memcpy(bad.data() + at, &count, 8);
            REQUIRE(error_of([&] {
                        image_loader loader(f.pool);
                        loader.feed(bad);
                        (void)loader.take();
                    }) == errc::corrupt_file);
        }
    }
    // Random garbage after a valid magic and version.
    std::mt19937 rng(8);
    for (int round = 0; round < 2000; ++round) {
        auto bad = image;
        for (std::size_t i = 12; i < bad.size(); ++i) {
            bad[i] = std::byte(rng() & 0xff);
        }
        REQUIRE(error_of([&] {
                    image_loader loader(f.pool, bad.size());
                    loader.feed(bad);
                    (void)loader.take();
                }) == errc::corrupt_file);
    }
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    REQUIRE(f.free_bytes() == f.start_free);

    // Not an image at all, or another format version.
    REQUIRE(message_of([&] {
                image_loader loader(f.pool);
                loader.feed(patched(0, 0x1234));
            }).find("magic") != std::string::npos);
    REQUIRE(message_of([&] {
                image_loader loader(f.pool);
                loader.feed(patched(8, 99, 4));
            }).find("version 99") != std::string::npos);
}

TEST_CASE("image: a pool too small is ddict_full and keeps nothing", "[ddict][persist]")
{
    auto small = dragonx::pool::pool::create({.size = 1 << 20});
    const std::uint64_t start_free = small.stats().free_bytes;
    std::vector<checkpoint_data> cps(1);
    for (int i = 0; i < 8; ++i) {
        cps[0].entries.push_back({"k" + std::to_string(i), random_bytes(200 * 1024, i), false});
    }
    const auto image = image_of(cps);
    {
        image_loader loader(small);
        REQUIRE(error_of([&] { loader.feed(image); }) == errc::ddict_full);
        CHECK(small.stats().free_bytes < start_free);  // the loader still holds what it got
    }
    REQUIRE(small.stats().free_bytes == start_free);

    // An entry larger than the whole pool.
    cps[0].entries = {{"huge", random_bytes(2 << 20, 9), false}};
    const auto huge = image_of(cps);
    const std::string what = message_of([&] {
        image_loader loader(small);
        loader.feed(huge);
    });
    REQUIRE(what.find("dictionary full") != std::string::npos);
    REQUIRE(small.stats().free_bytes == start_free);
}

// ---------------------------------------------------------------------------------------------

namespace {

struct persister_fixture : pool_fixture {
    temp_dir dir;

    // Loads `id`, expecting `code`; the pool must be back where it started after.
    void require_load_fails(const persister& p, std::uint64_t id, errc code)
    {
        INFO("load " << id);
        REQUIRE(error_of([&] { (void)p.load(id, pool); }) == code);
        REQUIRE(free_bytes() == start_free);
    }
};

checkpoint_data numbered(std::uint64_t id)
{
    checkpoint_data cp;
    cp.id = id;
    cp.entries = {{"id", std::to_string(id), false}, {"blob", random_bytes(100 * 1024, id), true}};
    cp.deleted = {"was-" + std::to_string(id)};
    cp.writers = {id, id + 1};
    return cp;
}

std::uint64_t write(persister& p, const checkpoint_data& cp)
{
    return p.write(test_meta, cp.view());
}

void touch(const fs::path& path, const std::string& content = "x")
{
    std::ofstream(path, std::ios::binary) << content;
}

}  // namespace

TEST_CASE("persister: write, ids and load round trip", "[ddict][persist]")
{
    persister_fixture f;
    persister p(f.dir.path() / "sub" / "dir", "my_dict.v-1", 2, -1);
    REQUIRE(fs::is_directory(f.dir.path() / "sub" / "dir"));
    REQUIRE(p.file_of(3) == f.dir.path() / "sub" / "dir" / "my_dict.v-1_2_3.ddict");
    REQUIRE(p.ids().empty());

    checkpoint_data big;
    big.id = 1;
    big.entries = {{"big", random_bytes(4 << 20, 10), true}, {"", "", false}};
    const std::vector<checkpoint_data> cps = {numbered(3), big, numbered(10)};
    for (const auto& cp : cps) {
        const std::uint64_t n = write(p, cp);
        const checkpoint_view v = cp.view();
        REQUIRE(n == dragonx::dict::image_size(std::span(&v, 1)));
        REQUIRE(fs::file_size(p.file_of(cp.id)) == n);
    }
    REQUIRE(p.ids() == std::vector<std::uint64_t>{1, 3, 10});
    for (const auto& cp : cps) {
        loaded_image got = p.load(cp.id, f.pool);
        require_same(got, test_meta, {cp});
    }
    REQUIRE(f.free_bytes() == f.start_free);
    // Nothing but the final files is left in the directory.
    std::size_t files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(p.directory())) {
        ++files;
    }
    REQUIRE(files == 3);

    // A rewrite replaces the file.
    auto changed = numbered(3);
    changed.entries[0].value = "changed";
    write(p, changed);
    require_same(p.load(3, f.pool), test_meta, {changed});
    REQUIRE(p.ids() == std::vector<std::uint64_t>{1, 3, 10});
}

TEST_CASE("persister: bad arguments", "[ddict][persist]")
{
    temp_dir dir;
    for (const char* name : {"", "a/b", "a b", "ü", "..\n"}) {
        INFO(name);
        REQUIRE(error_of([&] { persister(dir.path(), name, 0, -1); }) == errc::invalid_argument);
    }
    REQUIRE(error_of([&] { persister(dir.path(), "d", 0, -2); }) == errc::invalid_argument);
    REQUIRE(error_of([&] { persister::remove_all_newer_than(dir.path(), "a/b", 0); }) ==
            errc::invalid_argument);
}

TEST_CASE("persister: persist_count bounds the files kept", "[ddict][persist]")
{
    persister_fixture f;
    SECTION("count 2")
    {
        persister p(f.dir.path(), "d", 0, 2);
        for (std::uint64_t id : {0, 2, 4}) {
            write(p, numbered(id));
        }
        REQUIRE(p.ids() == std::vector<std::uint64_t>{2, 4});
        // Rewriting an id present is a replacement: nothing else goes.
        auto again = numbered(4);
        again.writers = {99};
        write(p, again);
        REQUIRE(p.ids() == std::vector<std::uint64_t>{2, 4});
        require_same(p.load(4, f.pool), test_meta, {again});
        // Another manager's files neither count nor go.
        persister other(f.dir.path(), "d", 1, 2);
        write(other, numbered(1));
        write(p, numbered(6));
        REQUIRE(p.ids() == std::vector<std::uint64_t>{4, 6});
        REQUIRE(other.ids() == std::vector<std::uint64_t>{1});
    }
    SECTION("count 1")
    {
        persister p(f.dir.path(), "d", 0, 1);
        write(p, numbered(1));
        write(p, numbered(2));
        REQUIRE(p.ids() == std::vector<std::uint64_t>{2});
    }
    SECTION("count 0 writes nothing")
    {
        persister p(f.dir.path(), "d", 0, 0);
        REQUIRE(write(p, numbered(1)) == 0);
        REQUIRE(p.ids().empty());
        REQUIRE(fs::is_empty(f.dir.path()));
    }
    SECTION("count -1 keeps everything")
    {
        persister p(f.dir.path(), "d", 0, -1);
        std::vector<std::uint64_t> want;
        for (std::uint64_t id = 0; id < 12; ++id) {
            write(p, numbered(id));
            want.push_back(id);
        }
        REQUIRE(p.ids() == want);
    }
}

TEST_CASE("persister: corrupt, missing and foreign files", "[ddict][persist]")
{
    persister_fixture f;
    persister p(f.dir.path(), "d", 0, -1);
    for (std::uint64_t id : {1, 2, 3, 4, 5}) {
        write(p, numbered(id));
    }

    SECTION("missing")
    {
        f.require_load_fails(p, 6, errc::checkpoint_unavailable);
        REQUIRE(message_of([&] { (void)p.load(6, f.pool); }).find("d_0_6.ddict") !=
                std::string::npos);
    }
    SECTION("truncated")
    {
        const auto size = fs::file_size(p.file_of(1));
        for (const std::uint64_t len : {std::uint64_t{0}, std::uint64_t{5}, std::uint64_t{48},
                                        size / 2, size - 1}) {
            write(p, numbered(1));
            fs::resize_file(p.file_of(1), len);
            f.require_load_fails(p, 1, errc::corrupt_file);
        }
        const std::string what = message_of([&] { (void)p.load(1, f.pool); });
        REQUIRE(what.find(p.file_of(1).string()) != std::string::npos);
        REQUIRE(what.find("truncated") != std::string::npos);
    }
    SECTION("longer than its image")
    {
        std::ofstream(p.file_of(2), std::ios::binary | std::ios::app) << "tail";
        f.require_load_fails(p, 2, errc::corrupt_file);
        const std::string what = message_of([&] { (void)p.load(2, f.pool); });
        REQUIRE(what.find("size mismatch") != std::string::npos);
        REQUIRE(what.find(p.file_of(2).string()) != std::string::npos);
    }
    SECTION("a flipped byte in the middle")
    {
        const auto size = fs::file_size(p.file_of(3));
        std::fstream file(p.file_of(3), std::ios::binary | std::ios::in | std::ios::out);
        file.seekg(static_cast<std::streamoff>(size / 2));
        const char c = static_cast<char>(file.get());
        file.seekp(static_cast<std::streamoff>(size / 2));
        file.put(static_cast<char>(c ^ 0x10));
        file.close();
        f.require_load_fails(p, 3, errc::corrupt_file);
        const std::string what = message_of([&] { (void)p.load(3, f.pool); });
        REQUIRE(what.find("checksum mismatch") != std::string::npos);
        REQUIRE(what.find(p.file_of(3).string()) != std::string::npos);
    }
    SECTION("a file under another id's name")
    {
        fs::copy_file(p.file_of(4), p.file_of(9));
        f.require_load_fails(p, 9, errc::corrupt_file);
    }
    SECTION("a pool too small")
    {
        auto small = dragonx::pool::pool::create({.size = 64 << 10});
        const std::uint64_t start = small.stats().free_bytes;
        REQUIRE(error_of([&] { (void)p.load(5, small); }) == errc::ddict_full);
        REQUIRE(small.stats().free_bytes == start);
    }
    SECTION("other managers, names, temp files and unparsable names are not listed")
    {
        persister other_manager(f.dir.path(), "d", 1, -1);
        persister other_name(f.dir.path(), "dd", 0, -1);
        persister underscored(f.dir.path(), "d_0", 7, -1);  // files "d_0_7_<id>.ddict"
        write(other_manager, numbered(20));
        write(other_name, numbered(21));
        write(underscored, numbered(22));
        for (const char* junk : {"d_0_.ddict", "d_0_x.ddict", "d_0_07.ddict", "d_0_+8.ddict",
                                 "d_0_8.ddict.bak", "d_00_8.ddict", "d__8.ddict", "d_0_8",
                                 "d_0_99999999999999999999.ddict", ".d_0_8.ddict.tmp-123",
                                 "x.ddict", "d_0_-8.ddict"}) {
            touch(f.dir.path() / junk);
        }
        fs::create_directory(f.dir.path() / "d_0_30.ddict");
        REQUIRE(p.ids() == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
        REQUIRE(other_manager.ids() == std::vector<std::uint64_t>{20});
        REQUIRE(other_name.ids() == std::vector<std::uint64_t>{21});
        REQUIRE(underscored.ids() == std::vector<std::uint64_t>{22});
        require_same(underscored.load(22, f.pool), test_meta, {numbered(22)});
        f.require_load_fails(p, 20, errc::checkpoint_unavailable);
    }
    // What was not touched still loads.
    require_same(p.load(5, f.pool), test_meta, {numbered(5)});
    REQUIRE(f.free_bytes() == f.start_free);
}

TEST_CASE("persister: stale temporary files go on write, fresh ones stay", "[ddict][persist]")
{
    persister_fixture f;
    persister p(f.dir.path(), "d", 0, -1);
    const fs::path stale = f.dir.path() / ".d_1_4.ddict.tmp-999999";
    const fs::path fresh = f.dir.path() / ".d_0_4.ddict.tmp-999998";
    const fs::path unrelated = f.dir.path() / ".notes";
    touch(stale);
    touch(fresh);
    touch(unrelated);
    const ::timeval old[2] = {{::time(nullptr) - 120, 0}, {::time(nullptr) - 120, 0}};
    REQUIRE(::utimes(stale.c_str(), old) == 0);
    REQUIRE(::utimes(unrelated.c_str(), old) == 0);
    REQUIRE(p.ids().empty());
    write(p, numbered(4));
    REQUIRE(!fs::exists(stale));
    REQUIRE(fs::exists(fresh));
    REQUIRE(fs::exists(unrelated));
    REQUIRE(p.ids() == std::vector<std::uint64_t>{4});
}

TEST_CASE("persister: a failed write leaves the previous files as they were",
          "[ddict][persist]")
{
    persister_fixture f;
    persister p(f.dir.path(), "d", 0, 2);
    write(p, numbered(1));
    write(p, numbered(2));

    SECTION("the temporary file cannot be created")
    {
        fs::create_directory(f.dir.path() /
                             (".d_0_3.ddict.tmp-" + std::to_string(::getpid())));
        REQUIRE_THROWS_AS(write(p, numbered(3)), dragonx::error);
        REQUIRE(p.ids() == std::vector<std::uint64_t>{1, 2});
    }
    SECTION("the rename fails")
    {
        // A non-empty directory under the final name cannot be replaced by a file.
        fs::remove(p.file_of(2));
        fs::create_directories(p.file_of(2) / "x");
        REQUIRE_THROWS_AS(write(p, numbered(2)), dragonx::error);
        REQUIRE(p.ids() == std::vector<std::uint64_t>{1});
        for (const auto& e : fs::directory_iterator(f.dir.path())) {
            INFO(e.path());
            REQUIRE(e.path().filename().native().find(".tmp-") == std::string::npos);
        }
        fs::remove_all(p.file_of(2));
        write(p, numbered(2));
    }
    require_same(p.load(1, f.pool), test_meta, {numbered(1)});
    require_same(p.load(2, f.pool), test_meta, {numbered(2)});
}

TEST_CASE("persister: remove_newer_than and remove_all_newer_than", "[ddict][persist]")
{
    persister_fixture f;
    persister m0(f.dir.path(), "d", 0, -1);
    persister m1(f.dir.path(), "d", 1, -1);
    persister e0(f.dir.path(), "e", 0, -1);
    for (std::uint64_t id = 1; id <= 5; ++id) {
        write(m0, numbered(id));
        write(m1, numbered(id));
        write(e0, numbered(id));
    }
    m0.remove_newer_than(3);
    REQUIRE(m0.ids() == std::vector<std::uint64_t>{1, 2, 3});
    REQUIRE(m1.ids() == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
    m0.remove_newer_than(10);
    REQUIRE(m0.ids() == std::vector<std::uint64_t>{1, 2, 3});

    persister::remove_all_newer_than(f.dir.path(), "d", 1);
    REQUIRE(m0.ids() == std::vector<std::uint64_t>{1});
    REQUIRE(m1.ids() == std::vector<std::uint64_t>{1});
    REQUIRE(e0.ids() == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
    require_same(m1.load(1, f.pool), test_meta, {numbered(1)});

    persister::remove_all_newer_than(f.dir.path() / "missing", "d", 0);  // nothing to do
    persister::remove_all_newer_than(f.dir.path(), "e", 0);
    REQUIRE(e0.ids().empty());
}
