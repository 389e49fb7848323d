// pmi1_server.cpp - the TCP side of a PMI-1 job: accepting ranks, reading lines, writing
// replies.
#include "pmi1_server.hpp"

#include <array>
#include <deque>
#include <istream>
#include <map>

#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/log.hpp>

namespace dragonx::rt::detail {

using asio::ip::tcp;

namespace {

struct client {
    explicit client(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    asio::streambuf in{pmi1_max_line + 1};  // a line and its '\n' fit; more is an error
    std::deque<std::string> out;
    std::array<char, 4096> scratch{};  // what a closing client still sends goes here
    bool reading = false;
    bool writing = false;
    bool closing = false;  // the job is done with it: close once `out` is written
};

}  // namespace

struct pmi1_server::state : std::enable_shared_from_this<state> {
    state(asio::io_context& io, const std::string& address) : acceptor(io), host(address)
    {
        const tcp::endpoint here(asio::ip::make_address(address), 0);
        acceptor.open(here.protocol());
        acceptor.bind(here);
        acceptor.listen();
    }

    tcp::acceptor acceptor;
    std::string host;
    std::unique_ptr<pmi1_job> job;
    std::map<std::uint64_t, std::shared_ptr<client>> clients;
    std::uint64_t next_client = 1;
    std::size_t max_clients = 16;
    bool closed = false;

    void accept()
    {
        acceptor.async_accept([self = shared_from_this()](const std::error_code& ec,
                                                          tcp::socket socket) {
            if (self->closed) {
                return;
            }
            if (ec) {
                log::get("runtime").warn("PMI-1 job {}: accept failed: {}", self->job->kvsname(),
                                         ec.message());
            } else if (self->clients.size() >= self->max_clients) {
                log::get("runtime").warn("PMI-1 job {}: too many connections, one refused",
                                         self->job->kvsname());
            } else {
                std::error_code ignored;
                socket.set_option(tcp::no_delay(true), ignored);
                const auto id = self->next_client++;
                auto c = std::make_shared<client>(std::move(socket));
                self->clients.emplace(id, c);
                self->read(id, c);
            }
            self->accept();
        });
    }

    void read(std::uint64_t id, const std::shared_ptr<client>& c)
    {
        c->reading = true;
        asio::async_read_until(
            c->socket, c->in, '\n',
            [self = shared_from_this(), id, c](const std::error_code& ec, std::size_t n) {
                c->reading = false;
                if (self->closed) {
                    return;
                }
                if (c->closing) {
                    if (self->clients.contains(id)) {
                        self->discard(id, c);  // the job closed it while this read waited
                    }
                    return;
                }
                if (ec == asio::error::not_found) {
                    // No '\n' in pmi1_max_line + 1 bytes: the job refuses the line as too long.
                    self->job->line(id, std::string(c->in.size(), 'x'));
                    return;
                }
                if (ec) {
                    self->forget(id);
                    self->job->disconnected(id);
                    return;
                }
                std::string text(n - 1, '\0');
                std::istream(&c->in).read(text.data(), static_cast<std::streamsize>(n - 1));
                c->in.consume(1);  // the '\n'
                self->job->line(id, text);
                if (!self->closed && !c->closing) {
                    self->read(id, c);
                }
            });
    }

    void send(std::uint64_t id, std::string text)
    {
        const auto it = clients.find(id);
        if (it == clients.end() || it->second->closing) {
            return;
        }
        it->second->out.push_back(std::move(text));
        write(id, it->second);
    }

    void close(std::uint64_t id)
    {
        const auto it = clients.find(id);
        if (it == clients.end() || it->second->closing) {
            return;
        }
        it->second->closing = true;
        write(id, it->second);
    }

    void write(std::uint64_t id, const std::shared_ptr<client>& c)
    {
        if (c->writing) {
            return;
        }
        if (c->out.empty()) {
            if (c->closing) {
                finish(id, c);
            }
            return;
        }
        c->writing = true;
        asio::async_write(c->socket, asio::buffer(c->out.front()),
                          [self = shared_from_this(), id, c](const std::error_code& ec,
                                                             std::size_t) {
                              c->writing = false;
                              if (self->closed || !self->clients.contains(id)) {
                                  return;  // closed, or forgotten (its queue is gone)
                              }
                              c->out.pop_front();
                              if (ec) {
                                  const bool known = !c->closing;
                                  self->forget(id);
                                  if (known) {
                                      self->job->disconnected(id);
                                  }
                                  return;
                              }
                              self->write(id, c);
                          });
    }

    // Everything for a closing client is written: end our side, then read and drop what it
    // still sends until it closes too. (Closing a socket with unread input would send a
    // reset, which can destroy the error line on its way to the client.)
    void finish(std::uint64_t id, const std::shared_ptr<client>& c)
    {
        std::error_code ignored;
        c->socket.shutdown(tcp::socket::shutdown_send, ignored);
        if (!c->reading) {
            discard(id, c);
        }
    }

    void discard(std::uint64_t id, const std::shared_ptr<client>& c)
    {
        c->reading = true;
        c->socket.async_read_some(
            asio::buffer(c->scratch),
            [self = shared_from_this(), id, c](const std::error_code& ec, std::size_t) {
                c->reading = false;
                if (self->closed) {
                    return;
                }
                if (ec) {
                    self->forget(id);
                    return;
                }
                self->discard(id, c);
            });
    }

    // Closes `id`'s socket and forgets it.
    void forget(std::uint64_t id)
    {
        const auto it = clients.find(id);
        if (it == clients.end()) {
            return;
        }
        it->second->closing = true;
        std::error_code ignored;
        it->second->socket.close(ignored);
        it->second->out.clear();
        clients.erase(it);
    }
};

pmi1_server::pmi1_server(asio::io_context& io, const std::string& address, std::string kvsname,
                         std::vector<std::uint32_t> node_of_rank, pmi1_job_hooks hooks)
    : state_(std::make_shared<state>(io, address))
{
    state* s = state_.get();  // the job lives in the state: plain pointers are enough
    hooks.send = [s](std::uint64_t id, std::string text) { s->send(id, std::move(text)); };
    hooks.close = [s](std::uint64_t id) { s->close(id); };
    s->max_clients = 4 * node_of_rank.size() + 16;
    s->job = std::make_unique<pmi1_job>(std::move(kvsname), std::move(node_of_rank),
                                        std::move(hooks));
    s->accept();
}

pmi1_server::~pmi1_server()
{
    state_->closed = true;
    std::error_code ignored;
    state_->acceptor.close(ignored);
    for (auto& [id, c] : state_->clients) {
        c->socket.close(ignored);
    }
    state_->clients.clear();
}

std::string pmi1_server::port_string() const
{
    return fmt::format("{}:{}", state_->host, port());
}

std::uint16_t pmi1_server::port() const
{
    std::error_code ignored;
    return state_->acceptor.local_endpoint(ignored).port();
}

void pmi1_server::rank_exited(int rank) { state_->job->rank_exited(rank); }

bool pmi1_server::failed() const { return state_->job->failed(); }

bool pmi1_server::finalized(int rank) const { return state_->job->finalized(rank); }

}  // namespace dragonx::rt::detail
