// agent_client.cpp - the channels transport of a process in a run: every operation on another
// node's channel becomes a request to this node's transport agent (agent.hpp), on a Unix
// socket, and the caller waits for its result.
//
// Notes:
// - Installed as channels::default_transport() by libdragonx: a channel attached to another
//   node's descriptor in any process of a run just works.
// - One request at a time per connection; threads take connections from a small pool, so a
//   thread blocked in a remote recv does not hold up another's send.
// - The agent enforces the operation's timeout at the owning node and always answers; the
//   process waits that long plus `answer_grace` for the answer, then gives the connection up
//   and reports the agent lost.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <dragonx/channels/channel.hpp>
#include <dragonx/channels/transport.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/unique_fd.hpp>
#include <dragonx/pool/pool.hpp>
#include <dragonx/runtime/runtime.hpp>

#include "../unix_client.hpp"
#include "wire.hpp"

namespace dragonx::rt::detail {

namespace {

using wire::frame_header;

constexpr auto answer_grace = std::chrono::seconds(30);
constexpr std::size_t max_idle_connections = 8;

/// A landing pool for recv_block(): messages from other nodes copied into this node's memory.
constexpr std::uint64_t landing_pool_size = 128u << 20;

class agent_client final : public channels::transport {
public:
    explicit agent_client(std::string path) : path_(std::move(path)) {}

    bool send(std::string_view channel, std::span<const std::byte> bytes,
              timeout limit) override
    {
        return call(wire::op::send, channel, limit, bytes, 0, 0).header.value == 1;
    }

    std::optional<std::vector<std::byte>> recv(std::string_view channel, timeout limit,
                                               std::size_t max_bytes) override
    {
        auto r = call(wire::op::recv, channel, limit, {}, max_bytes, 0);
        if (r.header.value != 1) {
            return std::nullopt;
        }
        return std::move(r.payload);
    }

    std::optional<pool::allocation> recv_block(std::string_view channel, timeout limit) override
    {
        const auto until = deadline::after(limit);
        auto bytes = recv(channel, limit, std::numeric_limits<std::size_t>::max());
        if (!bytes) {
            return std::nullopt;
        }
        auto block = landing_pool(bytes->size()).allocate(bytes->size(), until.remaining());
        if (!bytes->empty()) {
            std::memcpy(block.data(), bytes->data(), bytes->size());
        }
        return block;
    }

    bool poll(std::string_view channel, channels::poll_event event, timeout limit) override
    {
        return call(wire::op::poll, channel, limit, {}, 0, static_cast<std::uint8_t>(event))
                   .header.value == 1;
    }

    std::uint64_t size(std::string_view channel) override
    {
        return call(wire::op::size, channel, std::chrono::nanoseconds(0), {}, 0, 0).header.value;
    }

private:
    struct answer {
        frame_header header;
        std::vector<std::byte> payload;
    };

    answer call(wire::op op, std::string_view channel, timeout limit,
                std::span<const std::byte> payload, std::uint64_t value, std::uint8_t event)
    {
        if (limit && limit->count() < 0) {
            throw_error(errc::invalid_argument, "negative timeout");
        }
        frame_header h;
        h.kind = static_cast<std::uint8_t>(wire::frame_kind::request);
        h.op = static_cast<std::uint8_t>(op);
        h.event = event;
        h.id = 1;
        h.timeout_ns = wire::from_timeout(limit);
        h.value = value;
        h.channel_len = static_cast<std::uint32_t>(channel.size());
        h.payload_len = payload.size();
        (void)wire::body_length(h);  // checks the limits before anything is sent

        unique_fd fd = take_connection();
        write_request(fd.get(), h, channel, payload);
        auto a = read_answer(fd.get(), limit);
        give_back(std::move(fd));
        if (a.header.code != static_cast<std::uint32_t>(errc::ok)) {
            throw_error(static_cast<errc>(a.header.code),
                        std::string(reinterpret_cast<const char*>(a.payload.data()),
                                    a.payload.size()));
        }
        return a;
    }

    unique_fd take_connection()
    {
        {
            std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                unique_fd fd = std::move(idle_.back());
                idle_.pop_back();
                return fd;
            }
        }
        return connect_unix(path_, errc::no_transport, "this node's transport agent");
    }

    void give_back(unique_fd fd)
    {
        std::lock_guard lock(mutex_);
        if (idle_.size() < max_idle_connections) {
            idle_.push_back(std::move(fd));
        }
    }

    [[noreturn]] static void agent_lost(const std::string& what)
    {
        throw_error(errc::peer_lost, "lost this node's transport agent (" + what + ")");
    }

    static void write_request(int fd, const frame_header& h, std::string_view channel,
                              std::span<const std::byte> payload)
    {
        iovec parts[3] = {
            {const_cast<frame_header*>(&h), sizeof h},
            {const_cast<char*>(channel.data()), channel.size()},
            {const_cast<std::byte*>(payload.data()), payload.size()},
        };
        iovec* next = parts;
        int left = 3;
        while (left > 0) {
            const ssize_t n = ::writev(fd, next, left);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                agent_lost(std::strerror(errno));
            }
            auto done = static_cast<std::size_t>(n);
            while (left > 0 && done >= next->iov_len) {
                done -= next->iov_len;
                ++next;
                --left;
            }
            if (left > 0) {
                next->iov_base = static_cast<char*>(next->iov_base) + done;
                next->iov_len -= done;
            }
        }
    }

    // Waits for readable data up to the operation's deadline plus the grace; false if none.
    static bool wait_readable(int fd, const deadline& until)
    {
        for (;;) {
            int ms = -1;
            if (const auto left = until.remaining()) {
                ms = static_cast<int>(
                    std::chrono::ceil<std::chrono::milliseconds>(*left).count());
            }
            pollfd p{fd, POLLIN, 0};
            const int r = ::poll(&p, 1, ms);
            if (r > 0) {
                return true;
            }
            if (r == 0) {
                return false;
            }
            if (errno != EINTR) {
                agent_lost(std::strerror(errno));
            }
        }
    }

    // Reads n bytes. Polls without sleeping for a few microseconds first (yielding the CPU):
    // the answer to a quick operation is usually that close, and a wake-up costs more.
    static void read_exactly(int fd, void* into, std::size_t n, const deadline& until)
    {
        constexpr int busy_polls = 64;
        auto* p = static_cast<char*>(into);
        int polls = 0;
        while (n > 0) {
            ssize_t got = ::recv(fd, p, n, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (++polls < busy_polls) {
                    sched_yield();
                    continue;
                }
                if (!wait_readable(fd, until)) {
                    agent_lost("no answer in time");
                }
                continue;
            }
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got <= 0) {
                agent_lost(got == 0 ? "connection closed" : std::strerror(errno));
            }
            p += got;
            n -= static_cast<std::size_t>(got);
        }
    }

    static answer read_answer(int fd, const timeout& limit)
    {
        const auto until =
            limit ? deadline::after(*limit + answer_grace) : deadline::after(forever);
        answer a;
        read_exactly(fd, &a.header, sizeof a.header, until);
        if (a.header.kind != static_cast<std::uint8_t>(wire::frame_kind::result) ||
            wire::body_length(a.header) != a.header.payload_len) {
            agent_lost("malformed answer");
        }
        a.payload.resize(a.header.payload_len);
        read_exactly(fd, a.payload.data(), a.payload.size(), until);
        return a;
    }

    pool::pool& landing_pool(std::size_t need)
    {
        std::lock_guard lock(mutex_);
        if (!landing_) {
            landing_ = pool::pool::create({.size = std::max<std::uint64_t>(
                                               landing_pool_size, 2 * std::uint64_t{need})});
            runtime::current().register_shm(landing_.name());
        }
        return landing_;
    }

    std::string path_;
    std::mutex mutex_;
    std::vector<unique_fd> idle_;
    pool::pool landing_;
};

channels::transport* provide_agent_client() noexcept
{
    static agent_client* const client = [] () -> agent_client* {
        const char* path = std::getenv("DRAGONX_AGENT");
        if (path == nullptr || *path == '\0') {
            return nullptr;
        }
        return new agent_client(path);  // lives until exit: channels may use it to the end
    }();
    return client;
}

// libdragonx installs the agent client in every process that loads it.
const bool installed = [] {
    channels::set_default_transport_provider(&provide_agent_client);
    return true;
}();

}  // namespace

}  // namespace dragonx::rt::detail
