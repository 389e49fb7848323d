// tcp_link.cpp - peer_link over TCP: one outgoing connection per destination, handshake,
// length-prefixed frames.
#include "tcp_link.hpp"

#include <array>
#include <deque>
#include <map>
#include <set>
#include <vector>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

#include "frame_buffer.hpp"

namespace dragonx::rt::detail {

namespace {

using tcp = asio::ip::tcp;

constexpr std::uint32_t link_magic = 0x31415844;  // "DXA1"
constexpr std::size_t challenge_size = 32;
constexpr std::size_t proof_size = 32;
constexpr std::size_t hello_size = 8 + challenge_size;
constexpr std::size_t hello_reply_size = proof_size + challenge_size;
constexpr auto handshake_limit = std::chrono::seconds(5);
constexpr std::size_t read_chunk = 256 << 10;

spdlog::logger& logger() { return log::get("transport"); }

std::span<const std::uint8_t> as_u8(std::span<const std::byte> b)
{
    return {reinterpret_cast<const std::uint8_t*>(b.data()), b.size()};
}

/// What the link's connections share with it; outlives the link while handlers are pending.
struct link_state {
    asio::io_context& io;
    run_secret secret;
    std::uint32_t me;
    peer_link::handlers handlers;
    bool closed = false;
    bool corked = false;  // peer_link::cork()
    std::set<std::uint32_t> lost;  // nodes reported lost (at most once each)

    void report_lost(std::uint32_t node, const std::string& why)
    {
        if (closed || !lost.insert(node).second) {
            return;
        }
        if (handlers.on_lost) {
            handlers.on_lost(node, why);
        }
    }
};

/// The length of a link frame at the front of `bytes`, its u32 length prefix included.
/// Throws for a frame above max_link_frame.
std::optional<std::size_t> prefixed_length(std::span<const std::byte> bytes)
{
    if (bytes.size() < 4) {
        return std::nullopt;
    }
    std::uint32_t len = 0;
    std::memcpy(&len, bytes.data(), 4);
    if (len > max_link_frame) {
        throw_error(errc::malformed_message, "frame larger than the limit");
    }
    return 4 + std::size_t{len};
}

/// A connection another agent opened to us: handshake as the acceptor, then frames in.
class incoming : public std::enable_shared_from_this<incoming> {
public:
    incoming(std::shared_ptr<link_state> st, tcp::socket s)
        : st_(std::move(st)), socket_(std::move(s)), timer_(st_->io)
    {
    }

    void start()
    {
        timer_.expires_after(handshake_limit);
        timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
            if (!ec && !self->authenticated_) {
                self->drop("no handshake within 5 s");
            }
        });
        asio::async_read(socket_, asio::buffer(hello_),
                         [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                             self->on_hello(ec);
                         });
    }

private:
    void on_hello(const std::error_code& ec)
    {
        if (ec || st_->closed) {
            return drop(ec ? ec.message() : "link closed");
        }
        std::uint32_t magic = 0;
        std::memcpy(&magic, hello_.data(), 4);
        std::memcpy(&node_, hello_.data() + 4, 4);
        if (magic != link_magic) {
            return drop("not a dragonx transport agent");
        }
        const auto proof =
            prove(st_->secret, auth_role::acceptor, as_u8(std::span(hello_).subspan(8)));
        challenge_ = make_challenge();
        std::memcpy(reply_.data(), proof.data(), proof_size);
        std::memcpy(reply_.data() + proof_size, challenge_.data(), challenge_size);
        asio::async_write(socket_, asio::buffer(reply_),
                          [self = shared_from_this()](const std::error_code& e, std::size_t) {
                              if (e) {
                                  return self->drop(e.message());
                              }
                              self->read_proof();
                          });
    }

    void read_proof()
    {
        asio::async_read(socket_, asio::buffer(proof_),
                         [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                             if (ec || self->st_->closed) {
                                 return self->drop(ec ? ec.message() : "link closed");
                             }
                             if (!verify(self->st_->secret, auth_role::connector,
                                         self->challenge_, as_u8(self->proof_))) {
                                 return self->drop("wrong run secret");
                             }
                             self->authenticated_ = true;
                             self->timer_.cancel();
                             self->read_frames();
                         });
    }

    void read_frames()
    {
        socket_.async_read_some(
            reader_.space(), [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
                if (self->st_->closed) {
                    return;
                }
                if (ec) {
                    return self->drop(ec == asio::error::eof ? "connection closed"
                                                             : ec.message());
                }
                try {
                    self->reader_.feed(n, prefixed_length, [&](std::span<const std::byte> f) {
                        if (!self->st_->closed && self->st_->handlers.on_frame) {
                            self->st_->handlers.on_frame(self->node_, f.subspan(4));
                        }
                    });
                } catch (const std::exception& e) {
                    return self->drop(e.what());
                }
                self->read_frames();
            });
    }

    void drop(const std::string& why)
    {
        std::error_code ignored;
        socket_.close(ignored);
        timer_.cancel();
        if (st_->closed) {
            return;
        }
        if (authenticated_) {
            st_->report_lost(node_, "its agent's connection to us closed (" + why + ")");
        } else {
            logger().warn("transport: dropped a connection that failed the handshake: {}", why);
        }
    }

    std::shared_ptr<link_state> st_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    std::array<std::byte, hello_size> hello_{};
    std::array<std::byte, hello_reply_size> reply_{};
    std::array<std::byte, proof_size> proof_{};
    std::vector<std::uint8_t> challenge_;
    std::uint32_t node_ = 0;
    bool authenticated_ = false;
    frame_buffer reader_{read_chunk};
};

/// Our connection to one peer: connect, handshake as the connector, then frames out in order.
class outgoing : public std::enable_shared_from_this<outgoing> {
public:
    outgoing(std::shared_ptr<link_state> st, std::uint32_t node)
        : st_(std::move(st)), node_(node), socket_(st_->io), timer_(st_->io)
    {
    }

    void start(const std::string& address)
    {
        const auto colon = address.rfind(':');
        std::error_code ec;
        const auto ip = asio::ip::make_address(address.substr(0, colon), ec);
        if (colon == std::string::npos || ec) {
            return fail("bad agent address '" + address + "'");
        }
        const tcp::endpoint where(ip, static_cast<std::uint16_t>(
                                          std::stoul(address.substr(colon + 1))));
        timer_.expires_after(handshake_limit);
        timer_.async_wait([self = shared_from_this()](const std::error_code& e) {
            if (!e && !self->ready_) {
                self->fail("no answer within 5 s");
            }
        });
        socket_.async_connect(where, [self = shared_from_this()](const std::error_code& e) {
            self->on_connected(e);
        });
    }

    /// Queues a frame; it is written now unless the link is corked (then at write_more()).
    void push(std::vector<std::byte> frame)
    {
        if (dead_) {
            return;
        }
        queue_.push_back(std::move(frame));
        if (!st_->corked) {
            write_more();
        }
    }

    [[nodiscard]] bool dead() const noexcept { return dead_; }

    /// Writes what queued while the link was corked.
    void flush() { write_more(); }

    void close()
    {
        dead_ = true;
        std::error_code ignored;
        socket_.close(ignored);
        timer_.cancel();
    }

private:
    void on_connected(const std::error_code& ec)
    {
        if (ec || st_->closed) {
            return fail(ec ? "cannot connect: " + ec.message() : "link closed");
        }
        socket_.set_option(tcp::no_delay(true));
        challenge_ = make_challenge();
        std::memcpy(hello_.data(), &link_magic, 4);
        std::memcpy(hello_.data() + 4, &st_->me, 4);
        std::memcpy(hello_.data() + 8, challenge_.data(), challenge_size);
        asio::async_write(socket_, asio::buffer(hello_),
                          [self = shared_from_this()](const std::error_code& e, std::size_t) {
                              if (e) {
                                  return self->fail(e.message());
                              }
                              self->read_reply();
                          });
    }

    void read_reply()
    {
        asio::async_read(socket_, asio::buffer(reply_),
                         [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                             self->on_reply(ec);
                         });
    }

    void on_reply(const std::error_code& ec)
    {
        if (ec || st_->closed) {
            return fail(ec ? ec.message() : "link closed");
        }
        const auto bytes = std::span<const std::byte>(reply_);
        if (!verify(st_->secret, auth_role::acceptor, challenge_,
                    as_u8(bytes.first(proof_size)))) {
            return fail("it does not know the run secret");
        }
        const auto proof = prove(st_->secret, auth_role::connector,
                                 as_u8(bytes.subspan(proof_size, challenge_size)));
        std::vector<std::byte> first(proof_size);
        std::memcpy(first.data(), proof.data(), proof_size);
        queue_.push_front(std::move(first));
        ready_ = true;
        timer_.cancel();
        watch_for_close();
        write_more();
    }

    // The peer never writes on this connection: a completed read means it closed.
    void watch_for_close()
    {
        socket_.async_read_some(asio::buffer(sink_),
                                [self = shared_from_this()](const std::error_code& ec,
                                                            std::size_t) {
                                    if (!self->dead_) {
                                        self->fail(ec == asio::error::eof
                                                       ? "its agent closed the connection"
                                                   : ec ? ec.message()
                                                        : "unexpected bytes from the peer");
                                    }
                                });
    }

    void write_more()
    {
        if (!ready_ || writing_ || queue_.empty() || dead_ || st_->corked) {
            return;
        }
        writing_ = true;
        in_flight_.clear();
        std::size_t n = 0;
        for (std::size_t bytes = 0; n < queue_.size() && n < 64 && bytes < (4u << 20); ++n) {
            in_flight_.push_back(asio::buffer(queue_[n]));
            bytes += queue_[n].size();
        }
        asio::async_write(socket_, in_flight_,
                          [self = shared_from_this(), n](const std::error_code& ec, std::size_t) {
                              self->writing_ = false;
                              if (ec) {
                                  return self->fail(ec.message());
                              }
                              self->queue_.erase(self->queue_.begin(),
                                                 self->queue_.begin() +
                                                     static_cast<std::ptrdiff_t>(n));
                              self->write_more();
                          });
    }

    void fail(const std::string& why)
    {
        if (dead_) {
            return;
        }
        close();
        queue_.clear();
        st_->report_lost(node_, why);
    }

    std::shared_ptr<link_state> st_;
    std::uint32_t node_;
    tcp::socket socket_;
    asio::steady_timer timer_;
    std::array<std::byte, hello_size> hello_{};
    std::array<std::byte, hello_reply_size> reply_{};
    std::array<std::byte, 1> sink_{};
    std::vector<std::uint8_t> challenge_;
    std::deque<std::vector<std::byte>> queue_;
    std::vector<asio::const_buffer> in_flight_;
    bool ready_ = false;
    bool writing_ = false;
    bool dead_ = false;
};

class tcp_link final : public peer_link {
public:
    tcp_link(asio::io_context& io, const run_secret& secret, std::uint32_t me,
             const std::string& listen_address, const std::string& advertised_host)
        : st_(std::make_shared<link_state>(link_state{io, secret, me, {}})), acceptor_(io)
    {
        const tcp::endpoint here(asio::ip::make_address(listen_address), 0);
        acceptor_.open(here.protocol());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(here);
        acceptor_.listen();
        address_ = fmt::format("{}:{}", advertised_host, acceptor_.local_endpoint().port());
    }

    ~tcp_link() override { close(); }

    [[nodiscard]] std::string name() const override { return "tcp"; }
    [[nodiscard]] std::string address() const override { return address_; }

    void start(handlers h) override
    {
        st_->handlers = std::move(h);
        accept();
    }

    void set_peers(std::vector<std::string> addresses) override { peers_ = std::move(addresses); }

    void send(std::uint32_t node, std::span<const std::span<const std::byte>> parts) override
    {
        if (st_->closed) {
            return;
        }
        std::size_t total = 0;
        for (const auto& p : parts) {
            total += p.size();
        }
        // Filled by copying the parts in (no zero-filling first: frames reach 64 MiB).
        std::vector<std::byte> frame;
        frame.reserve(4 + total);
        const auto len = static_cast<std::uint32_t>(total);
        const auto len_bytes = std::as_bytes(std::span(&len, 1));
        frame.insert(frame.end(), len_bytes.begin(), len_bytes.end());
        for (const auto& p : parts) {
            frame.insert(frame.end(), p.begin(), p.end());
        }
        if (const auto c = connection_to(node)) {
            c->push(std::move(frame));
        }
    }

    void cork() override { st_->corked = true; }

    void uncork() override
    {
        st_->corked = false;
        for (auto& [node, c] : out_) {
            c->flush();
        }
    }

    void close() override
    {
        if (st_->closed) {
            return;
        }
        st_->closed = true;
        std::error_code ignored;
        acceptor_.close(ignored);
        for (auto& [node, c] : out_) {
            c->close();
        }
        out_.clear();
    }

private:
    // The connection to `node`, opened if there is none (or the last one failed); nullptr,
    // with the node reported lost, when no address is known for it.
    std::shared_ptr<outgoing> connection_to(std::uint32_t node)
    {
        if (node >= peers_.size() || peers_[node].empty()) {
            st_->report_lost(node, "no address is known for it");
            return nullptr;
        }
        auto& c = out_[node];
        if (!c || c->dead()) {
            c = std::make_shared<outgoing>(st_, node);
            c->start(peers_[node]);
        }
        return c;
    }

    void accept()
    {
        acceptor_.async_accept([this, st = st_](const std::error_code& ec, tcp::socket s) {
            if (st->closed) {
                return;
            }
            if (!ec) {
                s.set_option(tcp::no_delay(true));
                std::make_shared<incoming>(st, std::move(s))->start();
            }
            accept();
        });
    }

    std::shared_ptr<link_state> st_;
    tcp::acceptor acceptor_;
    std::string address_;
    std::vector<std::string> peers_;
    std::map<std::uint32_t, std::shared_ptr<outgoing>> out_;
};

}  // namespace

std::unique_ptr<peer_link> make_tcp_link(asio::io_context& io, const run_secret& secret,
                                         std::uint32_t my_node, const std::string& listen_address,
                                         const std::string& advertised_host)
{
    return std::make_unique<tcp_link>(io, secret, my_node, listen_address, advertised_host);
}

}  // namespace dragonx::rt::detail
