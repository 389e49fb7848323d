// client.cpp - see client.hpp. The session (one per attach or create) owns the connection:
// this client's pool and reply channel, the manager channels attached so far, the tag
// counter, and the batch in progress.
#include <dragonx/ddict/client.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/encoding.hpp>
#include <dragonx/pool/pool.hpp>
#include <dragonx/runtime/process.hpp>
#include <dragonx/runtime/runtime.hpp>

#include "protocol.hpp"

namespace dragonx::dict {

namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// The client's pool holds its reply channel and the large replies (values up to 64 MiB go in
// one block; buddy blocks round up to a power of two). Sparse: memory is used as it arrives.
constexpr std::uint64_t client_pool_bytes = std::uint64_t{320} << 20;
constexpr std::uint32_t reply_capacity = 256;
constexpr std::uint32_t reply_block = 4096;
// A batch sends a manager's records once they reach this many bytes.
constexpr std::size_t batch_flush_bytes = 64 << 10;
// How long a wait goes before checking that the peer it waits for is still alive.
constexpr auto liveness_interval = 500ms;
// Bring-up of a dictionary: the orchestrator starts every manager.
constexpr auto create_timeout = 120s;
// Waiting for a reply: a short spin (a manager on another vCPU answers in about a
// microsecond), then yields, which hand the vCPU to a manager that shares it at once instead
// of spinning through its turn.
constexpr wait_policy reply_wait{.spin = 2us, .yield = 200us};

std::uint64_t timeout_field(const deadline& until)
{
    const auto left = until.remaining();
    if (!left) {
        return no_timeout;
    }
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(*left).count());
}

std::string random_name()
{
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device rd;
    std::string s(10, 'a');
    for (auto& c : s) {
        c = alphabet[rd() % (sizeof alphabet - 1)];
    }
    return s;
}

std::string ddict_program()
{
    if (const char* exe = std::getenv("DRAGONX_DDICT_EXE"); exe != nullptr && *exe != '\0') {
        return exe;
    }
    const char* dir = std::getenv("DRAGONX_BINDIR");
    if (dir == nullptr || *dir == '\0') {
        throw_error(errc::no_runtime,
                    "creating a ddict needs the dragonx-ddict program: DRAGONX_BINDIR is not "
                    "set (run under `dragonx run`, or set DRAGONX_DDICT_EXE)");
    }
    return std::string(dir) + "/dragonx-ddict";
}

[[noreturn]] void throw_status(const parsed_response& r, std::string_view what)
{
    throw_error(static_cast<errc>(r.header.status),
                r.info.empty() ? fmt::format("ddict {} failed", what) : std::string(r.info));
}

}  // namespace

// ---- session --------------------------------------------------------------------------------

class session {
public:
    /// A reply and its parsed form (whose spans point into the message).
    struct received {
        channels::message message;
        parsed_response parsed;
    };

    /// The reply's parsed form; throws its error status.
    static const parsed_response& expect_ok(const received& got, std::string_view what)
    {
        if (got.parsed.header.status != 0) {
            throw_status(got.parsed, what);
        }
        return got.parsed;
    }

    session()
    {
        auto& rt = runtime::current();
        node_ = rt.node();
        pool_ = pool::pool::create({.size = client_pool_bytes});
        rt.register_shm(pool_.name());
        reply_ = channels::channel::create(pool_, {.capacity = reply_capacity,
                                                  .block_size = reply_block});
        reply_.set_wait_policy(reply_wait);
        scratch_.resize(reply_block);
    }

    ~session()
    {
        try {
            leave();
        } catch (const std::exception& e) {
            spdlog::warn("ddict {}: leaving: {}", desc_.name, e.what());
        }
    }

    session(const session&) = delete;
    session& operator=(const session&) = delete;

    // ---- bring-up -----------------------------------------------------------------------

    /// Creator: starts the orchestrator and waits for it to report every manager ready.
    void create(const server_options& options)
    {
        process_template t;
        t.exe = ddict_program();
        t.args = {"orchestrator", base64url_encode(encode(options)), reply_.descriptor()};
        t.where = policy{.placement_kind = placement::local};
        orchestrator_ = process::start(t);
        const auto until = deadline::after(create_timeout);
        const auto got = await_one(1, until, [this] { check_orchestrator(); });
        const auto& r = expect_ok(got, "create");
        decoder in(r.body, "ddict creation reply");
        descriptor_ = codec<std::string>::decode(in);
        dir_ = codec<directory>::decode(in);
        desc_ = decode_descriptor(descriptor_);
        managers_.resize(dir_.managers.size());
    }

    /// Any client: asks the orchestrator named by the descriptor for the directory.
    void attach(std::string_view descriptor, timeout limit)
    {
        desc_ = decode_descriptor(descriptor);
        descriptor_ = descriptor;
        auto orc = channels::channel::attach(desc_.orchestrator);
        const auto until = deadline::after(limit);
        send_orchestrator(orc, op::attach, 1, until);
        const auto got = await_one(1, until, [this] { check_orchestrator(); });
        dir_ = decode<directory>(expect_ok(got, "attach").body, "ddict directory");
        if (dir_.managers.size() != desc_.managers) {
            throw_error(errc::malformed_message, "ddict directory: wrong number of managers");
        }
        managers_.resize(dir_.managers.size());
    }

    void destroy(timeout limit, bool keep)
    {
        ensure_open();
        const auto until = deadline::after(limit);
        auto orc = channels::channel::attach(desc_.orchestrator);
        const auto tag = next_tag();
        send_orchestrator(orc, op::destroy, tag, until, keep ? 1 : 0);
        (void)expect_ok(await_one(tag, until, [this] { check_orchestrator(); }), "destroy");
        if (orchestrator_) {
            (void)orchestrator_->join(until.remaining().value_or(10s));
        }
        leave();
    }

    /// Says goodbye to the managers this session talked to and frees the reply channel and
    /// pool. Idempotent.
    void leave()
    {
        if (left_) {
            return;
        }
        left_ = true;
        for (std::size_t m = 0; m < managers_.size(); ++m) {
            if (managers_[m]) {
                request_header h{};
                h.code = op::goodbye;
                h.client = dir_.client_id;
                try {
                    (void)managers_[m].try_send(
                        std::as_bytes(std::span(&h, 1)));  // best effort: it may be gone
                } catch (const std::exception&) {
                }
            }
        }
        managers_.clear();
        reply_ = {};
        if (pool_) {
            pool_.destroy();
        }
    }

    // ---- requests -------------------------------------------------------------------------

    std::uint64_t next_tag() noexcept { return ++tag_; }

    [[nodiscard]] request_header header(op code, std::uint64_t checkpoint,
                                        const deadline& until) noexcept
    {
        request_header h{};
        h.code = code;
        h.tag = next_tag();
        h.client = dir_.client_id;
        h.checkpoint = checkpoint;
        h.timeout_us = timeout_field(until);
        return h;
    }

    /// Sends a request to manager m: header, key, then the body (an encoder's output or
    /// raw bytes). A large request to a manager on this node is written straight into a
    /// block of the manager's pool, which becomes the stored entry: one copy in all.
    void send(std::uint32_t m, request_header h, byte_view key, const encoder* value,
              byte_view body, const deadline& until)
    {
        auto& ch = manager(m);
        h.key_size = static_cast<std::uint32_t>(key.size());
        const auto body_size = value != nullptr ? value->size() : body.size();
        const auto n = request_size(key.size(), body_size);
        const auto fill = [&](std::span<std::byte> out) {
            const auto rest = write_request(out, h, key);
            if (value != nullptr) {
                value->write_to(rest);
            } else if (!body.empty()) {
                std::memcpy(rest.data(), body.data(), body.size());
            }
        };
        if (n <= ch.block_size() || !ch.is_local()) {
            out_.resize(n);
            fill(out_);
            send_bytes(m, ch, out_, until);
            return;
        }
        auto block = ch.pool().try_allocate(n);
        if (!block) {
            throw_error(errc::ddict_full,
                        fmt::format("ddict {}: manager {} has no room for a request of {} bytes",
                                    desc_.name, m, n));
        }
        fill(block->bytes());
        try {
            ch.send(*block, until.remaining());
        } catch (const error& e) {
            rethrow_send_error(m, e);
        }
    }

    void send_bytes(std::uint32_t m, channels::channel& ch, byte_view bytes,
                    const deadline& until)
    {
        try {
            if (!ch.try_send(bytes)) {
                ch.send(bytes, until.remaining());
            }
        } catch (const error& e) {
            rethrow_send_error(m, e);
        }
    }

    [[noreturn]] void rethrow_send_error(std::uint32_t m, const error& e)
    {
        if (e.is(errc::timeout)) {
            check_manager(m);
            throw_error(errc::timeout,
                        fmt::format("ddict {}: timed out sending to manager {} (node {}): its "
                                    "queue stayed full",
                                    desc_.name, m, dir_.managers[m].node));
        }
        if (e.is(errc::not_found)) {
            throw_error(errc::peer_lost, fmt::format("ddict {}: manager {} is gone ({})",
                                                     desc_.name, m, e.what()));
        }
        throw;
    }

    /// Waits for the reply with `tag` from manager m (replies with other tags are late
    /// answers to abandoned requests: dropped). Throws on an error status.
    received call(std::uint32_t m, const request_header& h, const deadline& until,
                  std::string_view what)
    {
        auto got = await_one(h.tag, until, [this, m] { check_manager(m); });
        (void)expect_ok(got, what);
        return got;
    }

    /// Sends `h` to every manager in `targets`, then collects their replies.
    template <class OnReply>
    void broadcast(const std::vector<std::uint32_t>& targets, request_header h, byte_view key,
                   const encoder* value, const deadline& until, std::string_view what,
                   OnReply&& on_reply)
    {
        std::vector<std::uint64_t> tags(targets.size());
        for (std::size_t i = 0; i < targets.size(); ++i) {
            h.tag = next_tag();
            tags[i] = h.tag;
            send(targets[i], h, key, value, {}, until);
        }
        collect(targets, tags, until, what, on_reply);
    }

    /// Waits for the reply of each request sent to targets[i] with tags[i], and calls
    /// on_reply(i, response) for each successful one. The first error (an error status, or
    /// what on_reply threw) is thrown once every reply has arrived.
    template <class OnReply>
    void collect(const std::vector<std::uint32_t>& targets, std::vector<std::uint64_t>& tags,
                 const deadline& until, std::string_view what, OnReply&& on_reply)
    {
        std::optional<error> first;
        for (std::size_t left = targets.size(); left > 0; --left) {
            const auto got = await_any(tags, until, [&] {
                for (std::size_t i = 0; i < targets.size(); ++i) {
                    if (tags[i] != 0) {
                        check_manager(targets[i]);
                    }
                }
            });
            const auto& r = got.parsed;
            const auto i = static_cast<std::size_t>(
                std::find(tags.begin(), tags.end(), r.header.tag) - tags.begin());
            tags[i] = 0;
            try {
                (void)expect_ok(got, what);
                on_reply(i, r);
            } catch (const error& e) {
                if (!first) {
                    first = e;
                }
            }
        }
        if (first) {
            throw *first;
        }
    }

    // ---- replies ----------------------------------------------------------------------------

    template <class Check>
    received await_one(std::uint64_t tag, const deadline& until, Check&& check)
    {
        std::uint64_t tags[] = {tag};
        return await_any(tags, until, check);
    }

    /// The next reply whose tag is one of `tags` (0 entries are ignored).
    template <class Check>
    received await_any(std::span<const std::uint64_t> tags, const deadline& until,
                       Check&& check)
    {
        ensure_open();
        auto next_check = clock::now() + liveness_interval;
        for (;;) {
            if (auto msg = reply_.try_take(scratch_)) {
                const auto r = parse_response(msg->bytes());
                if (std::find(tags.begin(), tags.end(), r.header.tag) != tags.end() &&
                    r.header.tag != 0) {
                    return {std::move(*msg), r};
                }
                continue;  // a late reply to a request given up on
            }
            const auto left = until.remaining();
            if (left && left->count() == 0) {
                throw_error(errc::timeout,
                            fmt::format("ddict {}: no reply in time", desc_.name));
            }
            const auto slice = std::min<std::chrono::nanoseconds>(
                left.value_or(liveness_interval), liveness_interval);
            if (!reply_.poll(channels::poll_event::readable, slice) &&
                clock::now() >= next_check) {
                check();
                next_check = clock::now() + liveness_interval;
            }
        }
    }

    void check_manager(std::uint32_t m)
    {
        const auto& info = dir_.managers[m];
        if (!process_alive(info.puid)) {
            throw_error(errc::peer_lost,
                        fmt::format("ddict {}: manager {} (node {}, puid {}) is not running",
                                    desc_.name, m, info.node, info.puid));
        }
    }

    void check_orchestrator()
    {
        const auto puid = orchestrator_ ? orchestrator_->puid() : desc_.orchestrator_puid;
        if (puid != 0 && !process_alive(puid)) {
            std::string how;
            if (orchestrator_) {
                if (const auto code = orchestrator_->exit_code()) {
                    how = fmt::format(" (it exited with code {})", *code);
                }
            }
            throw_error(errc::peer_lost,
                        fmt::format("ddict {}: its orchestrator (puid {}) is not running{}",
                                    desc_.name.empty() ? "(new)" : desc_.name, puid, how));
        }
    }

    static bool process_alive(std::uint64_t puid)
    {
        try {
            return process::attach(puid).alive();
        } catch (const error& e) {
            if (e.is(errc::not_found)) {
                return false;
            }
            throw;
        }
    }

    // ---- managers ---------------------------------------------------------------------------

    /// Manager m's request channel, attached and greeted (hello) on first use. The hello
    /// needs no reply: the manager reads it before any later request of this client.
    channels::channel& manager(std::uint32_t m)
    {
        ensure_open();
        auto& ch = managers_.at(m);
        if (!ch) {
            ch = channels::channel::attach(dir_.managers[m].channel);
            const hello_body hello{reply_.descriptor(), node_};
            encoder out;
            codec<hello_body>::encode(hello, out);
            request_header h{};
            h.code = op::hello;
            h.client = dir_.client_id;
            std::vector<std::byte> msg(request_size(0, out.size()));
            out.write_to(write_request(msg, h, {}));
            ch.send(msg, 10s);
        }
        return ch;
    }

    void ensure_open() const
    {
        if (left_) {
            throw_error(errc::invalid_operation,
                        fmt::format("ddict {}: this client has detached", desc_.name));
        }
    }

    /// A request to the orchestrator and its reply.
    received ask_orchestrator(op code, std::uint64_t arg, const deadline& until,
                              std::string_view what)
    {
        ensure_open();
        auto orc = channels::channel::attach(desc_.orchestrator);
        const auto tag = next_tag();
        send_orchestrator(orc, code, tag, until, arg);
        auto got = await_one(tag, until, [this] { check_orchestrator(); });
        (void)expect_ok(got, what);
        return got;
    }

    void send_orchestrator(channels::channel& orc, op code, std::uint64_t tag,
                           const deadline& until, std::uint64_t arg = 0)
    {
        const orchestrator_request body{reply_.descriptor()};
        encoder out;
        codec<orchestrator_request>::encode(body, out);
        request_header h{};
        h.code = code;
        h.tag = tag;
        h.client = dir_.client_id;
        h.arg = arg;
        h.timeout_us = timeout_field(until);
        std::vector<std::byte> msg(request_size(0, out.size()));
        out.write_to(write_request(msg, h, {}));
        orc.send(msg, until.remaining());
    }

    // ---- state ------------------------------------------------------------------------------

    std::uint32_t node_ = 0;
    pool::pool pool_;
    channels::channel reply_;
    std::string descriptor_;
    descriptor_body desc_;
    directory dir_;
    std::vector<channels::channel> managers_;
    std::optional<process> orchestrator_;
    std::optional<ddict_options> created_with_;  // the creator's options
    std::vector<std::byte> scratch_;
    std::vector<std::byte> out_;
    std::uint64_t tag_ = 1;
    bool left_ = false;

    // The batch in progress: records per manager not sent yet, and records sent per manager.
    struct batch_state {
        bool active = false;
        bool persist = false;
        std::uint64_t id = 0;
        std::vector<std::vector<std::byte>> pending;
        std::vector<std::uint64_t> sent;
        std::vector<bool> used;
        std::uint64_t checkpoint = 0;
    } batch_;
};

// ---- value_bytes ---------------------------------------------------------------------------

struct value_bytes::holder {
    channels::message message;
    pool::allocation in_place;  // a frozen manager's block, read in place: not ours to free
    ~holder() { in_place.disown(); }
};

value_bytes::value_bytes() = default;
value_bytes::~value_bytes() = default;
value_bytes::value_bytes(value_bytes&&) noexcept = default;
value_bytes& value_bytes::operator=(value_bytes&&) noexcept = default;

// ---- listing ------------------------------------------------------------------------------

struct listing::state {
    std::shared_ptr<session> s;
    std::vector<std::uint32_t> targets;
    std::size_t at = 0;            // index into targets
    std::uint64_t iteration = 0;   // the manager's id for this listing (0: not started)
    std::uint64_t position = 0;    // where the next page starts
    bool more = true;              // the current manager has more pages
    std::uint16_t flags = 0;
    std::uint64_t checkpoint = 0;
    timeout limit;
    channels::message page;
    std::optional<decoder> in;
};

listing::listing(std::unique_ptr<state> s) noexcept : state_(std::move(s)) {}
listing::listing(listing&&) noexcept = default;
listing::~listing() = default;

bool listing::next(byte_view& key, byte_view& value)
{
    auto& st = *state_;
    for (;;) {
        if (st.in && !st.in->at_end()) {
            key = (st.flags & flag_list_keys) != 0 ? st.in->chunk() : byte_view{};
            value = (st.flags & flag_list_values) != 0 ? st.in->chunk() : byte_view{};
            return true;
        }
        st.in.reset();
        if (!st.more) {
            ++st.at;
            st.iteration = 0;
            st.position = 0;
            st.more = true;
        }
        if (st.at >= st.targets.size()) {
            return false;
        }
        const auto m = st.targets[st.at];
        const auto until = deadline::after(st.limit);
        auto h = st.s->header(op::list, st.checkpoint, until);
        h.flags = st.flags;
        h.arg = st.iteration;
        h.arg2 = st.position;
        st.s->send(m, h, {}, nullptr, {}, until);
        auto got = st.s->call(m, h, until, "listing");
        const auto r = got.parsed;
        st.page = std::move(got.message);
        st.iteration = r.header.aux;
        st.position = r.header.value;
        st.more = r.header.value != 0;
        st.in.emplace(r.body, "ddict listing page");
    }
}

// ---- client -------------------------------------------------------------------------------

client::client(std::shared_ptr<session> s) : session_(std::move(s))
{
    checkpoint_ = session_->dir_.base_checkpoint;
    if (session_->dir_.timeout_us == no_timeout) {
        timeout_ = forever;
    } else {
        timeout_ = std::chrono::microseconds(session_->dir_.timeout_us);
    }
}

client::~client() = default;

namespace {

// The option rules of spec §2 for persistence, restore and restart.
void check_persistence_options(const ddict_options& o)
{
    const auto fail = [](const std::string& why) {
        throw_error(errc::invalid_argument, "ddict: " + why);
    };
    const bool named = !o.name.empty();
    const bool posix = o.persister == ddict_options::persister_kind::posix;
    if (o.persist_count < -1) {
        fail("persist_count must be -1 (all) or more");
    }
    if (!posix && (o.persist_freq != 0 || o.persist_count != 0)) {
        fail("persist_freq and persist_count need a persister (persister = posix)");
    }
    if (posix && !named) {
        fail("a persisted dictionary needs a name (its files are named after it)");
    }
    if (o.restore_from && (!named || !posix)) {
        fail("restore_from needs the dictionary's name and persister = posix");
    }
    if (o.read_only) {
        if (!o.restore_from) {
            fail("read_only needs restore_from (the checkpoint to replay from)");
        }
        if (o.wait_for_keys || o.wait_for_writers) {
            fail("read_only takes neither wait_for_keys nor wait_for_writers");
        }
        if (o.working_set_size != 1) {
            fail("read_only needs working_set_size 1");
        }
        if (o.persist_count != 0) {
            fail("read_only persists nothing: persist_count must be 0");
        }
    }
    if (o.restart && !named) {
        fail("restart needs the name of the dictionary to bring back");
    }
    if (o.restart && (o.restore_from || o.read_only)) {
        fail("restart brings back kept memory: it takes neither restore_from nor read_only");
    }
    for (const char c : o.name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) {
            fail("a name is made of [A-Za-z0-9._-]: '" + o.name + "'");
        }
    }
}

}  // namespace

client client::create(const ddict_options& o)
{
    auto& rt = runtime::current();
    server_options so;
    so.name = o.name.empty() ? random_name() : o.name;
    if (!o.policies.empty()) {
        if (o.managers_per_policy == 0) {
            throw_error(errc::invalid_argument, "ddict: managers_per_policy must be at least 1");
        }
        for (const auto& p : o.policies) {
            validate(p);
            for (std::uint32_t i = 0; i < o.managers_per_policy; ++i) {
                so.manager_policies.push_back(p);
            }
        }
    } else {
        if (o.managers_per_node == 0 || o.n_nodes == 0) {
            throw_error(errc::invalid_argument,
                        "ddict: managers_per_node and n_nodes must be at least 1");
        }
        if (o.n_nodes > rt.nnodes()) {
            throw_error(errc::invalid_argument,
                        fmt::format("ddict: n_nodes is {} but the run has {} node(s)", o.n_nodes,
                                    rt.nnodes()));
        }
        for (std::uint32_t n = 0; n < o.n_nodes; ++n) {
            for (std::uint32_t i = 0; i < o.managers_per_node; ++i) {
                so.manager_policies.push_back(
                    policy{.placement_kind = placement::host_id, .host_id = n});
            }
        }
    }
    so.managers = static_cast<std::uint32_t>(so.manager_policies.size());
    if (o.working_set_size == 0) {
        throw_error(errc::invalid_argument, "ddict: working_set_size must be at least 1");
    }
    if ((o.wait_for_keys || o.wait_for_writers) && o.working_set_size < 2) {
        throw_error(errc::invalid_argument,
                    "ddict: wait_for_keys and wait_for_writers need working_set_size >= 2");
    }
    if (!(o.full_threshold > 0 && o.full_threshold <= 1)) {
        throw_error(errc::invalid_argument, "ddict: full_threshold must be in (0, 1]");
    }
    constexpr std::uint64_t min_share = 64 << 10;
    if (o.total_mem / so.managers < min_share) {
        throw_error(errc::invalid_argument,
                    fmt::format("ddict: total_mem of {} bytes gives each of {} managers less "
                                "than {} bytes",
                                o.total_mem, so.managers, min_share));
    }
    if (o.timeout && o.timeout->count() < 0) {
        throw_error(errc::invalid_argument, "ddict: negative timeout");
    }
    check_persistence_options(o);
    so.total_mem = o.total_mem;
    so.working_set_size = o.working_set_size;
    so.wait_for_keys = o.wait_for_keys;
    so.wait_for_writers = o.wait_for_writers;
    so.full_threshold = o.full_threshold;
    so.timeout_us =
        o.timeout ? static_cast<std::uint64_t>(
                        std::chrono::duration_cast<std::chrono::microseconds>(*o.timeout).count())
                  : no_timeout;

    so.persister = o.persister == ddict_options::persister_kind::posix ? 1 : 0;
    so.persist_path =
        std::filesystem::absolute(o.persist_path.empty() ? std::filesystem::current_path()
                                                         : std::filesystem::path(o.persist_path))
            .lexically_normal()
            .string();
    so.persist_freq = o.persist_freq;
    so.persist_count = o.persist_count;
    so.restore_from = o.restore_from.value_or(no_checkpoint);
    so.read_only = o.read_only;
    so.restart = o.restart;

    auto s = std::make_shared<session>();
    s->create(so);
    s->created_with_ = o;
    return client(std::move(s));
}

client client::attach(std::string_view descriptor, timeout limit)
{
    (void)decode_descriptor(descriptor);  // a malformed descriptor fails before any work
    auto s = std::make_shared<session>();
    s->attach(descriptor, limit);
    return client(std::move(s));
}

std::string client::descriptor() const { return session_->descriptor_; }
const std::string& client::name() const { return session_->dir_.name; }
std::uint32_t client::managers() const
{
    return static_cast<std::uint32_t>(session_->dir_.managers.size());
}

client client::with_manager(std::uint32_t id) const
{
    if (id >= managers()) {
        throw_error(errc::invalid_argument,
                    fmt::format("ddict {}: no manager {} (it has {})", name(), id, managers()));
    }
    client c = *this;
    c.chosen_ = id;
    return c;
}

std::uint32_t client::which_manager(byte_view key) const
{
    return chosen_ ? *chosen_ : manager_of(key, managers());
}

std::uint32_t client::main_manager() const
{
    if (chosen_) {
        return *chosen_;
    }
    const auto local = local_managers();
    const auto id = session_->dir_.client_id;
    if (!local.empty()) {
        return local[id % local.size()];
    }
    return static_cast<std::uint32_t>(id % managers());
}

std::vector<std::uint32_t> client::local_managers() const
{
    std::vector<std::uint32_t> out;
    for (const auto& m : session_->dir_.managers) {
        if (m.node == session_->node_) {
            out.push_back(m.id);
        }
    }
    return out;
}

std::vector<std::uint32_t> client::manager_nodes() const
{
    std::vector<std::uint32_t> out;
    for (const auto& m : session_->dir_.managers) {
        out.push_back(m.node);
    }
    return out;
}

std::vector<std::uint64_t> client::manager_processes() const
{
    std::vector<std::uint64_t> out;
    for (const auto& m : session_->dir_.managers) {
        out.push_back(m.puid);
    }
    return out;
}

namespace {

std::vector<std::uint32_t> every_manager(const client& c)
{
    std::vector<std::uint32_t> all(c.managers());
    for (std::uint32_t i = 0; i < all.size(); ++i) {
        all[i] = i;
    }
    return all;
}

std::vector<std::uint32_t> all_or_chosen(const client& c)
{
    if (c.chosen_manager()) {
        return {*c.chosen_manager()};
    }
    return every_manager(c);
}

}  // namespace

void client::put(byte_view key, const encoder& value, bool persist, timeout limit)
{
    if (session_->batch_.active) {
        batch_put(key, value, persist, limit);
        return;
    }
    const auto until = deadline::after(limit);
    const auto m = which_manager(key);
    auto h = session_->header(op::put, checkpoint_, until);
    h.flags = persist ? flag_persist : 0;
    session_->send(m, h, key, &value, {}, until);
    (void)session_->call(m, h, until, "put");
}

std::optional<value_bytes> client::get(byte_view key, timeout limit)
{
    return value_request(static_cast<std::uint16_t>(op::get), key, limit, "get");
}

std::optional<value_bytes> client::value_request(std::uint16_t code, byte_view key,
                                                 timeout limit, std::string_view what)
{
    const auto until = deadline::after(limit);
    const auto m = which_manager(key);
    const auto h = session_->header(static_cast<op>(code), checkpoint_, until);
    session_->send(m, h, key, nullptr, {}, until);
    auto got = session_->await_one(h.tag, until, [&] { session_->check_manager(m); });
    const auto r = got.parsed;
    if (r.header.status == static_cast<std::uint16_t>(errc::key_not_found)) {
        return std::nullopt;
    }
    (void)session::expect_ok(got, what);
    value_bytes v;
    v.holder_ = std::make_unique<value_bytes::holder>();
    if (r.header.aux == frozen_reply_marker) {
        frozen_value_ref ref{};
        if (r.body.size() != sizeof ref) {
            throw_error(errc::malformed_message, "ddict: a frozen get's reply is malformed");
        }
        std::memcpy(&ref, r.body.data(), sizeof ref);
        auto block = session_->manager(m).pool().attach_allocation(ref.block_offset,
                                                                   ref.block_size);
        if (ref.value_offset > block.size() || ref.value_size > block.size() - ref.value_offset) {
            block.disown();
            throw_error(errc::malformed_message, "ddict: a frozen get's value overruns its block");
        }
        v.bytes_ = block.bytes().subspan(ref.value_offset, ref.value_size);
        v.holder_->in_place = std::move(block);
        return v;
    }
    v.bytes_ = r.body;
    v.holder_->message = std::move(got.message);
    return v;
}

bool client::contains(byte_view key, timeout limit)
{
    const auto until = deadline::after(limit);
    const auto m = which_manager(key);
    const auto h = session_->header(op::contains, checkpoint_, until);
    session_->send(m, h, key, nullptr, {}, until);
    return session_->call(m, h, until, "contains").parsed.header.value != 0;
}

std::optional<value_bytes> client::pop(byte_view key, timeout limit)
{
    return value_request(static_cast<std::uint16_t>(op::pop), key, limit, "pop");
}

std::int64_t client::fetch_add(byte_view key, std::int64_t n, timeout limit)
{
    const auto until = deadline::after(limit);
    const auto m = which_manager(key);
    auto h = session_->header(op::fetch_add, checkpoint_, until);
    h.arg = static_cast<std::uint64_t>(n);
    session_->send(m, h, key, nullptr, {}, until);
    return static_cast<std::int64_t>(session_->call(m, h, until, "fetch_add").parsed.header.value);
}

void client::wait_for(byte_view key, const encoder& value, timeout limit)
{
    const auto until = deadline::after(limit);
    const auto m = which_manager(key);
    const auto h = session_->header(op::wait_for, checkpoint_, until);
    session_->send(m, h, key, &value, {}, until);
    // The manager answers errc::timeout itself when the time is up; wait a little longer
    // than that so its answer, not a local guess, decides.
    const auto grace = limit ? deadline::after(*limit + 200ms) : until;
    (void)session_->call(m, h, grace, "wait_for");
}

void client::bput(byte_view key, const encoder& value, timeout limit)
{
    const auto until = deadline::after(limit);
    auto h = session_->header(op::bput, checkpoint_, until);
    session_->broadcast(all_or_chosen(*this), h, key, &value, until, "bput",
                        [](std::size_t, const parsed_response&) {});
}

std::optional<value_bytes> client::bget(byte_view key, timeout limit)
{
    return with_manager(main_manager()).get(key, limit);
}

std::uint64_t client::size(timeout limit)
{
    const auto until = deadline::after(limit);
    std::uint64_t total = 0;
    session_->broadcast(all_or_chosen(*this), session_->header(op::size, checkpoint_, until), {},
                        nullptr, until, "size",
                        [&](std::size_t, const parsed_response& r) { total += r.header.value; });
    return total;
}

std::uint64_t client::local_size(timeout limit)
{
    const auto until = deadline::after(limit);
    std::uint64_t total = 0;
    const auto targets = local_managers();
    if (targets.empty()) {
        return 0;
    }
    session_->broadcast(targets, session_->header(op::size, checkpoint_, until), {}, nullptr,
                        until, "local size",
                        [&](std::size_t, const parsed_response& r) { total += r.header.value; });
    return total;
}

void client::clear(timeout limit)
{
    const auto until = deadline::after(limit);
    session_->broadcast(all_or_chosen(*this), session_->header(op::clear, checkpoint_, until),
                        {}, nullptr, until, "clear", [](std::size_t, const parsed_response&) {});
}

listing client::list(bool keys, bool values, bool local_only, timeout limit)
{
    auto st = std::make_unique<listing::state>();
    st->s = session_;
    st->targets = local_only ? local_managers() : all_or_chosen(*this);
    if (local_only && chosen_) {
        st->targets.erase(std::remove_if(st->targets.begin(), st->targets.end(),
                                         [&](std::uint32_t m) { return m != *chosen_; }),
                          st->targets.end());
    }
    // No particular order: start at a different manager in each client to spread the load.
    if (!st->targets.empty()) {
        std::rotate(st->targets.begin(),
                    st->targets.begin() +
                        static_cast<std::ptrdiff_t>(session_->dir_.client_id % st->targets.size()),
                    st->targets.end());
    }
    st->flags = static_cast<std::uint16_t>((keys ? flag_list_keys : 0) |
                                           (values ? flag_list_values : 0));
    st->checkpoint = checkpoint_;
    st->limit = limit;
    return listing(std::move(st));
}

void client::freeze(timeout limit)
{
    const auto until = deadline::after(limit);
    session_->broadcast(all_or_chosen(*this), session_->header(op::freeze, checkpoint_, until),
                        {}, nullptr, until, "freeze", [](std::size_t, const parsed_response&) {});
}

void client::unfreeze(timeout limit)
{
    const auto until = deadline::after(limit);
    session_->broadcast(all_or_chosen(*this), session_->header(op::unfreeze, checkpoint_, until),
                        {}, nullptr, until, "unfreeze",
                        [](std::size_t, const parsed_response&) {});
}

bool client::is_frozen(timeout limit)
{
    const auto until = deadline::after(limit);
    const auto m = main_manager();
    const auto h = session_->header(op::is_frozen, checkpoint_, until);
    session_->send(m, h, {}, nullptr, {}, until);
    return session_->call(m, h, until, "is_frozen").parsed.header.value != 0;
}

std::vector<ddict_stats> client::stats(timeout limit)
{
    const auto until = deadline::after(limit);
    const auto targets = all_or_chosen(*this);
    std::vector<ddict_stats> out(targets.size());
    session_->broadcast(targets, session_->header(op::stats, checkpoint_, until), {}, nullptr,
                        until, "stats", [&](std::size_t i, const parsed_response& r) {
                            out[i] = decode<ddict_stats>(r.body, "ddict stats");
                        });
    return out;
}

std::uint64_t client::newest_checkpoint(timeout limit)
{
    const auto until = deadline::after(limit);
    std::uint64_t newest = 0;
    session_->broadcast(all_or_chosen(*this), session_->header(op::newest, checkpoint_, until),
                        {}, nullptr, until, "newest checkpoint",
                        [&](std::size_t, const parsed_response& r) {
                            newest = std::max(newest, r.header.value);
                        });
    return newest;
}

// ---- batches -------------------------------------------------------------------------------

void client::batch_begin(bool persist)
{
    auto& b = session_->batch_;
    if (b.active) {
        throw_error(errc::invalid_operation, "ddict: a batch is already in progress");
    }
    b = {};
    b.active = true;
    b.persist = persist;
    b.id = session_->next_tag();
    b.checkpoint = checkpoint_;
    b.pending.resize(managers());
    b.sent.assign(managers(), 0);
    b.used.assign(managers(), false);
}

bool client::in_batch() const noexcept { return session_->batch_.active; }

namespace {

void flush_batch(session& s, std::uint32_t m, const deadline& until)
{
    auto& b = s.batch_;
    auto& records = b.pending[m];
    if (records.empty()) {
        return;
    }
    auto h = s.header(op::batch_put, b.checkpoint, until);
    h.arg = b.id;
    s.send(m, h, {}, nullptr, records, until);
    records.clear();
}

}  // namespace

void client::batch_put(byte_view key, const encoder& value, bool persist, timeout limit)
{
    auto& b = session_->batch_;
    if (!b.active) {
        throw_error(errc::invalid_operation, "ddict: batch_put outside a batch");
    }
    if (persist != b.persist) {
        throw_error(errc::invalid_operation,
                    b.persist ? "ddict: a persistent batch takes pput only"
                              : "ddict: a batch started without persist takes put only");
    }
    const auto m = which_manager(key);
    auto& records = b.pending[m];
    const batch_record_header rh{static_cast<std::uint32_t>(key.size()),
                                 persist ? flag_persist : 0u, value.size()};
    const auto at = records.size();
    records.resize(at + sizeof rh + key.size() + value.size());
    std::memcpy(records.data() + at, &rh, sizeof rh);
    if (!key.empty()) {
        std::memcpy(records.data() + at + sizeof rh, key.data(), key.size());
    }
    value.write_to(std::span(records).subspan(at + sizeof rh + key.size()));
    ++b.sent[m];
    b.used[m] = true;
    if (records.size() >= batch_flush_bytes) {
        flush_batch(*session_, m, deadline::after(limit));
    }
}

void client::batch_end(timeout limit)
{
    auto& b = session_->batch_;
    if (!b.active) {
        throw_error(errc::invalid_operation, "ddict: batch_end without a batch");
    }
    b.active = false;
    const auto until = deadline::after(limit);
    std::vector<std::uint32_t> targets;
    for (std::uint32_t m = 0; m < b.used.size(); ++m) {
        if (b.used[m]) {
            flush_batch(*session_, m, until);
            targets.push_back(m);
        }
    }
    // One batch_end per manager, each with that manager's count.
    std::vector<std::uint64_t> tags(targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
        auto h = session_->header(op::batch_end, b.checkpoint, until);
        h.arg = b.id;
        h.arg2 = b.sent[targets[i]];
        tags[i] = h.tag;
        session_->send(targets[i], h, {}, nullptr, {}, until);
    }
    session_->collect(targets, tags, until, "batch", [&](std::size_t i, const parsed_response& r) {
        if (r.header.value != b.sent[targets[i]]) {
            throw_error(errc::internal,
                        fmt::format("ddict {}: manager {} stored {} of the batch's {} records",
                                    name(), targets[i], r.header.value, b.sent[targets[i]]));
        }
    });
}

// ---- lifetime ----------------------------------------------------------------------------

void client::detach() { session_->leave(); }

void client::destroy(timeout limit, bool allow_restart)
{
    session_->destroy(limit, allow_restart);
}

// ---- persistence and copies ----------------------------------------------------------------

void client::persist(timeout limit)
{
    const auto until = deadline::after(limit);
    session_->broadcast(every_manager(*this), session_->header(op::persist, checkpoint_, until),
                        {}, nullptr, until, "persist",
                        [](std::size_t, const parsed_response&) {});
}

void client::restore(std::uint64_t id, timeout limit)
{
    const auto until = deadline::after(limit);
    // Every manager must have it: a restore that some managers cannot do would leave the
    // dictionary half at one checkpoint and half at another.
    const auto ids = persisted_ids(until.remaining());
    if (!std::binary_search(ids.begin(), ids.end(), id)) {
        throw_error(errc::checkpoint_unavailable,
                    fmt::format("ddict {}: checkpoint {} is not persisted by every manager",
                                name(), id));
    }
    auto h = session_->header(op::restore, checkpoint_, until);
    h.arg = id;
    session_->broadcast(every_manager(*this), h, {}, nullptr, until, "restore",
                        [](std::size_t, const parsed_response&) {});
    checkpoint_ = id;
}

std::uint64_t client::advance(timeout limit)
{
    const auto until = deadline::after(limit);
    auto next = std::numeric_limits<std::uint64_t>::max();
    session_->broadcast(every_manager(*this), session_->header(op::advance, checkpoint_, until),
                        {}, nullptr, until, "advance", [&](std::size_t, const parsed_response& r) {
                            next = std::min(next, r.header.value);
                        });
    checkpoint_ = next;
    return next;
}

std::vector<std::uint64_t> client::persisted_ids(timeout limit)
{
    const auto until = deadline::after(limit);
    std::optional<std::vector<std::uint64_t>> common;
    session_->broadcast(
        every_manager(*this), session_->header(op::persisted_ids, checkpoint_, until), {},
        nullptr, until, "persisted_ids", [&](std::size_t, const parsed_response& r) {
            auto ids = decode<std::vector<std::uint64_t>>(r.body, "ddict persisted ids");
            std::sort(ids.begin(), ids.end());
            if (!common) {
                common = std::move(ids);
                return;
            }
            std::vector<std::uint64_t> both;
            std::set_intersection(common->begin(), common->end(), ids.begin(), ids.end(),
                                  std::back_inserter(both));
            common = std::move(both);
        });
    return common.value_or(std::vector<std::uint64_t>{});
}

std::vector<std::uint32_t> client::empty_managers(timeout limit)
{
    const auto until = deadline::after(limit);
    const auto got = session_->ask_orchestrator(op::managers, 0, until, "empty_managers");
    return decode<directory>(got.parsed.body, "ddict directory").empty;
}

const ddict_options& client::creation_options() const
{
    if (!session_->created_with_) {
        throw_error(errc::invalid_operation,
                    fmt::format("ddict {}: only the handle that created it knows its options",
                                name()));
    }
    return *session_->created_with_;
}

void client::clone(const std::vector<std::string>& descriptors, timeout limit)
{
    const auto until = deadline::after(limit);
    for (const auto& d : descriptors) {
        auto target = client::attach(d, until.remaining());
        if (target.managers() != managers()) {
            throw_error(errc::invalid_argument,
                        fmt::format("ddict {}: cannot clone into {}: {} managers, not {}", name(),
                                    target.name(), target.managers(), managers()));
        }
        (void)target.session_->ask_orchestrator(op::mark_empty, 1, until, "clone");
    }
    std::vector<std::string> all{descriptor()};
    all.insert(all.end(), descriptors.begin(), descriptors.end());
    synchronize(all, until.remaining());
}

void client::synchronize(const std::vector<std::string>& descriptors, timeout limit)
{
    const auto until = deadline::after(limit);
    std::vector<client> dicts;
    std::vector<directory> dirs;
    for (const auto& d : descriptors) {
        auto c = client::attach(d, until.remaining());
        const auto got = c.session_->ask_orchestrator(op::managers, 0, until, "synchronize");
        dirs.push_back(decode<directory>(got.parsed.body, "ddict directory"));
        dicts.push_back(std::move(c));
    }
    if (dicts.empty()) {
        return;
    }
    const auto n = dicts[0].managers();
    for (const auto& c : dicts) {
        if (c.managers() != n) {
            throw_error(errc::invalid_argument,
                        fmt::format("ddict synchronize: {} has {} managers, {} has {}",
                                    dicts[0].name(), n, c.name(), c.managers()));
        }
    }
    for (std::uint32_t m = 0; m < n; ++m) {
        std::vector<std::size_t> empties;
        std::vector<std::size_t> fulls;
        for (std::size_t i = 0; i < dirs.size(); ++i) {
            const auto& e = dirs[i].empty;
            (std::find(e.begin(), e.end(), m) != e.end() ? empties : fulls).push_back(i);
        }
        if (empties.empty()) {
            continue;
        }
        if (fulls.empty()) {
            throw_error(errc::invalid_argument,
                        fmt::format("ddict synchronize: manager {} is empty in every dictionary: "
                                    "nothing to copy it from",
                                    m));
        }
        for (std::size_t j = 0; j < empties.size(); ++j) {
            auto& source = dicts[fulls[j % fulls.size()]];
            auto& s = *source.session_;
            const sync_request body{dirs[empties[j]].managers[m].channel,
                                    s.reply_.descriptor()};
            encoder out;
            codec<sync_request>::encode(body, out);
            const auto h = s.header(op::sync_to, 0, until);
            s.send(m, h, {}, &out, {}, until);
            (void)s.call(m, h, until, "synchronize");
        }
    }
    for (auto& c : dicts) {
        (void)c.session_->ask_orchestrator(op::mark_empty, 0, until, "synchronize");
    }
}

}  // namespace dragonx::dict
