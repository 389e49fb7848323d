// messages_test.cpp - the control protocol: every message round-trips through a frame, the
// frame reader copes with any fragmentation, and malformed or foreign input is rejected.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include <dragonx/runtime/messages.hpp>

#include "auth.hpp"
#include "support.hpp"

using dragonx::bytes;
using dragonx::errc;
using dragonx::test::errc_of;
namespace rt = dragonx::rt;
namespace msg = dragonx::rt::msg;

namespace {

rt::process_spec sample_spec()
{
    rt::process_spec spec;
    spec.exe = "/bin/echo";
    spec.args = {"hello", "", std::string(3000, 'x')};
    spec.cwd = "/tmp";
    spec.env = {{"A", "1"}, {"EMPTY", ""}};
    dragonx::policy p;
    p.host_name = "node2";
    p.cpu_affinity = std::vector<int>{0, 1};
    spec.where = p;
    spec.err = {rt::stdio_target::file, "/tmp/err.log"};
    return spec;
}

rt::node_info sample_node()
{
    return {2, "node2", "127.0.0.1", 40123, {0, 1}, {}, 0, 24ull << 30};
}

// One value of every message, so a new message is not forgotten here: the count is checked.
std::vector<rt::message> one_of_each()
{
    std::vector<rt::message> all = {
        msg::hello{"daemon", 3, {1, 2, 3}},
        msg::hello_reply{{9, 9}, {4, 5}},
        msg::hello_proof{{7}},
        msg::daemon_up{sample_node()},
        msg::node_table{{sample_node(), rt::node_info{}}},
        msg::start_head{sample_spec()},
        msg::started{{errc::not_found, "no such program: /nope"}, 0, 1},
        msg::output{4294967296ull, 2, rt::output_stream::err, "line one\nline two\n"},
        msg::exited{5, 0, 9},
        msg::teardown{"head exited"},
        msg::teardown_done{2},
        msg::heartbeat{77},
        msg::node_failed{1, "daemon on node1 stopped answering"},
        msg::ack{{errc::timeout, "late"}},
        msg::create_process{sample_spec(), 4294967297ull},
        msg::spawn_process{4294967298ull, sample_spec(), {1, {0, 1}, {3}, 1}},
        msg::signal_process{4294967298ull, 15},
        msg::join_processes{{1, 2, 3}, false, 2500},
        msg::query_processes{{9}},
        msg::process_states{{}, {{9, 1, rt::process_state::exited, 137, 9}}},
        msg::get_nodes{},
        msg::kv_put{"ddict/main", "descriptor"},
        msg::kv_get{"ddict/main", -1},
        msg::kv_value{{errc::key_not_found, "no key ddict/main"}, ""},
        msg::register_shm{7, "/dragonx-r1-n0-00"},
        msg::group_create{{{4, sample_spec()}}, dragonx::policy{}, true, false, 1500, 3,
                          msg::pmi_mode::pmi1},
        msg::group_request{12, msg::group_op::stop_restart},
        msg::group_signal{12, 2, true},
        msg::group_join{12, 100},
        msg::group_state{{}, 12, {1, 2}, {{3, 0, rt::process_state::exited, 1, 0}}, {}, true},
        msg::read_output{7, rt::output_stream::err, 250},
        msg::output_data{{}, "partial line", true},
    };
    REQUIRE(all.size() == std::variant_size_v<rt::message>);
    for (std::size_t i = 0; i < all.size(); ++i) {
        REQUIRE(all[i].index() == i);
    }
    return all;
}

}  // namespace

TEST_CASE("every control message round-trips through a frame", "[runtime][messages]")
{
    std::uint64_t id = 1;
    for (const auto& m : one_of_each()) {
        CAPTURE(rt::message_name(m));
        rt::envelope e{rt::protocol_version, id, id + 100, m};
        const auto frame = rt::encode_frame(e);
        rt::frame_reader r;
        r.feed(frame);
        auto got = r.next();
        REQUIRE(got);
        CHECK(got->id == id);
        CHECK(got->reply_to == id + 100);
        CHECK(got->body == m);
        CHECK_FALSE(r.next());
        CHECK(r.buffered() == 0);
        ++id;
    }
}

TEST_CASE("the frame reader reassembles frames cut at any byte", "[runtime][messages]")
{
    bytes stream;
    const auto all = one_of_each();
    for (const auto& m : all) {
        const auto f = rt::encode_frame({rt::protocol_version, 0, 0, m});
        stream.insert(stream.end(), f.begin(), f.end());
    }
    std::mt19937 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        rt::frame_reader r;
        std::vector<rt::message> got;
        std::size_t at = 0;
        while (at < stream.size()) {
            const std::size_t n = std::min<std::size_t>(stream.size() - at, 1 + rng() % 700);
            r.feed(std::span(stream).subspan(at, n));
            at += n;
            while (auto e = r.next()) {
                got.push_back(e->body);
            }
        }
        CHECK(got == all);
    }
}

TEST_CASE("malformed, oversized and foreign frames are rejected", "[runtime][messages]")
{
    const auto good = rt::encode_frame({rt::protocol_version, 1, 0, msg::start_head{sample_spec()}});
    const auto body = std::span(good).subspan(4);

    // Every truncation of the body.
    for (std::size_t n = 0; n < body.size(); n += 7) {
        CAPTURE(n);
        const auto e = errc_of([&] { (void)rt::decode_envelope(body.first(n)); });
        CHECK(e == errc::malformed_message);
    }
    // Trailing garbage.
    bytes longer(body.begin(), body.end());
    longer.push_back(std::byte{1});
    CHECK(errc_of([&] { (void)rt::decode_envelope(longer); }) == errc::malformed_message);
    // An unknown message tag (one past the last).
    dragonx::encoder out;
    out.value(rt::protocol_version);
    out.value(std::uint64_t{1});
    out.value(std::uint64_t{0});
    out.value(static_cast<std::uint32_t>(std::variant_size_v<rt::message>));
    CHECK(errc_of([&] { (void)rt::decode_envelope(out.to_bytes()); }) == errc::malformed_message);
    // Another protocol version says so.
    out.clear();
    out.value(static_cast<std::uint16_t>(rt::protocol_version + 1));
    std::string what;
    CHECK(errc_of([&] { (void)rt::decode_envelope(out.to_bytes()); }, &what) ==
          errc::version_mismatch);
    CHECK_THAT(what, Catch::Contains("version"));
    // A length over the limit is refused before anything is buffered for it.
    rt::frame_reader r;
    const bytes huge_length{std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0x7f}};
    r.feed(huge_length);
    CHECK(errc_of([&] { (void)r.next(); }) == errc::malformed_message);
    // Random bytes never crash the decoder: they decode or throw a dragonx::error.
    std::mt19937 rng(11);
    for (int trial = 0; trial < 2000; ++trial) {
        bytes noise(rng() % 64);
        for (auto& b : noise) {
            b = static_cast<std::byte>(rng());
        }
        if (!noise.empty()) {
            noise[0] = std::byte{rt::protocol_version};
            if (noise.size() > 1) {
                noise[1] = std::byte{0};
            }
        }
        const auto e = errc_of([&] { (void)rt::decode_envelope(noise); });
        CHECK((e == errc::ok || e == errc::malformed_message));
    }
}

TEST_CASE("status carries errors as data", "[runtime][messages]")
{
    CHECK(rt::status{}.ok());
    const rt::status bad{errc::not_found, "no such program"};
    std::string what;
    CHECK(errc_of([&] { bad.throw_if_error(); }, &what) == errc::not_found);
    CHECK_THAT(what, Catch::StartsWith("no such program"));
}

TEST_CASE("run secrets: proofs verify only with the secret, role and challenge they were made for",
          "[runtime][auth]")
{
    namespace d = dragonx::rt::detail;
    const auto secret = d::make_secret();
    const auto other = d::make_secret();
    CHECK(secret != other);
    CHECK(d::secret_from_hex(d::secret_to_hex(secret)) == secret);
    CHECK(errc_of([] { (void)d::secret_from_hex("abc"); }) == errc::invalid_argument);
    CHECK(errc_of([] { (void)d::secret_from_hex(std::string(64, 'g')); }) ==
          errc::invalid_argument);

    const auto challenge = d::make_challenge();
    CHECK(challenge.size() == 32);
    const auto proof = d::prove(secret, d::auth_role::connector, challenge);
    CHECK(proof.size() == 32);
    CHECK(d::verify(secret, d::auth_role::connector, challenge, proof));
    CHECK_FALSE(d::verify(other, d::auth_role::connector, challenge, proof));
    CHECK_FALSE(d::verify(secret, d::auth_role::acceptor, challenge, proof));  // no reflection
    CHECK_FALSE(d::verify(secret, d::auth_role::connector, d::make_challenge(), proof));
    auto tampered = proof;
    tampered[5] ^= 1;
    CHECK_FALSE(d::verify(secret, d::auth_role::connector, challenge, tampered));
    CHECK_FALSE(d::verify(secret, d::auth_role::connector, challenge, {}));
}
