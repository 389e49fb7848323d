// connection_test.cpp - control connections over real TCP sockets: the run-secret handshake
// admits peers that know the secret and drops everything else (wrong secret, garbage, a
// message before the handshake, an oversized frame), and requests meet their replies.
#include <catch2/catch.hpp>

#include <array>
#include <thread>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "auth.hpp"
#include "connection.hpp"

namespace rt = dragonx::rt;
namespace msg = dragonx::rt::msg;
using rt::detail::connection;
using tcp = asio::ip::tcp;

namespace {

// An acceptor side: accepts one connection and records what happens to it.
struct server {
    asio::io_context& io;
    tcp::acceptor acceptor;
    rt::detail::run_secret secret;
    std::shared_ptr<connection> conn;
    bool ready = false;
    bool closed = false;
    std::string close_reason;
    int messages = 0;

    server(asio::io_context& context, const rt::detail::run_secret& s)
        : io(context), acceptor(context, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
          secret(s)
    {
        acceptor.async_accept([this](const std::error_code& ec, tcp::socket socket) {
            REQUIRE_FALSE(ec);
            conn = connection::make(connection::socket_type(std::move(socket)), "test peer");
            conn->start_acceptor(secret,
                                 {.on_ready = [this](connection&) { ready = true; },
                                  .on_message =
                                      [this](connection& c, rt::envelope e) {
                                          ++messages;
                                          if (e.id != 0) {
                                              c.reply(e.id, msg::node_table{});
                                          }
                                      },
                                  .on_closed =
                                      [this](connection&, const std::string& why) {
                                          closed = true;
                                          close_reason = why;
                                      }});
        });
    }
    [[nodiscard]] std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

// Sends raw bytes from another thread with a blocking socket; returns true if the server
// then closed the connection (read gives EOF or an error) within the test's run time.
bool raw_client_is_dropped(std::uint16_t port, const std::vector<std::uint8_t>& bytes)
{
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    asio::write(s, asio::buffer(bytes));
    std::array<char, 4096> buf{};
    std::error_code ec;
    for (int i = 0; i < 100 && !ec; ++i) {  // hello_reply may come first; then EOF
        s.read_some(asio::buffer(buf), ec);
    }
    return ec == asio::error::eof || ec == asio::error::connection_reset;
}

std::vector<std::uint8_t> frame_of(const rt::envelope& e)
{
    const auto f = rt::encode_frame(e);
    std::vector<std::uint8_t> out(f.size());
    std::memcpy(out.data(), f.data(), f.size());
    return out;
}

}  // namespace

TEST_CASE("a connector that knows the secret is admitted and requests get replies",
          "[runtime][connection]")
{
    asio::io_context io;
    const auto secret = rt::detail::make_secret();
    server srv(io, secret);

    tcp::socket socket(io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), srv.port()));
    auto client = connection::make(connection::socket_type(std::move(socket)), "client");
    bool client_ready = false;
    bool got_reply = false;
    client->start_connector(secret, msg::hello{.role = "daemon", .node = 3},
                            {.on_ready =
                                 [&](connection& c) {
                                     client_ready = true;
                                     c.request(msg::get_nodes{}, [&](const rt::envelope* r) {
                                         got_reply = r != nullptr &&
                                                     std::holds_alternative<msg::node_table>(
                                                         r->body);
                                         io.stop();
                                     });
                                 },
                             .on_message = {},
                             .on_closed = {}});
    io.run_for(std::chrono::seconds(5));
    CHECK(client_ready);
    CHECK(srv.ready);
    CHECK(srv.conn->peer_hello().role == "daemon");
    CHECK(srv.conn->peer_hello().node == 3);
    CHECK(got_reply);
}

TEST_CASE("a connector with the wrong secret is refused on both sides", "[runtime][connection]")
{
    asio::io_context io;
    server srv(io, rt::detail::make_secret());

    tcp::socket socket(io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), srv.port()));
    auto client = connection::make(connection::socket_type(std::move(socket)), "client");
    bool client_ready = false;
    std::string why;
    client->start_connector(rt::detail::make_secret(), msg::hello{.role = "daemon", .node = 1},
                            {.on_ready = [&](connection&) { client_ready = true; },
                             .on_message = {},
                             .on_closed =
                                 [&](connection&, const std::string& reason) {
                                     why = reason;
                                     io.stop();
                                 }});
    io.run_for(std::chrono::seconds(5));
    CHECK_FALSE(client_ready);
    CHECK_THAT(why, Catch::Contains("authentication failed"));
    CHECK_FALSE(srv.ready);
    CHECK(srv.messages == 0);
}

TEST_CASE("unauthenticated TCP input is dropped without reaching the handlers",
          "[runtime][connection]")
{
    const auto secret = rt::detail::make_secret();
    std::vector<std::uint8_t> input;
    SECTION("garbage")
    {
        const std::string http = "GET / HTTP/1.0\r\n\r\n";
        input.assign(http.begin(), http.end());
    }
    SECTION("a valid message that is not hello")
    {
        input = frame_of(rt::envelope{.id = 1, .body = msg::teardown{"by a stranger"}});
    }
    SECTION("a hello, then a made-up proof")
    {
        input = frame_of(rt::envelope{.body = msg::hello{"daemon", 0, {1, 2, 3}}});
        const auto proof = frame_of(rt::envelope{.body = msg::hello_proof{{0, 1, 2}}});
        input.insert(input.end(), proof.begin(), proof.end());
    }
    SECTION("an oversized frame")
    {
        input = {0xff, 0xff, 0xff, 0xff, 0x00};
    }
    asio::io_context io;
    server srv(io, secret);
    bool dropped = false;
    std::thread stranger([&] {
        dropped = raw_client_is_dropped(srv.port(), input);
        asio::post(io, [&] { io.stop(); });
    });
    io.run_for(std::chrono::seconds(5));
    stranger.join();
    CHECK(dropped);
    CHECK_FALSE(srv.ready);
    CHECK(srv.messages == 0);
    CHECK_FALSE(srv.closed);  // an acceptor's on_closed is only for authenticated peers
}
