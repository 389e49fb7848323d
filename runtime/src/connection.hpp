// connection.hpp - one control-protocol connection on an Asio event loop: framed envelopes
// in and out, the run-secret handshake, requests matched to their replies.
//
//   auto c = connection::make(std::move(socket), "node 2");
//   c->start_connector(secret, msg::hello{.role = "daemon", .node = 2}, {
//       .on_ready = [](connection& c) { ... },                   // authenticated
//       .on_message = [](connection& c, envelope e) { ... },     // a request or notice
//       .on_closed = [](connection& c, const std::string& why) { ... }});
//   c->request(msg::get_nodes{}, [](const envelope* reply) { ... });   // nullptr: lost
//
// Notes:
// - Runs on one io_context thread; call members from that thread only.
// - Handshake (TCP): the connector sends hello{challenge}; the acceptor answers hello_reply
//   {proof, challenge}; the connector answers hello_proof. Anything else, a wrong proof, or
//   no proof within `handshake_limit`, closes the connection (logged). An acceptor's
//   on_closed is called only if on_ready was (an unauthenticated peer is nobody); a
//   connector's on_closed is called in any case, so it learns that its handshake failed.
//   Plain connections (Unix sockets in a 0700 directory) skip the handshake.
// - A frame that does not decode closes the connection: a peer never crashes its reader.
// - send() never blocks: frames queue and are written in order.
// - on_closed is called once, when the peer goes (EOF, reset) or close() is called; pending
//   requests' callbacks then get nullptr. The connection object lives while the event loop
//   holds a handler for it or someone holds the shared_ptr.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include <asio/generic/stream_protocol.hpp>
#include <asio/steady_timer.hpp>

#include <dragonx/runtime/messages.hpp>

#include "auth.hpp"

namespace dragonx::rt::detail {

class connection : public std::enable_shared_from_this<connection> {
public:
    using socket_type = asio::generic::stream_protocol::socket;
    using reply_handler = std::function<void(const envelope* reply)>;

    struct handlers {
        std::function<void(connection&)> on_ready;              // handshake done (or plain)
        std::function<void(connection&, envelope)> on_message;  // not a reply we wait for
        std::function<void(connection&, const std::string& why)> on_closed;
    };

    static constexpr std::chrono::seconds handshake_limit{5};

    /// `name` is for logs and errors ("node 2", "launcher", "client").
    [[nodiscard]] static std::shared_ptr<connection> make(socket_type socket, std::string name);

    /// Starts reading; authenticates as the side that accepted the socket. The peer's
    /// hello (role, node) is available from peer_hello() in on_ready.
    void start_acceptor(const run_secret& secret, handlers h);
    /// Starts reading; authenticates as the side that connected, introducing itself by `me`.
    void start_connector(const run_secret& secret, msg::hello me, handlers h);
    /// Starts reading without a handshake (Unix-socket clients); on_ready is called at once.
    void start_plain(handlers h);

    /// Queues `e` for sending. Ignored (logged at debug) after close.
    void send(const envelope& e);
    /// Sends `body` as a notice (id 0, not a reply).
    void notify(message body) { send(envelope{.body = std::move(body)}); }
    /// Sends `body` as the reply to request `request_id`.
    void reply(std::uint64_t request_id, message body)
    {
        send(envelope{.reply_to = request_id, .body = std::move(body)});
    }
    /// Sends `body` as a request; `on_reply` gets the reply, or nullptr if the connection
    /// closes first.
    void request(message body, reply_handler on_reply);

    /// Closes the socket; on_closed(why) follows (once), pending requests get nullptr. Frames
    /// queued before close() are written first when `flush` is true.
    void close(const std::string& why, bool flush = false);

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    void set_name(std::string name) { name_ = std::move(name); }
    [[nodiscard]] bool open() const noexcept { return open_; }
    [[nodiscard]] const msg::hello& peer_hello() const noexcept { return peer_hello_; }
    /// When the last frame arrived (for heartbeat checks).
    [[nodiscard]] std::chrono::steady_clock::time_point last_heard() const noexcept
    {
        return last_heard_;
    }

    connection(socket_type socket, std::string name);  // use make()

private:
    enum class phase { idle, await_hello, await_reply, await_proof, ready, closed };

    void read_more();
    void on_envelope(envelope e);
    void handshake_step(envelope e);
    void become_ready();
    void write_more();
    void finish_close(const std::string& why);

    socket_type socket_;
    std::string name_;
    handlers handlers_;
    phase phase_ = phase::idle;
    bool open_ = true;
    bool report_early_close_ = false;  // connectors hear of a close during the handshake too
    bool closing_after_flush_ = false;
    std::string close_reason_;
    run_secret secret_{};
    std::vector<std::uint8_t> my_challenge_;
    msg::hello peer_hello_;
    asio::steady_timer handshake_timer_;
    frame_reader reader_;
    std::vector<std::byte> read_buffer_;
    std::deque<bytes> write_queue_;
    bool writing_ = false;
    std::uint64_t next_request_id_ = 1;
    std::unordered_map<std::uint64_t, reply_handler> pending_;
    std::chrono::steady_clock::time_point last_heard_;
};

}  // namespace dragonx::rt::detail
