// descriptor_test.cpp - pool and allocation descriptors: round trips and malformed input.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include <dragonx/common/descriptor.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/wire.hpp>
#include <dragonx/pool/pool.hpp>

#include "support.hpp"

using dragonx::errc;
using dragonx::test::errc_of;
using dragonx::pool::pool;

namespace {

// A pool descriptor with chosen fields, as the pool component writes it (version 1).
std::string forge_pool(const std::string& run, std::uint32_t node, std::uint64_t id,
                       std::uint64_t nonce, std::uint64_t size, std::uint8_t version = 1)
{
    dragonx::byte_writer w;
    w.put_string(run);
    w.put(node);
    w.put(id);
    w.put(nonce);
    w.put(size);
    return dragonx::seal_descriptor(dragonx::descriptor_kind::pool, version, w.bytes());
}

}  // namespace

TEST_CASE("descriptors are short printable strings", "[pool][descriptor]")
{
    auto p = pool::create({.size = 1 << 20});
    const auto pd = p.descriptor();
    auto a = p.allocate(10, std::chrono::seconds(1));
    const auto ad = a.descriptor();
    CHECK(pd.size() < 96);
    CHECK(ad.size() < 128);
    for (char c : pd + ad) {
        CHECK((std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'));
    }
    CHECK(dragonx::pool::pool_of(ad) == pd);
}

TEST_CASE("every truncation of a descriptor is rejected", "[pool][descriptor]")
{
    auto p = pool::create({.size = 1 << 20});
    const auto pd = p.descriptor();
    auto a = p.allocate(10, std::chrono::seconds(1));
    const auto ad = a.descriptor();
    for (std::size_t n = 0; n < pd.size(); ++n) {
        CHECK(errc_of([&] { (void)pool::attach(pd.substr(0, n)); }) ==
              errc::malformed_descriptor);
    }
    for (std::size_t n = 0; n < ad.size(); ++n) {
        CHECK(errc_of([&] { (void)p.attach_allocation(ad.substr(0, n)); }) ==
              errc::malformed_descriptor);
    }
}

TEST_CASE("random strings and bytes never attach and never crash", "[pool][descriptor]")
{
    auto p = pool::create({.size = 1 << 20});
    std::mt19937_64 rng(12345);
    const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 5000; ++i) {
        std::string s(rng() % 160, ' ');
        for (auto& c : s) {
            c = (i % 4 == 0) ? static_cast<char>(rng() % 256) : alphabet[rng() % 64];
        }
        const auto e1 = errc_of([&] { (void)pool::attach(s); });
        const auto e2 = errc_of([&] { (void)p.attach_allocation(s); });
        CHECK((e1 == errc::malformed_descriptor || e1 == errc::version_mismatch));
        CHECK((e2 == errc::malformed_descriptor || e2 == errc::version_mismatch));
    }
    // Random payloads in a valid frame: well-formed envelopes with nonsense inside.
    for (int i = 0; i < 2000; ++i) {
        std::vector<std::byte> payload(rng() % 80);
        for (auto& b : payload) {
            b = static_cast<std::byte>(rng());
        }
        const auto s = dragonx::seal_descriptor(dragonx::descriptor_kind::pool, 1, payload);
        const auto e = errc_of([&] { (void)pool::attach(s); });
        CHECK(e != errc::ok);
        CHECK(e != errc::internal);
    }
}

TEST_CASE("a flipped character is caught by the checksum", "[pool][descriptor]")
{
    auto p = pool::create({.size = 1 << 20});
    const auto pd = p.descriptor();
    for (std::size_t i = 0; i < pd.size(); ++i) {
        auto bad = pd;
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        CHECK(errc_of([&] { (void)pool::attach(bad); }) == errc::malformed_descriptor);
    }
}

TEST_CASE("wrong versions, kinds, runs and sizes are told apart", "[pool][descriptor]")
{
    auto p = pool::create({.size = 1 << 20, .id = 77});
    auto a = p.allocate(10, std::chrono::seconds(1));
    const std::string run = p.run();

    CHECK(errc_of([&] { (void)pool::attach(forge_pool(run, 0, 77, 1, 1 << 20, 2)); }) ==
          errc::version_mismatch);
    // An allocation descriptor is not a pool descriptor, and the other way round.
    CHECK(errc_of([&] { (void)pool::attach(a.descriptor()); }) == errc::malformed_descriptor);
    CHECK(errc_of([&] { (void)p.attach_allocation(p.descriptor()); }) ==
          errc::malformed_descriptor);
    // Another run's pool.
    CHECK(errc_of([&] { (void)pool::attach(forge_pool("otherrun", 0, 77, 1, 1 << 20)); }) ==
          errc::wrong_run);
    // A bad run id inside an otherwise valid frame.
    CHECK(errc_of([&] { (void)pool::attach(forge_pool("bad/run", 0, 77, 1, 1 << 20)); }) ==
          errc::malformed_descriptor);
    // The right name but not this creation of it.
    CHECK(errc_of([&] { (void)pool::attach(forge_pool(run, 0, 77, 1, 1 << 20)); }) ==
          errc::not_found);
    // A pool that does not exist.
    CHECK(errc_of([&] { (void)pool::attach(forge_pool(run, 0, 78, 1, 1 << 20)); }) ==
          errc::not_found);
}

TEST_CASE("allocation descriptors of another pool or no live block are refused",
          "[pool][descriptor]")
{
    auto p = pool::create({.size = 1 << 20});
    auto q = pool::create({.size = 1 << 20});
    auto a = q.allocate(100, std::chrono::seconds(1));
    CHECK(errc_of([&] { (void)p.attach_allocation(a.descriptor()); }) == errc::invalid_argument);

    // Forged offsets and sizes inside p: misaligned, out of range, not allocated.
    auto live = p.allocate(100, std::chrono::seconds(1));
    const auto pd_payload_desc = live.descriptor();
    for (auto [offset, size] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
             {live.offset() + 64, 64},   // inside a block, not its start
             {live.offset(), 1000},      // wrong size class
             {1 << 20, 64},              // past the end
             {~std::uint64_t{0} - 63, 64},
             {live.offset(), std::uint64_t{1} << 40},
             {512 * 1024, 64}}) {        // never allocated
        dragonx::byte_writer w;
        const auto inner = dragonx::open_descriptor(dragonx::pool::pool_of(pd_payload_desc),
                                                    dragonx::descriptor_kind::pool, 1);
        w.put_bytes(inner);
        w.put(offset);
        w.put(size);
        const auto forged =
            dragonx::seal_descriptor(dragonx::descriptor_kind::allocation, 1, w.bytes());
        CHECK(errc_of([&] { (void)p.attach_allocation(forged); }) == errc::invalid_allocation);
    }
}
