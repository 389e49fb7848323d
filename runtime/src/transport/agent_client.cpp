// agent_client.cpp - the channels transport of a process in a run: every operation on another
// node's channel becomes a request to this node's transport agent (agent.hpp), and the caller
// waits for its result.
//
// How a request travels (DESIGN.md §4):
// - A session is a Unix socket to the agent plus a response channel the agent made for it.
//   Opening one sends `attach` on the socket; the answer names the agent's gateway channel,
//   its doorbell word and the session's response channel.
// - The request is one message of the gateway channel: in its slot when small, else in a
//   block of the gateway's pool that this process fills itself (no copy through a socket).
//   If the agent sleeps in epoll (the doorbell word), one byte on the socket wakes it.
// - The result comes back as one message of the session's response channel; waiting on it
//   spins, then sleeps on the channel's futex.
//
// Notes:
// - Installed as channels::default_transport() by libdragonx: a channel attached to another
//   node's descriptor in any process of a run just works.
// - One request at a time per session; threads take sessions from a small pool, so a thread
//   blocked in a remote recv does not hold up another's send.
// - The agent enforces the operation's timeout at the owning node and always answers; the
//   process waits that long plus `answer_grace` for the answer, then gives the session up and
//   reports the agent lost. The socket closing (the agent died) is noticed within
//   `liveness_slice`.
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
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
constexpr auto liveness_slice = std::chrono::milliseconds(100);
constexpr std::size_t max_idle_sessions = 8;
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

    struct session {
        unique_fd socket;            // open while the session lives
        std::uint32_t id = 0;
        channels::channel response;  // results; the agent's, destroyed with the session
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

        const auto until =
            limit ? deadline::after(*limit + answer_grace) : deadline::after(forever);
        auto s = take_session();
        h.session = s->id;
        submit(h, channel, payload, until);
        ring_doorbell(*s);
        auto a = wait_answer(*s, until);
        give_back(std::move(s));
        if (a.header.code != static_cast<std::uint32_t>(errc::ok)) {
            throw_error(static_cast<errc>(a.header.code),
                        std::string(reinterpret_cast<const char*>(a.payload.data()),
                                    a.payload.size()));
        }
        return a;
    }

    static void write_frame(std::byte* at, const frame_header& h, std::string_view channel,
                            std::span<const std::byte> payload)
    {
        std::memcpy(at, &h, sizeof h);
        at += sizeof h;
        if (!channel.empty()) {
            std::memcpy(at, channel.data(), channel.size());
            at += channel.size();
        }
        if (!payload.empty()) {
            std::memcpy(at, payload.data(), payload.size());
        }
    }

    // Puts the request into the gateway: copied into its slot when it fits, else written
    // straight into a block of the gateway's pool that travels by descriptor.
    void submit(const frame_header& h, std::string_view channel,
                std::span<const std::byte> payload, const deadline& until)
    {
        const std::size_t total = sizeof h + channel.size() + payload.size();
        try {
            if (total <= gateway_.block_size()) {
                thread_local std::vector<std::byte> staging;
                staging.resize(total);
                write_frame(staging.data(), h, channel, payload);
                gateway_.send(staging, until.remaining());
                return;
            }
            auto block = gateway_.pool().allocate(total, until.remaining());
            write_frame(block.data(), h, channel, payload);
            gateway_.send(block, until.remaining());
        } catch (const dragonx::error& e) {
            if (e.code() == make_error_code(errc::timeout)) {
                agent_lost("its gateway stayed full");
            }
            throw;
        }
    }

    void ring_doorbell(const session& s) const
    {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (agent_asleep_->load(std::memory_order_relaxed) != 0) {
            const char bell = '!';
            (void)::send(s.socket.get(), &bell, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }

    // The session's next result, up to `until`; checks in slices that the agent is alive.
    static answer wait_answer(session& s, const deadline& until)
    {
        std::byte scratch[wire::response_slot];
        for (;;) {
            if (auto m = s.response.try_take(scratch)) {
                return parse_answer(m->bytes());
            }
            auto slice = std::chrono::duration_cast<std::chrono::nanoseconds>(liveness_slice);
            if (const auto left = until.remaining(); left && *left < slice) {
                slice = *left;
            }
            if (s.response.poll(channels::poll_event::readable, slice)) {
                continue;
            }
            if (until.expired()) {
                agent_lost("no answer in time");
            }
            if (closed(s.socket.get())) {
                agent_lost("connection closed");
            }
        }
    }

    static answer parse_answer(std::span<const std::byte> bytes)
    {
        answer a;
        if (bytes.size() < sizeof a.header) {
            agent_lost("malformed answer");
        }
        a.header = wire::read_header(bytes);
        if (a.header.kind != static_cast<std::uint8_t>(wire::frame_kind::result) ||
            wire::body_length(a.header) != a.header.payload_len ||
            bytes.size() - sizeof a.header != a.header.payload_len) {
            agent_lost("malformed answer");
        }
        a.payload.assign(bytes.begin() + sizeof a.header, bytes.end());
        return a;
    }

    // True once the agent's end of the socket is closed (it only ever reads from it).
    static bool closed(int fd)
    {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0) {
            return false;
        }
        char c = 0;
        const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
    }

    std::unique_ptr<session> take_session()
    {
        {
            std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                auto s = std::move(idle_.back());
                idle_.pop_back();
                return s;
            }
        }
        return open_session();
    }

    void give_back(std::unique_ptr<session> s)
    {
        std::lock_guard lock(mutex_);
        if (idle_.size() < max_idle_sessions) {
            idle_.push_back(std::move(s));
        }
    }

    // Connects and attaches the session's response channel; the first session also attaches
    // the gateway and the doorbell word.
    std::unique_ptr<session> open_session()
    {
        auto s = std::make_unique<session>();
        s->socket = connect_unix(path_, errc::no_transport, "this node's transport agent");
        frame_header h;
        h.kind = static_cast<std::uint8_t>(wire::frame_kind::request);
        h.op = static_cast<std::uint8_t>(wire::op::attach);
        h.id = 1;
        write_request(s->socket.get(), h);
        const auto a = read_answer(s->socket.get());
        const std::string_view text(reinterpret_cast<const char*>(a.payload.data()),
                                    a.payload.size());
        if (a.header.code != static_cast<std::uint32_t>(errc::ok)) {
            throw_error(static_cast<errc>(a.header.code), std::string(text));
        }
        const auto first = text.find('\n');
        const auto second = text.find('\n', first == std::string_view::npos ? 0 : first + 1);
        if (second == std::string_view::npos) {
            agent_lost("malformed attach answer");
        }
        s->id = static_cast<std::uint32_t>(a.header.value);
        s->response = channels::channel::attach(text.substr(second + 1));
        // The answer takes tens of microseconds, and the agent may need this CPU to make
        // it: yield between looks from the start rather than spin.
        s->response.set_wait_policy(
            {.spin = std::chrono::nanoseconds(0), .yield = std::chrono::microseconds(500)});
        std::lock_guard lock(mutex_);
        if (!gateway_) {
            gateway_ = channels::channel::attach(text.substr(0, first));
            auto word =
                gateway_.pool().attach_allocation(text.substr(first + 1, second - first - 1));
            agent_asleep_ = reinterpret_cast<std::atomic<std::uint32_t>*>(word.data());
            word.disown();  // the agent's; mapped as long as gateway_ holds its pool
        }
        return s;
    }

    [[noreturn]] static void agent_lost(const std::string& what)
    {
        throw_error(errc::peer_lost, "lost this node's transport agent (" + what + ")");
    }

    static void write_request(int fd, const frame_header& h)
    {
        const auto* p = reinterpret_cast<const char*>(&h);
        std::size_t left = sizeof h;
        while (left > 0) {
            const ssize_t n = ::send(fd, p, left, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                agent_lost(std::strerror(errno));
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }

    // Reads n bytes of the attach answer (the socket's receive timeout bounds each wait).
    static void read_exactly(int fd, void* into, std::size_t n)
    {
        auto* p = static_cast<char*>(into);
        while (n > 0) {
            const ssize_t got = ::recv(fd, p, n, 0);
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                agent_lost("no answer in time");
            }
            if (got <= 0) {
                agent_lost(got == 0 ? "connection closed" : std::strerror(errno));
            }
            p += got;
            n -= static_cast<std::size_t>(got);
        }
    }

    // The attach answer, read from the socket within answer_grace.
    static answer read_answer(int fd)
    {
        const timeval limit{.tv_sec = answer_grace.count(), .tv_usec = 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        answer a;
        read_exactly(fd, &a.header, sizeof a.header);
        if (a.header.kind != static_cast<std::uint8_t>(wire::frame_kind::result) ||
            wire::body_length(a.header) != a.header.payload_len) {
            agent_lost("malformed answer");
        }
        a.payload.resize(a.header.payload_len);
        read_exactly(fd, a.payload.data(), a.payload.size());
        return a;
    }

    pool::pool& landing_pool(std::size_t need)
    {
        std::lock_guard lock(landing_mutex_);
        if (!landing_) {
            landing_ = pool::pool::create({.size = std::max<std::uint64_t>(
                                               landing_pool_size, 2 * std::uint64_t{need})});
            runtime::current().register_shm(landing_.name());
        }
        return landing_;
    }

    std::string path_;
    std::mutex landing_mutex_;
    pool::pool landing_;
    std::mutex mutex_;  // idle_, and gateway_ until it is set
    std::vector<std::unique_ptr<session>> idle_;
    channels::channel gateway_;
    std::atomic<std::uint32_t>* agent_asleep_ = nullptr;
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
