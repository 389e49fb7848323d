// agent.cpp - the transport agent: local processes' requests in, forwarded to the owning
// node's agent, performed there on the channel, results back.
#include "agent.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>
#include <utility>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>
#include <dragonx/pool/pool.hpp>

#include "../run_paths.hpp"
#include "frame_buffer.hpp"
#include "link_factory.hpp"
#include "linger_policy.hpp"
#include "wire.hpp"

namespace dragonx::rt::detail {

namespace {

using unix_socket = asio::local::stream_protocol;
using wire::frame_header;
using wire::frame_view;
using cancel_token = std::shared_ptr<std::atomic<bool>>;

constexpr std::size_t max_cached_channels = 1024;
/// The gateway: requests of local processes, one message each. Small ones travel in the
/// slot; larger ones in a block of the gateway's pool, which the process fills itself.
constexpr std::uint64_t gateway_pool_size = 256u << 20;
constexpr std::uint32_t gateway_capacity = 256;
constexpr std::uint32_t gateway_slot = 512;
/// How long a result for a peer may wait for a request to the same peer (hold_link()): until
/// the agent has been idle for `result_linger`, and never longer than `result_linger_cap`.
/// Idle time, not time since the hold: the agent's own work (a libfabric send and its
/// completions take several microseconds) delays the local process that is about to answer.
constexpr std::chrono::microseconds result_linger{8};
constexpr std::chrono::microseconds result_linger_cap{25};
/// Gateway messages taken per turn of the loop, so sockets get their turn too.
constexpr std::size_t max_gateway_batch = 64;
constexpr std::size_t max_waiter_threads = 256;
/// How often a wait checks whether it was abandoned.
constexpr std::chrono::milliseconds wait_slice{50};

spdlog::logger& logger() { return log::get("transport"); }

/// Maps keyed by descriptor strings, looked up by string_view without building a string:
/// the lookups are on every remote operation's path.
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept
    {
        return std::hash<std::string_view>{}(s);
    }
};
template <class V>
using by_descriptor = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

/// What an operation came to.
struct op_result {
    errc code = errc::ok;
    std::uint64_t value = 0;
    std::vector<std::byte> payload;  // recv: the message; an error: its text

    static op_result error(errc c, const std::string& text)
    {
        op_result r;
        r.code = c;
        r.payload.resize(text.size());
        std::memcpy(r.payload.data(), text.data(), text.size());
        return r;
    }
    static op_result answer(std::uint64_t v)
    {
        op_result r;
        r.value = v;
        return r;
    }
    /// The operation's time ran out: false / nullopt for the caller, as the channel API says.
    static op_result timed_out() { return answer(0); }
};

op_result result_of(const std::exception& e)
{
    if (const auto* d = dynamic_cast<const dragonx::error*>(&e);
        d != nullptr && d->code().category() == dragonx_category()) {
        return op_result::error(static_cast<errc>(d->code().value()), d->what());
    }
    return op_result::error(errc::internal, e.what());
}

/// The header of the result of `request` (its id answered).
frame_header result_header(const frame_header& request, const op_result& r)
{
    frame_header h;
    h.kind = static_cast<std::uint8_t>(wire::frame_kind::result);
    h.op = request.op;
    h.event = request.event;
    h.code = static_cast<std::uint32_t>(r.code);
    h.id = request.id;
    h.value = r.value;
    h.payload_len = r.payload.size();
    return h;
}

/// Threads for operations that must wait: one per waiting operation, kept for reuse.
class blocking_pool {
public:
    ~blocking_pool() { stop(); }

    void submit(std::function<void()> job)
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
        if (idle_ == 0 && threads_.size() < max_waiter_threads) {
            threads_.emplace_back([this] { work(); });
        } else {
            wake_.notify_one();
        }
    }

    /// Joins every thread; jobs must notice the agent stopping by themselves.
    void stop()
    {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) {
            t.join();
        }
        threads_.clear();
    }

private:
    void work()
    {
        std::unique_lock lock(mutex_);
        for (;;) {
            ++idle_;
            wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
            --idle_;
            if (stopping_) {
                return;
            }
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;
    bool stopping_ = false;
};

/// A local process's session. Its Unix socket carries the attach request and its answer,
/// then only doorbell bytes (the agent was asleep: look at the gateway); requests come
/// through the gateway channel, results go back into the process's response channel. The
/// socket closing ends the session: waits performed for it are abandoned.
class client_session : public std::enable_shared_from_this<client_session> {
public:
    using attach_handler =
        std::function<void(const std::shared_ptr<client_session>&, const frame_view&)>;

    client_session(unix_socket::socket s, attach_handler on_attach)
        : socket_(std::move(s)), on_attach_(std::move(on_attach))
    {
    }

    void start() { read_more(); }

    /// From now on results go into `response` (destroyed with the session), and bytes on
    /// the socket are doorbells; `on_end` runs once when the session ends.
    void attached(channels::channel response, std::function<void()> on_end)
    {
        response_ = std::move(response);
        on_end_ = std::move(on_end);
    }

    /// Delivers a result: on the socket before attach (the attach answer), else into the
    /// response channel. A result that cannot be delivered ends the session.
    void send_result(const frame_header& h, std::span<const std::byte> payload)
    {
        if (!open_) {
            return;
        }
        if (!response_) {
            return write_on_socket(h, payload);
        }
        try {
            if (!deliver(h, payload)) {
                logger().warn("transport: a process's response channel is full; session ended");
                finish();
            }
        } catch (const std::exception& e) {
            logger().warn("transport: a result could not be delivered: {}", e.what());
            finish();
        }
    }

    void close()
    {
        open_ = false;
        std::error_code ignored;
        socket_.close(ignored);
    }

    [[nodiscard]] bool open() const noexcept { return open_; }
    /// Set when the session closes: waits performed for it are abandoned.
    [[nodiscard]] const cancel_token& gone() const noexcept { return gone_; }

private:
    // One message of the response channel: [header][payload], in its slot when it fits, else
    // in a block of the gateway's pool. A payload that finds no room there becomes an error
    // result, so the waiting caller hears of it.
    bool deliver(const frame_header& h, std::span<const std::byte> payload)
    {
        const std::size_t total = sizeof h + payload.size();
        if (total <= response_.block_size()) {
            staging_.resize(total);
            std::memcpy(staging_.data(), &h, sizeof h);
            if (!payload.empty()) {
                std::memcpy(staging_.data() + sizeof h, payload.data(), payload.size());
            }
            return response_.try_send(staging_);
        }
        auto block = response_.pool().try_allocate(total);
        if (!block) {
            const auto text = fmt::format(
                "no room in the transport agent's pool for a {}-byte result", payload.size());
            frame_header e = h;
            e.code = static_cast<std::uint32_t>(errc::pool_full);
            e.value = 0;
            e.payload_len = text.size();
            return deliver(e, std::as_bytes(std::span(text.data(), text.size())));
        }
        std::memcpy(block->data(), &h, sizeof h);
        std::memcpy(block->data() + sizeof h, payload.data(), payload.size());
        return response_.try_send(*block);
    }

    void write_on_socket(const frame_header& h, std::span<const std::byte> payload)
    {
        std::vector<std::byte> frame(sizeof h + payload.size());
        std::memcpy(frame.data(), &h, sizeof h);
        if (!payload.empty()) {
            std::memcpy(frame.data() + sizeof h, payload.data(), payload.size());
        }
        queue_.push_back(std::move(frame));
        write_more();
    }

    void read_more()
    {
        socket_.async_read_some(
            buffer_.space(), [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
                if (ec) {
                    return self->finish();
                }
                if (self->response_) {
                    // Doorbells: the agent's loop looks at the gateway after this handler.
                    self->read_more();
                    return;
                }
                try {
                    self->buffer_.feed(n, request_length, [&](std::span<const std::byte> f) {
                        if (!self->response_) {
                            self->on_attach_(self, wire::parse(f));
                        }
                    });
                } catch (const std::exception& e) {
                    logger().warn("transport: a local process sent a bad frame: {}", e.what());
                    return self->finish();
                }
                if (self->open_) {
                    self->read_more();
                }
            });
    }

    // The length of the request frame at the front of `bytes`; throws for anything else.
    static std::optional<std::size_t> request_length(std::span<const std::byte> bytes)
    {
        if (bytes.size() < sizeof(frame_header)) {
            return std::nullopt;
        }
        const auto h = wire::read_header(bytes);
        if (h.kind != static_cast<std::uint8_t>(wire::frame_kind::request)) {
            throw_error(errc::malformed_message, "a result frame from a process");
        }
        return sizeof(frame_header) + wire::body_length(h);
    }

    void write_more()
    {
        if (writing_ || queue_.empty() || !open_) {
            return;
        }
        writing_ = true;
        asio::async_write(socket_, asio::buffer(queue_.front()),
                          [self = shared_from_this()](const std::error_code& ec, std::size_t) {
                              self->writing_ = false;
                              if (ec) {
                                  return self->finish();
                              }
                              self->queue_.pop_front();
                              self->write_more();
                          });
    }

    void finish()
    {
        gone_->store(true);
        close();
        queue_.clear();
        if (auto end = std::exchange(on_end_, nullptr)) {
            end();
        }
    }

    unix_socket::socket socket_;
    attach_handler on_attach_;
    std::function<void()> on_end_;
    frame_buffer buffer_{4096};
    std::deque<std::vector<std::byte>> queue_;
    channels::channel response_;
    std::vector<std::byte> staging_;
    bool writing_ = false;
    bool open_ = true;
    cancel_token gone_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace

struct transport_agent::impl {
    explicit impl(const agent_config& c)
        : config(c), work(asio::make_work_guard(io)), acceptor(io),
          path(agent_socket_path(c.run, c.node).string())
    {
        gateway_pool = pool::pool::create({.size = gateway_pool_size, .run = c.run,
                                           .node = c.node});
        gateway = channels::channel::create(
            gateway_pool, {.capacity = gateway_capacity, .block_size = gateway_slot});
        auto word = gateway_pool.try_allocate(sizeof(std::atomic<std::uint32_t>));
        if (!word) {
            throw_error(errc::pool_full, "no room for the transport agent's doorbell word");
        }
        doorbell_word = std::move(*word);
        asleep = new (doorbell_word.data()) std::atomic<std::uint32_t>(0);
        link = make_link(io, config);
        ::unlink(path.c_str());
        acceptor.open(unix_socket());
        acceptor.bind(unix_socket::endpoint(path));
        acceptor.listen();
    }

    agent_config config;
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work;
    unix_socket::acceptor acceptor;
    std::unique_ptr<peer_link> link;
    std::string path;
    // The gateway channel and the word that says the agent sleeps in epoll (a process that
    // sees it set after sending rings the doorbell: one byte on its session's socket).
    pool::pool gateway_pool;
    channels::channel gateway;
    pool::allocation doorbell_word;
    std::atomic<std::uint32_t>* asleep = nullptr;
    std::array<std::byte, gateway_slot> gateway_scratch{};
    std::thread thread;
    const cancel_token stopping = std::make_shared<std::atomic<bool>>(false);
    blocking_pool waiters;

    // ---- agent thread only -------------------------------------------------------------------
    // A process's request forwarded to another node, under an id of this agent's.
    struct pending_op {
        std::weak_ptr<client_session> client;
        std::uint32_t node;
        frame_header request;  // as the process sent it (its id is the process's)
    };
    std::vector<std::string> names;
    bool have_nodes = false;
    std::map<std::uint32_t, std::string> lost;
    std::unordered_map<std::uint64_t, pending_op> pending;
    /// Attached sessions by id; a session leaves the map when it ends.
    std::unordered_map<std::uint32_t, std::shared_ptr<client_session>> sessions;
    std::uint32_t next_session = 1;
    bool link_held = false;  // hold_link()
    std::uint32_t held_for = 0;  // the node of the first result held
    std::chrono::steady_clock::time_point held_since;
    linger_policy linger;
    std::uint64_t next_id = 1;
    by_descriptor<std::uint32_t> node_of_channel;
    by_descriptor<std::shared_ptr<channels::channel>> local_channels;
    std::map<std::uint32_t, cancel_token> peer_gone;  // waits performed for each peer node

    void start()
    {
        link->start({.on_frame = [this](std::uint32_t node,
                                        std::span<const std::byte> frame) {
                         from_peer(node, frame);
                     },
                     .on_lost = [this](std::uint32_t node,
                                       const std::string& why) { mark_lost(node, why); }});
        accept();
        thread = std::thread([this] { serve(); });
    }

    // The agent's loop: sockets (peers, sessions), the gateway channel and the link's own
    // progress (ofi polls its completion queue). After any work it keeps polling them for
    // `busy_window` (yielding the CPU between polls) before it sleeps in epoll again: a
    // request, its forwarding and its result usually follow each other within microseconds,
    // and waking a sleeping thread costs tens of them on a small machine. Before sleeping it
    // sets *asleep and looks at the gateway once more, and the link arms its wake-up; a
    // process that sent after that sees the word set and rings (store, fence, load on both
    // sides).
    void serve()
    {
        using clock = std::chrono::steady_clock;
        constexpr auto busy_window = std::chrono::microseconds(200);
        auto last_work = clock::now();
        while (!io.stopped()) {
            const bool link_worked = link->poll();
            const bool worked = io.poll() + drain_gateway() > 0 || link_worked;
            const auto now = clock::now();
            if (worked) {
                last_work = now;
            }
            if (link_held &&
                (now - last_work >= result_linger || now - held_since >= result_linger_cap)) {
                linger.ran_out();
                release_link();
            }
            if (worked) {
                continue;
            }
            if (now - last_work < busy_window) {
                std::this_thread::yield();
                continue;
            }
            release_link();  // never sleep on a held result
            asleep->store(1, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_seq_cst);
            if (drain_gateway() == 0 && link->prepare_to_sleep()) {
                io.run_one();
            }
            asleep->store(0, std::memory_order_relaxed);
            last_work = clock::now();
        }
    }

    // Takes up to max_gateway_batch requests from the gateway; how many it took.
    std::size_t drain_gateway()
    {
        std::size_t n = 0;
        for (; n < max_gateway_batch; ++n) {
            std::optional<channels::message> m;
            try {
                m = gateway.try_take(gateway_scratch);
            } catch (const std::exception& e) {
                logger().error("transport: the gateway channel failed: {}", e.what());
                break;
            }
            if (!m) {
                break;
            }
            from_gateway(m->bytes());
        }
        return n;
    }

    void from_gateway(std::span<const std::byte> bytes)
    {
        frame_view f;
        try {
            f = wire::parse(bytes);
            if (f.header.kind != static_cast<std::uint8_t>(wire::frame_kind::request) ||
                f.header.op == static_cast<std::uint8_t>(wire::op::attach)) {
                throw_error(errc::malformed_message, "not an operation request");
            }
        } catch (const std::exception& e) {
            logger().warn("transport: a bad request in the gateway dropped: {}", e.what());
            return;
        }
        const auto it = sessions.find(f.header.session);
        if (it == sessions.end()) {
            // Its process has gone (or never attached): nobody waits for the result.
            logger().debug("transport: a request for no session ({}) dropped", f.header.session);
            return;
        }
        const auto client = it->second;  // a copy: the session may end while it is served
        from_client(client, f);
    }

    void stop()
    {
        stopping->store(true);
        asio::post(io, [this] {
            link->close();
            std::error_code ignored;
            acceptor.close(ignored);
            work.reset();
            io.stop();
        });
        if (thread.joinable()) {
            thread.join();
        }
        waiters.stop();
        ::unlink(path.c_str());
    }

    [[nodiscard]] std::string node_name(std::uint32_t node) const
    {
        if (node < names.size() && !names[node].empty()) {
            return fmt::format("node {} ({})", node, names[node]);
        }
        return fmt::format("node {}", node);
    }

    // ---- local processes ------------------------------------------------------------------

    void accept()
    {
        acceptor.async_accept([this](const std::error_code& ec, unix_socket::socket s) {
            if (ec) {
                return;  // closed: the agent is stopping
            }
            std::make_shared<client_session>(
                std::move(s), [this](const std::shared_ptr<client_session>& c,
                                     const frame_view& f) { attach_session(c, f); })
                ->start();
            accept();
        });
    }

    // A process's first frame. The answer (on the socket) gives the session id and the
    // descriptors of the gateway, the doorbell word and the session's response channel,
    // which the agent owns (in the gateway's pool) and destroys with the session.
    void attach_session(const std::shared_ptr<client_session>& client, const frame_view& f)
    {
        if (f.header.op != static_cast<std::uint8_t>(wire::op::attach)) {
            logger().warn("transport: a process sent an operation before attaching");
            return client->close();
        }
        channels::channel response;
        try {
            response = channels::channel::create(
                gateway_pool, {.capacity = 4, .block_size = wire::response_slot});
        } catch (const std::exception& e) {
            const auto r = result_of(e);
            return client->send_result(result_header(f.header, r), r.payload);
        }
        const std::uint32_t id = next_session++;
        sessions.emplace(id, client);
        const auto text = gateway.descriptor() + "\n" + doorbell_word.descriptor() + "\n" +
                          response.descriptor();
        auto r = op_result::answer(id);
        r.payload.resize(text.size());
        std::memcpy(r.payload.data(), text.data(), text.size());
        client->send_result(result_header(f.header, r), r.payload);
        client->attached(std::move(response), [this, id] { sessions.erase(id); });
    }

    void from_client(const std::shared_ptr<client_session>& client, const frame_view& f)
    {
        const auto reply = [client, request = f.header](const op_result& r) {
            client->send_result(result_header(request, r), r.payload);
        };
        std::uint32_t node = 0;
        try {
            node = node_of(f.channel);
        } catch (const std::exception& e) {
            return reply(result_of(e));
        }
        if (node == config.node) {
            return perform(f, client->gone(), reply);
        }
        if (const auto it = lost.find(node); it != lost.end()) {
            return reply(op_result::error(errc::peer_lost,
                                          node_name(node) + " was lost: " + it->second));
        }
        if (!have_nodes || node >= names.size()) {
            return reply(op_result::error(
                errc::no_transport, fmt::format("the channel is on node {}, which this run {}",
                                                node, have_nodes ? "does not have"
                                                                 : "has not yet announced")));
        }
        const std::uint64_t id = next_id++;
        pending.emplace(id, pending_op{client, node, f.header});
        frame_header h = f.header;
        h.id = id;
        const std::span<const std::byte> parts[] = {
            wire::header_bytes(h), std::as_bytes(std::span(f.channel.data(), f.channel.size())),
            f.payload};
        link->send(node, parts);
        if (link_held && node == held_for) {
            linger.paid_off();
        }
        release_link();
    }

    // A result for a peer lingers (corked) until the agent has been idle for `result_linger`,
    // when `linger` says it pays: the process that just got a message often answers at once
    // (an RPC, a DDict request), and its request then leaves with the result in one write
    // (tcp) or one message (ofi). A request flushes at once.
    void hold_link(std::uint32_t node)
    {
        if (!link_held && linger.should_hold()) {
            link->cork();
            link_held = true;
            held_for = node;
            held_since = std::chrono::steady_clock::now();
        }
    }

    void release_link()
    {
        if (link_held) {
            link_held = false;
            link->uncork();
        }
    }

    /// The node a channel descriptor names (cached; throws for a malformed descriptor).
    std::uint32_t node_of(std::string_view descriptor)
    {
        if (const auto it = node_of_channel.find(descriptor); it != node_of_channel.end()) {
            return it->second;
        }
        const auto node = channels::channel::attach(descriptor).node();
        if (node_of_channel.size() >= 4 * max_cached_channels) {
            node_of_channel.clear();
        }
        node_of_channel.emplace(descriptor, node);
        return node;
    }

    // ---- peers ------------------------------------------------------------------------------

    void from_peer(std::uint32_t node, std::span<const std::byte> frame)
    {
        frame_view f;
        try {
            f = wire::parse(frame);
        } catch (const std::exception& e) {
            logger().warn("transport: bad frame from {} dropped: {}", node_name(node), e.what());
            return;
        }
        if (f.header.kind == static_cast<std::uint8_t>(wire::frame_kind::result)) {
            return result_from_peer(node, f);
        }
        auto& gone = peer_gone[node];
        if (!gone) {
            gone = std::make_shared<std::atomic<bool>>(false);
        }
        perform(f, gone, [this, node, request = f.header](const op_result& r) {
            const auto h = result_header(request, r);
            const std::span<const std::byte> parts[] = {wire::header_bytes(h), r.payload};
            if (!lost.contains(node)) {
                hold_link(node);
                link->send(node, parts);
            }
        });
    }

    void result_from_peer(std::uint32_t node, const frame_view& f)
    {
        const auto it = pending.find(f.header.id);
        if (it == pending.end() || it->second.node != node) {
            logger().warn("transport: a result from {} for no request of ours", node_name(node));
            return;
        }
        const auto op = std::move(it->second);
        pending.erase(it);
        if (auto client = op.client.lock()) {
            frame_header h = f.header;
            h.id = op.request.id;
            client->send_result(h, f.payload);
        }
    }

    void mark_lost(std::uint32_t node, const std::string& why)
    {
        if (node == config.node || !lost.emplace(node, why).second) {
            return;
        }
        // Peers go away at the end of every run: that matters only to operations under way,
        // so it is a warning only when there are some (the control plane reports a daemon
        // lost during a run in any case).
        if (const auto it = peer_gone.find(node); it != peer_gone.end()) {
            it->second->store(true);
        }
        const auto text = node_name(node) + " was lost: " + why;
        std::size_t failed = 0;
        for (auto it = pending.begin(); it != pending.end();) {
            if (it->second.node != node) {
                ++it;
                continue;
            }
            ++failed;
            if (auto client = it->second.client.lock()) {
                const auto r = op_result::error(errc::peer_lost, text);
                client->send_result(result_header(it->second.request, r),
                                    r.payload);
            }
            it = pending.erase(it);
        }
        logger().log(failed > 0 ? spdlog::level::warn : spdlog::level::debug,
                     "transport: {} lost ({} operations failed): {}", node_name(node), failed,
                     why);
    }

    // ---- performing operations on this node's channels -----------------------------------------

    using done_fn = std::function<void(const op_result&)>;

    std::shared_ptr<channels::channel> local_channel(std::string_view descriptor)
    {
        if (const auto it = local_channels.find(descriptor); it != local_channels.end()) {
            return it->second;
        }
        auto ch = std::make_shared<channels::channel>(channels::channel::attach(descriptor));
        if (!ch->is_local()) {
            throw_error(errc::not_local, fmt::format("the channel is on node {}, not on {}",
                                                     ch->node(), node_name(config.node)));
        }
        if (local_channels.size() >= max_cached_channels) {
            local_channels.clear();
        }
        local_channels.emplace(descriptor, ch);
        return ch;
    }

    /// One attempt, never waiting: the result, or nullopt if the operation must wait.
    static std::optional<op_result> attempt(channels::channel& ch, const frame_header& h,
                                            std::span<const std::byte> payload)
    {
        switch (static_cast<wire::op>(h.op)) {
        case wire::op::send:
            if (ch.try_send(payload)) {
                return op_result::answer(1);
            }
            return std::nullopt;
        case wire::op::recv: {
            std::byte scratch[256];
            auto m = ch.try_take(scratch, h.value);
            if (!m) {
                return std::nullopt;
            }
            op_result r;
            r.value = 1;
            r.payload.assign(m->bytes().begin(), m->bytes().end());
            return r;
        }
        case wire::op::poll:
            if (ch.poll(static_cast<channels::poll_event>(h.event), std::chrono::nanoseconds(0))) {
                return op_result::answer(1);
            }
            return std::nullopt;
        case wire::op::size: return op_result::answer(ch.size());
        case wire::op::attach: break;  // only from a process to its own agent
        }
        throw_error(errc::malformed_message, "unknown operation");
    }

    void perform(const frame_view& f, const cancel_token& abandoned, const done_fn& done)
    {
        std::shared_ptr<channels::channel> ch;
        timeout limit;
        try {
            if (f.header.op == static_cast<std::uint8_t>(wire::op::poll) &&
                f.header.event > static_cast<std::uint8_t>(channels::poll_event::empty)) {
                throw_error(errc::malformed_message, "unknown poll event");
            }
            limit = wire::to_timeout(f.header.timeout_ns);
            ch = local_channel(f.channel);
            if (auto r = attempt(*ch, f.header, f.payload)) {
                return done(*r);
            }
        } catch (const std::exception& e) {
            return done(result_of(e));
        }
        if (limit && limit->count() == 0) {
            return done(op_result::timed_out());
        }
        wait_and_perform(std::move(ch), f.header,
                         std::vector<std::byte>(f.payload.begin(), f.payload.end()),
                         deadline::after(limit), abandoned, done);
    }

    // On a waiter thread: polls the channel in slices until the operation succeeds, its
    // deadline passes, or it is abandoned; the result goes back to the agent's thread.
    void wait_and_perform(std::shared_ptr<channels::channel> ch, frame_header h,
                          std::vector<std::byte> payload, deadline until,
                          cancel_token abandoned, done_fn done)
    {
        waiters.submit([this, ch = std::move(ch), h, payload = std::move(payload), until,
                        abandoned = std::move(abandoned), done = std::move(done)] {
            const auto event = h.op == static_cast<std::uint8_t>(wire::op::send)
                                   ? channels::poll_event::writable
                               : h.op == static_cast<std::uint8_t>(wire::op::poll)
                                   ? static_cast<channels::poll_event>(h.event)
                                   : channels::poll_event::readable;
            std::optional<op_result> r;
            try {
                while (!r && !stopping->load() && !abandoned->load()) {
                    if ((r = attempt(*ch, h, payload))) {
                        break;
                    }
                    if (until.expired()) {
                        r = op_result::timed_out();
                        break;
                    }
                    auto slice = until.remaining().value_or(wait_slice);
                    if (slice > wait_slice) {
                        slice = wait_slice;
                    }
                    if (ch->poll(event, slice) && event == channels::poll_event::writable) {
                        // Room in the ring, yet the send failed: its pool is full. Back off.
                        std::this_thread::sleep_for(std::chrono::milliseconds(1));
                    }
                }
            } catch (const std::exception& e) {
                r = result_of(e);
            }
            if (r) {
                asio::post(io, [done, r = std::move(*r)] { done(r); });
            }
        });
    }
};

transport_agent::transport_agent(const agent_config& config)
    : impl_(std::make_unique<impl>(config))
{
    impl_->start();
}

transport_agent::~transport_agent() { impl_->stop(); }

std::string transport_agent::address() const { return impl_->link->address(); }
std::string transport_agent::link_name() const { return impl_->link->name(); }
std::string transport_agent::socket_path() const { return impl_->path; }

void transport_agent::set_nodes(std::vector<std::string> addresses,
                                std::vector<std::string> names)
{
    asio::post(impl_->io, [this, addresses = std::move(addresses),
                           names = std::move(names)]() mutable {
        impl_->names = std::move(names);
        impl_->link->set_peers(std::move(addresses));
        impl_->have_nodes = true;
    });
}

void transport_agent::node_lost(std::uint32_t node, const std::string& why)
{
    asio::post(impl_->io, [this, node, why] { impl_->mark_lost(node, why); });
}

}  // namespace dragonx::rt::detail
