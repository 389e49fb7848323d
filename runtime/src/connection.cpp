// connection.cpp - framed, authenticated control connections on Asio.
#include "connection.hpp"

#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

namespace dragonx::rt::detail {

namespace {
constexpr std::size_t read_chunk = 64 * 1024;
}

std::shared_ptr<connection> connection::make(socket_type socket, std::string name)
{
    return std::make_shared<connection>(std::move(socket), std::move(name));
}

connection::connection(socket_type socket, std::string name)
    : socket_(std::move(socket)),
      name_(std::move(name)),
      handshake_timer_(socket_.get_executor()),
      read_buffer_(read_chunk),
      last_heard_(std::chrono::steady_clock::now())
{
}

void connection::start_acceptor(const run_secret& secret, handlers h)
{
    handlers_ = std::move(h);
    secret_ = secret;
    phase_ = phase::await_hello;
    handshake_timer_.expires_after(handshake_limit);
    handshake_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
        if (!ec && self->phase_ != phase::ready && self->phase_ != phase::closed) {
            self->close("no handshake within " + std::to_string(handshake_limit.count()) + " s");
        }
    });
    read_more();
}

void connection::start_connector(const run_secret& secret, msg::hello me, handlers h)
{
    handlers_ = std::move(h);
    secret_ = secret;
    report_early_close_ = true;
    my_challenge_ = make_challenge();
    me.challenge = my_challenge_;
    phase_ = phase::await_reply;
    handshake_timer_.expires_after(handshake_limit);
    handshake_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
        if (!ec && self->phase_ != phase::ready && self->phase_ != phase::closed) {
            self->close("no handshake reply within " + std::to_string(handshake_limit.count()) +
                        " s");
        }
    });
    notify(std::move(me));
    read_more();
}

void connection::start_plain(handlers h)
{
    handlers_ = std::move(h);
    read_more();
    become_ready();
}

void connection::read_more()
{
    socket_.async_read_some(
        asio::buffer(read_buffer_),
        [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
            if (self->phase_ == phase::closed) {
                return;
            }
            if (ec) {
                self->finish_close(ec == asio::error::eof ? "connection closed by the peer"
                                                          : "connection lost: " + ec.message());
                return;
            }
            self->last_heard_ = std::chrono::steady_clock::now();
            try {
                self->reader_.feed(std::span(self->read_buffer_).first(n));
                while (self->phase_ != phase::closed) {
                    auto e = self->reader_.next();
                    if (!e) {
                        break;
                    }
                    self->on_envelope(std::move(*e));
                }
            } catch (const dragonx::error& e) {
                log::get("runtime").warn("{}: dropping the connection: {}", self->name_,
                                         e.what());
                self->close(std::string("bad message: ") + e.what());
                return;
            }
            if (self->phase_ != phase::closed) {
                self->read_more();
            }
        });
}

void connection::on_envelope(envelope e)
{
    if (phase_ != phase::ready) {
        handshake_step(std::move(e));
        return;
    }
    if (e.reply_to != 0) {
        const auto it = pending_.find(e.reply_to);
        if (it != pending_.end()) {
            auto handler = std::move(it->second);
            pending_.erase(it);
            handler(&e);
            return;
        }
    }
    if (handlers_.on_message) {
        handlers_.on_message(*this, std::move(e));
    }
}

void connection::handshake_step(envelope e)
{
    auto refuse = [&](const std::string& what) {
        log::get("runtime").warn("{}: unauthenticated connection dropped: {}", name_, what);
        close("authentication failed: " + what);
    };
    switch (phase_) {
    case phase::await_hello: {
        auto* hello = std::get_if<msg::hello>(&e.body);
        if (hello == nullptr || hello->challenge.empty()) {
            return refuse(std::string("expected hello, got ") +
                          std::string(message_name(e.body)));
        }
        peer_hello_ = *hello;
        my_challenge_ = make_challenge();
        phase_ = phase::await_proof;
        notify(msg::hello_reply{.proof = prove(secret_, auth_role::acceptor, hello->challenge),
                                .challenge = my_challenge_});
        return;
    }
    case phase::await_reply: {
        auto* reply = std::get_if<msg::hello_reply>(&e.body);
        if (reply == nullptr || reply->challenge.empty() ||
            !verify(secret_, auth_role::acceptor, my_challenge_, reply->proof)) {
            return refuse("the acceptor does not know the run secret");
        }
        notify(msg::hello_proof{.proof = prove(secret_, auth_role::connector, reply->challenge)});
        become_ready();
        return;
    }
    case phase::await_proof: {
        auto* proof = std::get_if<msg::hello_proof>(&e.body);
        if (proof == nullptr ||
            !verify(secret_, auth_role::connector, my_challenge_, proof->proof)) {
            return refuse("the connector does not know the run secret");
        }
        become_ready();
        return;
    }
    default:
        return refuse("message before the handshake started");
    }
}

void connection::become_ready()
{
    phase_ = phase::ready;
    handshake_timer_.cancel();
    if (handlers_.on_ready) {
        handlers_.on_ready(*this);
    }
}

void connection::send(const envelope& e)
{
    if (!open_ || closing_after_flush_) {
        log::get("runtime").debug("{}: {} not sent: connection closed", name_,
                                  message_name(e.body));
        return;
    }
    write_queue_.push_back(encode_frame(e));
    if (!writing_) {
        write_more();
    }
}

void connection::request(message body, reply_handler on_reply)
{
    if (!open_) {
        on_reply(nullptr);
        return;
    }
    const std::uint64_t id = next_request_id_++;
    pending_.emplace(id, std::move(on_reply));
    send(envelope{.id = id, .body = std::move(body)});
}

void connection::write_more()
{
    if (write_queue_.empty() || !open_) {
        writing_ = false;
        if (closing_after_flush_ && open_) {
            finish_close(close_reason_);
        }
        return;
    }
    writing_ = true;
    asio::async_write(socket_, asio::buffer(write_queue_.front()),
                      [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                          if (!self->open_) {
                              return;
                          }
                          if (ec) {
                              self->finish_close("connection lost while writing: " +
                                                 ec.message());
                              return;
                          }
                          self->write_queue_.pop_front();
                          self->write_more();
                      });
}

void connection::close(const std::string& why, bool flush)
{
    if (!open_) {
        return;
    }
    if (flush && writing_) {
        closing_after_flush_ = true;
        close_reason_ = why;
        return;
    }
    finish_close(why);
}

void connection::finish_close(const std::string& why)
{
    if (!open_) {
        return;
    }
    open_ = false;
    const bool was_ready = phase_ == phase::ready;
    phase_ = phase::closed;
    std::error_code ignored;
    handshake_timer_.cancel();
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    write_queue_.clear();
    auto pending = std::move(pending_);
    pending_.clear();
    auto self = shared_from_this();  // keep alive through the callbacks
    for (auto& [id, handler] : pending) {
        handler(nullptr);
    }
    if ((was_ready || report_early_close_) && handlers_.on_closed) {
        handlers_.on_closed(*this, why);
    }
}

}  // namespace dragonx::rt::detail
