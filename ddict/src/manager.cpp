// manager.cpp - see manager.hpp.
#include "manager.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>


namespace dragonx::dict {

namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// Room in the pool besides the data share: the request channel and requests in flight.
constexpr std::uint64_t pool_overhead = std::uint64_t{2} << 20;
// How long a reply may wait for room in a client's reply channel before it is dropped.
constexpr auto reply_patience = 1s;
// A listing page holds about this many bytes (at least one entry).
constexpr std::size_t page_bytes = 256 << 10;
// Listings a client abandoned are dropped after this long unused.
constexpr auto iteration_lifetime = 10min;

// fetch_add values: codec<std::int64_t>'s encoding (one chunk of 8 bytes).
constexpr std::size_t int64_encoding = 9;

bool decode_int64(byte_view v, std::int64_t& out)
{
    if (v.size() != int64_encoding || v[0] != std::byte{8}) {
        return false;
    }
    std::memcpy(&out, v.data() + 1, sizeof out);
    return true;
}

void encode_int64(std::int64_t v, std::span<std::byte> out)
{
    out[0] = std::byte{8};
    std::memcpy(out.data() + 1, &v, sizeof v);
}

// ---- the state a manager keeps for a restart (a file beside its kept pool) ----

struct kept_entry {
    std::uint64_t offset = 0;  // the block in the pool
    std::uint64_t size = 0;
    std::uint32_t key_offset = 0;
    std::uint32_t key_size = 0;
    std::uint64_t value_size = 0;
    bool persistent = false;
    static auto fields(auto& self)
    {
        return std::tie(self.offset, self.size, self.key_offset, self.key_size,
                        self.value_size, self.persistent);
    }
};

struct kept_checkpoint {
    std::uint64_t id = 0;
    std::vector<kept_entry> entries;
    std::vector<std::string> deleted;
    std::vector<std::uint64_t> writers;
    static auto fields(auto& self)
    {
        return std::tie(self.id, self.entries, self.deleted, self.writers);
    }
};

struct kept_state {
    std::uint32_t working_set_size = 1;
    bool wait_for_keys = false;
    bool wait_for_writers = false;
    bool frozen = false;
    std::vector<kept_checkpoint> checkpoints;
    static auto fields(auto& self)
    {
        return std::tie(self.working_set_size, self.wait_for_keys, self.wait_for_writers,
                        self.frozen, self.checkpoints);
    }
};

std::string state_file_of(const std::string& kept_pool)
{
    return "/dev/shm" + kept_pool + ".state";
}

// Sends an image to another manager in set_state chunks.
class chunk_sink final : public image_sink {
public:
    chunk_sink(channels::channel& target, request_header h, std::string_view reply_channel,
               std::uint64_t total)
        : target_(target), h_(h), reply_channel_(reply_channel)
    {
        h_.code = op::set_state;
        h_.arg2 = total;
        h_.key_size = static_cast<std::uint32_t>(reply_channel_.size());
        buffer_.reserve(chunk);
    }
    void write(byte_view bytes) override
    {
        while (!bytes.empty()) {
            const auto n = std::min(bytes.size(), chunk - buffer_.size());
            buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + n);
            bytes = bytes.subspan(n);
            if (buffer_.size() == chunk) {
                flush();
            }
        }
    }
    void flush()
    {
        if (buffer_.empty()) {
            return;
        }
        std::vector<std::byte> msg(request_size(reply_channel_.size(), buffer_.size()));
        const auto rest = write_request(msg, h_, std::as_bytes(std::span(reply_channel_)));
        std::memcpy(rest.data(), buffer_.data(), buffer_.size());
        target_.send(msg, std::chrono::seconds(30));
        h_.arg += buffer_.size();
        buffer_.clear();
    }

private:
    static constexpr std::size_t chunk = 1 << 20;
    channels::channel& target_;
    request_header h_;
    std::string_view reply_channel_;
    std::vector<std::byte> buffer_;
};

}  // namespace

manager::manager(const server_options& options, std::uint32_t id, std::uint32_t node,
                 std::string hostname, const std::optional<kept_manager>& kept)
    : options_(options),
      id_(id),
      node_(node),
      hostname_(std::move(hostname)),
      share_(options.total_mem / std::max<std::uint32_t>(options.managers, 1)),
      set_(set_options())
{
    read_only_ = options.read_only;
    frozen_ = read_only_;
    if (options.persister != 0) {
        persister_ = std::make_unique<persister>(options.persist_path, options.name, id,
                                                 options.persist_count);
    }
    if (kept) {
        reclaim(*kept);
    } else {
        pool_ = pool::pool::create({.size = share_ + pool_overhead});
    }
    if (options.restore_from != no_checkpoint) {
        if (!persister_) {
            throw_error(errc::invalid_argument,
                        fmt::format("ddict {}: restore_from needs a persister", options.name));
        }
        load_persisted(options.restore_from);
    }
    if (persister_ && options.persist_freq > 0 && options.persist_count != 0 && !read_only_) {
        set_.on_retire = [this](std::uint64_t retired) { on_retire(retired); };
    }
    requests_ = channels::channel::create(
        pool_, {.capacity = manager_queue_capacity, .block_size = manager_queue_block});
    // As the client's reply wait (client.cpp): spin briefly, then yield to a client that
    // may share this vCPU.
    requests_.set_wait_policy({.spin = std::chrono::microseconds(2),
                               .yield = std::chrono::microseconds(200)});
    scratch_.resize(manager_queue_block);
    if (persister_) {
        writer_ = std::thread([this] { writer_loop(); });  // it wakes us through requests_
    }
}

manager::~manager()
{
    if (writer_.joinable()) {
        {
            std::lock_guard lock(jobs_mutex_);
            writer_stop_ = true;
        }
        jobs_cv_.notify_all();
        writer_.join();
    }
    set_.divert_frees(nullptr);
}

working_set_options manager::set_options() const
{
    if (options_.read_only) {
        return {.size = 1};
    }
    return {.size = options_.working_set_size,
            .wait_for_keys = options_.wait_for_keys,
            .wait_for_writers = options_.wait_for_writers};
}

image_meta manager::meta() const
{
    return {.working_set_size = options_.working_set_size,
            .wait_for_keys = options_.wait_for_keys,
            .wait_for_writers = options_.wait_for_writers,
            .manager_id = id_,
            .managers = options_.managers};
}

void manager::run()
{
    while (serve_one(1s)) {
    }
    drain_jobs();
    if (keep_) {
        keep_for_restart();
    }
}

bool manager::serve_one(std::chrono::nanoseconds limit)
{
    if (stopping_) {
        return false;
    }
    auto msg = requests_.try_take(scratch_);
    if (!msg) {
        const auto wait = deferred_.empty() ? limit : std::min(limit, time_to_next_expiry());
        if (requests_.poll(channels::poll_event::readable, wait)) {
            msg = requests_.try_take(scratch_);
        }
    }
    if (msg) {
        handle(*msg);
    }
    if (!jobs_.empty()) {
        finish_written_jobs();
    }
    if (!deferred_.empty()) {
        expire_deferred();
    }
    return !stopping_;
}

void manager::handle(channels::message& msg)
{
    pending p;
    try {
        const auto r = parse_request(msg.bytes());
        p.h = r.header;
        p.key = r.key;
        p.body = r.body;
    } catch (const std::exception& e) {
        // Logged at 1, 2, 4, 8... drops: a sender that floods garbage cannot flood the log.
        ++dropped_;
        const auto level = (dropped_ & (dropped_ - 1)) == 0 ? spdlog::level::warn
                                                             : spdlog::level::debug;
        spdlog::log(level, "ddict {} manager {}: dropped a malformed request ({} so far): {}",
                    options_.name, id_, dropped_, e.what());
        return;
    }
    if (p.h.timeout_us != no_timeout) {
        p.expires = clock::now() + std::chrono::microseconds(p.h.timeout_us);
    }
    try {
        dispatch(p, msg);
    } catch (const std::exception& e) {
        reply_error(p.h, e);
    }
}

void manager::dispatch(pending& p, channels::message& msg)
{
    switch (p.h.code) {
    case op::hello: do_hello(p); return;
    case op::goodbye:
        clients_.erase(p.h.client);
        std::erase_if(iterations_, [&](const auto& it) { return it.second.client == p.h.client; });
        return;
    case op::shutdown: do_shutdown(p); return;
    case op::persist_done: return;  // serve_one finishes written jobs
    case op::persist: do_persist(p); return;
    case op::restore: do_restore(p); return;
    case op::advance: do_advance(p); return;
    case op::persisted_ids:
        drain_jobs();  // what is being written counts
        reply(p.h, errc::ok, {}, 0, 0,
              encode(persister_ ? persister_->ids() : std::vector<std::uint64_t>{}));
        return;
    case op::sync_to: do_sync_to(p); return;
    case op::set_state: do_set_state(p); return;
    case op::put:
    case op::bput:
        check_writable();
        p.value = make_entry(p, msg);
        break;
    case op::get:
    case op::pop:
    case op::clear:
    case op::fetch_add:
    case op::wait_for:
        break;
    case op::contains:
        set_.note_read(p.h.checkpoint, p.h.client);
        if (p.h.checkpoint < set_.oldest()) {
            reply_outcome(p.h, outcome::retired);
        } else {
            reply(p.h, errc::ok, {}, set_.contains(p.h.checkpoint, p.key) ? 1 : 0);
        }
        return;
    case op::size:
        set_.note_read(p.h.checkpoint, p.h.client);
        if (p.h.checkpoint < set_.oldest()) {
            reply_outcome(p.h, outcome::retired);
        } else {
            reply(p.h, errc::ok, {}, set_.size(p.h.checkpoint));
        }
        return;
    case op::list: do_list(p); return;
    case op::batch_put: do_batch_put(p); return;
    case op::batch_end: do_batch_end(p); return;
    case op::freeze: frozen_ = true; reply(p.h, errc::ok); return;
    case op::unfreeze:
        if (read_only_) {
            reply(p.h, errc::invalid_operation,
                  fmt::format("ddict {} is a read-only replay: it stays frozen", options_.name));
            return;
        }
        frozen_ = false;
        reply(p.h, errc::ok);
        return;
    case op::is_frozen: reply(p.h, errc::ok, {}, frozen_ ? 1 : 0); return;
    case op::stats: do_stats(p); return;
    case op::newest: reply(p.h, errc::ok, {}, set_.newest()); return;
    default:
        reply(p.h, errc::invalid_argument,
              fmt::format("ddict manager {}: unknown request {}", id_,
                          static_cast<unsigned>(p.h.code)));
        return;
    }
    if (!attempt(p)) {
        defer(std::move(p));
    }
}

bool manager::attempt(pending& p)
{
    switch (p.h.code) {
    case op::put: return do_put(p, (p.h.flags & flag_persist) != 0);
    case op::bput: return do_put(p, false);
    case op::get: return do_get(p);
    case op::pop: return do_pop(p);
    case op::clear: return do_clear(p);
    case op::fetch_add: return do_fetch_add(p);
    case op::wait_for: return do_wait_for(p);
    default: return true;
    }
}

// ---- key operations --------------------------------------------------------------------------

bool manager::finish(const request_header& h, outcome o, bool wrote)
{
    if (o == outcome::deferred) {
        return false;
    }
    reply_outcome(h, o);
    if (o == outcome::done && wrote) {
        retry_deferred();
    }
    return true;
}

bool manager::do_put(pending& p, bool persist)
{
    return finish(p.h, set_.put(p.h.checkpoint, p.h.client, p.value, persist), true);
}

bool manager::do_get(pending& p)
{
    set_.note_read(p.h.checkpoint, p.h.client);
    const entry* found = nullptr;
    const auto o = set_.get(p.h.checkpoint, p.key, &found);
    if (o != outcome::done) {
        return finish(p.h, o, false);
    }
    const auto link = clients_.find(p.h.client);
    if (frozen_ && link != clients_.end() && link->second.same_node) {
        // Frozen: nothing moves, so a client on this node reads the value in place.
        const auto& block = found->block();
        const frozen_value_ref ref{block.offset(), block.size(),
                                   static_cast<std::uint64_t>(found->value().data() - block.data()),
                                   found->value().size()};
        reply(p.h, errc::ok, {}, 0, frozen_reply_marker, std::as_bytes(std::span(&ref, 1)));
        return true;
    }
    reply(p.h, errc::ok, {}, 0, 0, found->value());
    return true;
}

bool manager::do_pop(pending& p)
{
    check_writable();
    // Answer with the visible value first, then remove it (it may live in an older
    // checkpoint, where pop only masks it).
    const entry* found = nullptr;
    const auto o = set_.get(p.h.checkpoint, p.key, &found);
    if (o != outcome::done) {
        return finish(p.h, o, false);
    }
    entry removed;
    const auto popped = set_.pop(p.h.checkpoint, p.h.client, p.key, removed);
    if (popped != outcome::done) {
        return finish(p.h, popped, false);
    }
    reply(p.h, errc::ok, {}, 0, 0, removed ? removed.value() : found->value());
    discard(std::move(removed));
    retry_deferred();
    return true;
}

bool manager::do_clear(pending& p)
{
    check_writable();
    return finish(p.h, set_.clear(p.h.checkpoint, p.h.client), true);
}

bool manager::do_fetch_add(pending& p)
{
    check_writable();
    const auto ready = set_.ensure(p.h.checkpoint);
    if (ready != outcome::done) {
        return finish(p.h, ready, false);
    }
    std::int64_t old = 0;
    const entry* found = nullptr;
    if (set_.get(p.h.checkpoint, p.key, &found) == outcome::done &&
        !decode_int64(found->value(), old)) {
        throw_error(errc::invalid_operation,
                    fmt::format("ddict fetch_add: the key's value is {} bytes, not an int64",
                                found->value().size()));
    }
    std::array<std::byte, int64_encoding> value{};
    encode_int64(old + static_cast<std::int64_t>(p.h.arg), value);
    check_room(p.key.size() + value.size());
    auto e = copy_entry(p.key, value);
    const auto o = set_.put(p.h.checkpoint, p.h.client, e, true);
    if (o != outcome::done) {
        reply_outcome(p.h, o == outcome::deferred ? outcome::retired : o);
        return true;
    }
    reply(p.h, errc::ok, {}, static_cast<std::uint64_t>(old));
    retry_deferred();
    return true;
}

bool manager::do_wait_for(pending& p)
{
    return finish(p.h, set_.value_is(p.h.checkpoint, p.key, p.body), false);
}

// ---- deferred requests ------------------------------------------------------------------------

void manager::defer(pending&& p)
{
    p.owned_key.assign(p.key.begin(), p.key.end());
    p.key = p.owned_key;
    if (p.h.code == op::wait_for) {
        p.owned_body.assign(p.body.begin(), p.body.end());
    }
    p.body = p.owned_body;
    deferred_.push_back(std::move(p));
    // The vectors moved with it, and their buffers with them: the views stay valid.
}

void manager::retry_deferred()
{
    // A retried write calls this again: the outer call's passes cover what it would do (and
    // a nested pass would erase under the outer one's iterator).
    if (retrying_) {
        return;
    }
    retrying_ = true;
    struct reset {
        bool& flag;
        ~reset() { flag = false; }
    } done_retrying{retrying_};
    // A finished request may unblock another: go round until a pass finishes none.
    bool progress = true;
    while (progress && !deferred_.empty()) {
        progress = false;
        for (auto it = deferred_.begin(); it != deferred_.end();) {
            bool finished = true;
            try {
                finished = attempt(*it);
            } catch (const std::exception& e) {
                reply_error(it->h, e);
            }
            if (finished) {
                it = deferred_.erase(it);
                progress = true;
            } else {
                ++it;
            }
        }
    }
}

void manager::expire_deferred()
{
    const auto now = clock::now();
    for (auto it = deferred_.begin(); it != deferred_.end();) {
        if (it->expires <= now) {
            reply(it->h, errc::timeout,
                  fmt::format("ddict {}: manager {} could not complete the request in time "
                              "(checkpoint {})",
                              options_.name, id_, it->h.checkpoint));
            it = deferred_.erase(it);
        } else {
            ++it;
        }
    }
}

std::chrono::nanoseconds manager::time_to_next_expiry() const
{
    auto next = clock::time_point::max();
    for (const auto& p : deferred_) {
        next = std::min(next, p.expires);
    }
    if (next == clock::time_point::max()) {
        return std::chrono::hours(1);
    }
    return std::max<std::chrono::nanoseconds>(next - clock::now(), std::chrono::nanoseconds(0));
}

// ---- other requests ----------------------------------------------------------------------------

void manager::do_hello(const pending& p)
{
    const auto hello = decode<hello_body>(p.body, "ddict hello");
    clients_[p.h.client] = {channels::channel::attach(hello.reply_channel), hello.node == node_};
}

void manager::do_list(const pending& p)
{
    // A listing works on a snapshot of the keys taken by its first page; values are read as
    // each page is made (keys removed since are skipped).
    std::uint64_t id = p.h.arg;
    if (id == 0 && p.h.checkpoint < set_.oldest()) {
        reply_outcome(p.h, outcome::retired);
        return;
    }
    if (id == 0) {
        set_.note_read(p.h.checkpoint, p.h.client);
        id = next_iteration_++;
        auto& it = iterations_[id];
        it.client = p.h.client;
        set_.for_each(p.h.checkpoint, [&](const entry& e) {
            it.keys.emplace_back(e.key().begin(), e.key().end());
        });
    }
    const auto found = iterations_.find(id);
    if (found == iterations_.end() || found->second.client != p.h.client) {
        reply(p.h, errc::not_found,
              fmt::format("ddict manager {}: no listing {} (it expired)", id_, id));
        return;
    }
    auto& it = found->second;
    it.last_used = clock::now();
    const bool with_keys = (p.h.flags & flag_list_keys) != 0;
    const bool with_values = (p.h.flags & flag_list_values) != 0;
    encoder page;
    std::uint64_t pos = p.h.arg2;
    std::size_t bytes = 0;
    for (; pos < it.keys.size() && (bytes < page_bytes || page.chunk_count() == 0); ++pos) {
        const auto& key = it.keys[pos];
        const entry* e = nullptr;
        if (with_values && set_.get(p.h.checkpoint, key, &e) != outcome::done) {
            continue;
        }
        if (with_keys) {
            page.chunk_view(key);
            bytes += key.size();
        }
        if (with_values) {
            page.chunk_view(e->value());
            bytes += e->value().size();
        }
    }
    const bool done = pos >= it.keys.size();
    const auto body = page.to_bytes();
    reply(p.h, errc::ok, {}, done ? 0 : pos, id, body);
    if (done) {
        iterations_.erase(found);
    }
    // Drop listings their clients abandoned.
    const auto now = clock::now();
    std::erase_if(iterations_,
                  [&](const auto& kv) { return now - kv.second.last_used > iteration_lifetime; });
}

void manager::do_batch_put(const pending& p)
{
    auto& b = batches_[{p.h.client, p.h.arg}];
    auto rest = p.body;
    while (!rest.empty()) {
        batch_record_header rh{};
        if (rest.size() < sizeof rh) {
            throw_error(errc::malformed_message, "ddict batch: truncated record header");
        }
        std::memcpy(&rh, rest.data(), sizeof rh);
        rest = rest.subspan(sizeof rh);
        if (rh.key_size > rest.size() || rh.value_size > rest.size() - rh.key_size) {
            throw_error(errc::malformed_message, "ddict batch: a record overruns the message");
        }
        const auto key = rest.first(rh.key_size);
        const auto value = rest.subspan(rh.key_size, rh.value_size);
        rest = rest.subspan(rh.key_size + rh.value_size);
        if (b.status != 0) {
            continue;  // after an error the rest of the batch is discarded
        }
        try {
            check_writable();
            check_room(key.size() + value.size());
            auto e = copy_entry(key, value);
            const auto o = set_.put(p.h.checkpoint, p.h.client, e, (rh.flags & flag_persist) != 0);
            if (o == outcome::retired) {
                throw_error(errc::checkpoint_retired,
                            fmt::format("ddict batch: checkpoint {} is retired on manager {}",
                                        p.h.checkpoint, id_));
            }
            if (o == outcome::deferred) {
                throw_error(errc::invalid_operation,
                            fmt::format("ddict batch: checkpoint {} cannot be created on manager "
                                        "{} yet (a batch never waits)",
                                        p.h.checkpoint, id_));
            }
            ++b.stored;
        } catch (const error& e) {
            b.status = static_cast<std::uint16_t>(e.code().value());
            b.info = e.what();
            const auto suffix = ": " + e.code().message();
            if (b.info.ends_with(suffix)) {
                b.info.resize(b.info.size() - suffix.size());
            }
        }
    }
    retry_deferred();
}

void manager::do_batch_end(const pending& p)
{
    const auto found = batches_.find({p.h.client, p.h.arg});
    if (found == batches_.end()) {
        // Records of an empty batch never came: nothing stored.
        reply(p.h, errc::ok, {}, 0);
        return;
    }
    const auto b = std::move(found->second);
    batches_.erase(found);
    reply(p.h, static_cast<errc>(b.status), b.info, b.stored);
}

void manager::do_stats(const pending& p)
{
    ddict_stats s;
    s.manager_id = id_;
    s.node = node_;
    s.hostname = hostname_;
    s.total_bytes = share_;
    s.used_bytes = set_.stored_bytes();
    s.free_bytes = share_ > s.used_bytes ? share_ - s.used_bytes : 0;
    s.utilization =
        share_ == 0 ? 0 : static_cast<double>(s.used_bytes) / static_cast<double>(share_);
    s.num_keys = set_.entry_count();
    s.pool_free_bytes = pool_.stats().free_bytes;
    const auto body = encode(s);
    reply(p.h, errc::ok, {}, 0, 0, body);
}

// ---- entries ---------------------------------------------------------------------------------

void manager::check_writable() const
{
    if (read_only_) {
        throw_error(errc::invalid_operation,
                    fmt::format("ddict {} is a read-only replay: writes are refused",
                                options_.name));
    }
    if (frozen_) {
        throw_error(errc::invalid_operation,
                    fmt::format("ddict {} is frozen: writes are refused (unfreeze it first)",
                                options_.name));
    }
}

void manager::check_room(std::uint64_t more) const
{
    const auto limit = static_cast<double>(share_) * options_.full_threshold;
    if (static_cast<double>(set_.stored_bytes() + more) > limit) {
        throw_error(errc::ddict_full,
                    fmt::format("ddict {}: manager {} is full ({} of {} bytes used, threshold "
                                "{:.0f}%)",
                                options_.name, id_, set_.stored_bytes(), share_,
                                options_.full_threshold * 100));
    }
}

entry manager::copy_entry(byte_view key, byte_view value)
{
    auto block = pool_.try_allocate(std::max<std::uint64_t>(key.size() + value.size(), 1));
    if (!block) {
        throw_error(errc::ddict_full,
                    fmt::format("ddict {}: manager {} has no block of {} bytes free",
                                options_.name, id_, key.size() + value.size()));
    }
    if (!key.empty()) {
        std::memcpy(block->data(), key.data(), key.size());
    }
    if (!value.empty()) {
        std::memcpy(block->data() + key.size(), value.data(), value.size());
    }
    return entry(std::move(*block), 0, static_cast<std::uint32_t>(key.size()), value.size());
}

entry manager::make_entry(pending& p, channels::message& msg)
{
    if (p.key.empty()) {
        throw_error(errc::invalid_argument, "ddict put: empty key");
    }
    auto& block = msg.block();
    if (block && pool_.contains(block)) {
        check_room(block.capacity());
        const auto key_offset = static_cast<std::uint32_t>(p.key.data() - block.data());
        return entry(std::move(block), key_offset, static_cast<std::uint32_t>(p.key.size()),
                     p.body.size());
    }
    check_room(p.key.size() + p.body.size());
    return copy_entry(p.key, p.body);
}

// ---- replies ----------------------------------------------------------------------------------

void manager::reply(const request_header& h, errc status, std::string_view info,
                    std::uint64_t value, std::uint64_t aux, byte_view body)
{
    const auto link = clients_.find(h.client);
    if (link == clients_.end()) {
        spdlog::debug("ddict manager {}: no reply channel for client {}", id_, h.client);
        return;
    }
    auto& ch = link->second.reply;
    response_header rh{};
    rh.code = h.code;
    rh.status = static_cast<std::uint16_t>(status);
    rh.info_size = static_cast<std::uint32_t>(info.size());
    rh.tag = h.tag;
    rh.value = value;
    rh.aux = aux;
    const auto n = sizeof rh + info.size() + body.size();
    const auto fill = [&](std::byte* out) {
        std::memcpy(out, &rh, sizeof rh);
        if (!info.empty()) {
            std::memcpy(out + sizeof rh, info.data(), info.size());
        }
        if (!body.empty()) {
            std::memcpy(out + sizeof rh + info.size(), body.data(), body.size());
        }
    };
    try {
        if (n <= ch.block_size() || !ch.is_local()) {
            out_.resize(n);
            fill(out_.data());
            if (!ch.try_send(out_)) {
                ch.send(out_, reply_patience);
            }
            return;
        }
        // A large reply goes straight into a block of the client's pool.
        auto block = ch.pool().try_allocate(n);
        if (!block) {
            block = ch.pool().allocate(n, reply_patience);
        }
        fill(block->data());
        ch.send(*block, reply_patience);
    } catch (const error& e) {
        if (e.is(errc::not_found) || e.is(errc::peer_lost)) {
            clients_.erase(link);  // the client is gone
            return;
        }
        spdlog::warn("ddict {} manager {}: reply to client {} dropped: {}", options_.name, id_,
                     h.client, e.what());
        if (status == errc::ok && !body.empty()) {
            // Tell the client why its value did not come.
            const bool timed_out = e.code().value() == static_cast<int>(errc::timeout);
            reply(h, timed_out ? errc::timeout : errc::message_too_large,
                  fmt::format("ddict manager {}: the reply of {} bytes could not be delivered: {}",
                              id_, n, e.what()));
        }
    }
}

void manager::reply_error(const request_header& h, const std::exception& e)
{
    if (const auto* de = dynamic_cast<const error*>(&e);
        de != nullptr && status_of(*de, errc::ok) != errc::ok) {
        // what() ends with ": <the code's message>"; the client's error adds it again.
        std::string_view text = de->what();
        const auto suffix = ": " + de->code().message();
        if (text.ends_with(suffix)) {
            text.remove_suffix(suffix.size());
        }
        reply(h, static_cast<errc>(de->code().value()), text);
        return;
    }
    reply(h, errc::internal, fmt::format("ddict manager {}: {}", id_, e.what()));
}

void manager::reply_outcome(const request_header& h, outcome o)
{
    switch (o) {
    case outcome::not_found: reply(h, errc::key_not_found, "key not found"); return;
    case outcome::retired:
        reply(h, errc::checkpoint_retired,
              fmt::format("ddict {}: checkpoint {} is retired on manager {} (oldest kept: {})",
                          options_.name, h.checkpoint, id_, set_.oldest()));
        return;
    default: reply(h, errc::ok); return;
    }
}

// ---- persistence ------------------------------------------------------------------------------

void manager::on_retire(std::uint64_t id)
{
    if (id % options_.persist_freq == 0) {
        queue_persist(id, std::nullopt);
    }
}

void manager::queue_persist(std::uint64_t c, std::optional<request_header> requester)
{
    auto job = std::make_unique<persist_job>();
    job->seq = next_job_++;
    job->view.id = c;
    set_.for_each_flagged(c, [&](const entry& e, bool persistent) {
        job->view.entries.push_back({e.key(), e.value(), persistent});
    });
    job->requester = requester;
    // From now on what the set frees may still be read by this job (or an earlier one).
    set_.divert_frees(&job->graveyard);
    {
        std::lock_guard lock(jobs_mutex_);
        jobs_.push_back(std::move(job));
    }
    jobs_cv_.notify_all();
}

void manager::discard(entry&& e)
{
    if (e && !jobs_.empty()) {
        jobs_.back()->graveyard.push_back(std::move(e));
    }
}

void manager::finish_written_jobs()
{
    for (;;) {
        std::unique_ptr<persist_job> job;
        {
            std::lock_guard lock(jobs_mutex_);
            if (jobs_.empty() || !jobs_.front()->written) {
                break;
            }
            job = std::move(jobs_.front());
            jobs_.pop_front();
            if (jobs_.empty()) {
                set_.divert_frees(nullptr);
            }
        }
        if (job->status != errc::ok) {
            spdlog::error("ddict {} manager {}: persisting checkpoint {} failed: {}",
                          options_.name, id_, job->view.id, job->error);
        }
        if (job->requester) {
            reply(*job->requester, job->status, job->error, job->bytes);
        }
        // job (its views, then its graveyard) goes here
    }
}

void manager::drain_jobs()
{
    {
        std::unique_lock lock(jobs_mutex_);
        jobs_cv_.wait(lock, [&] {
            return std::all_of(jobs_.begin(), jobs_.end(),
                               [](const auto& j) { return j->written; });
        });
    }
    finish_written_jobs();
}

void manager::writer_loop()
{
    channels::channel self;
    try {
        self = channels::channel::attach(requests_.descriptor());
    } catch (const std::exception& e) {
        spdlog::warn("ddict {} manager {}: persistence cannot wake the manager: {}",
                     options_.name, id_, e.what());
    }
    for (;;) {
        persist_job* job = nullptr;
        {
            std::unique_lock lock(jobs_mutex_);
            const auto next = [&]() -> persist_job* {
                for (auto& j : jobs_) {
                    if (!j->written) {
                        return j.get();
                    }
                }
                return nullptr;
            };
            jobs_cv_.wait(lock, [&] { return writer_stop_ || next() != nullptr; });
            job = next();
            if (job == nullptr) {
                return;  // stopping, nothing left to write
            }
        }
        std::uint64_t bytes = 0;
        errc status = errc::ok;
        std::string error;
        try {
            bytes = persister_->write(meta(), job->view);
        } catch (const dragonx::error& e) {
            status = status_of(e);
            error = e.what();
        } catch (const std::exception& e) {
            status = errc::internal;
            error = e.what();
        }
        {
            std::lock_guard lock(jobs_mutex_);
            job->written = true;
            job->bytes = bytes;
            job->status = status;
            job->error = std::move(error);
        }
        jobs_cv_.notify_all();
        if (self) {
            request_header h{};
            h.code = op::persist_done;
            try {
                (void)self.try_send(std::as_bytes(std::span(&h, 1)));  // a wake-up only
            } catch (const std::exception&) {
            }
        }
    }
}

void manager::do_persist(const pending& p)
{
    if (!persister_) {
        reply(p.h, errc::invalid_operation,
              fmt::format("ddict {} has no persister (ddict_options::persister)", options_.name));
        return;
    }
    if (options_.persist_count == 0) {
        reply(p.h, errc::invalid_operation,
              fmt::format("ddict {}: persist_count is 0: nothing may be persisted",
                          options_.name));
        return;
    }
    const auto c = p.h.checkpoint;
    if (c < set_.oldest() || c > set_.newest()) {
        reply(p.h, errc::invalid_operation,
              fmt::format("ddict {}: manager {} holds checkpoints {}..{}, not {}: only a "
                          "checkpoint in the working set can be persisted",
                          options_.name, id_, set_.oldest(), set_.newest(), c));
        return;
    }
    queue_persist(c, p.h);
}

void manager::replace_set(working_set next)
{
    next.on_retire = std::move(set_.on_retire);
    set_ = std::move(next);  // the old set's entries are freed (no job reads them: drained)
}

void manager::load_persisted(std::uint64_t id)
{
    if (!persister_) {
        throw_error(errc::invalid_operation,
                    fmt::format("ddict {} has no persister (ddict_options::persister)",
                                options_.name));
    }
    drain_jobs();
    auto image = persister_->load(id, pool_);  // checked: exactly checkpoint `id`
    replace_set(working_set::restore(set_options(), std::move(image.checkpoints)));
    if (!read_only_) {
        persister_->remove_newer_than(id);
    }
}

void manager::do_restore(const pending& p)
{
    load_persisted(p.h.arg);
    reply(p.h, errc::ok, {}, p.h.arg);
    retry_deferred();
}

void manager::do_advance(const pending& p)
{
    if (!read_only_) {
        reply(p.h, errc::invalid_operation,
              fmt::format("ddict {}: advance() is for read-only replays (read_only)",
                          options_.name));
        return;
    }
    if (options_.persist_freq == 0) {
        reply(p.h, errc::invalid_operation,
              fmt::format("ddict {}: advance() needs persist_freq", options_.name));
        return;
    }
    const auto next = set_.oldest() + options_.persist_freq;
    load_persisted(next);
    reply(p.h, errc::ok, {}, next);
}

// ---- restart ----------------------------------------------------------------------------------

void manager::do_shutdown(const pending& p)
{
    stopping_ = true;
    keep_ = p.h.arg == 1;
}

void manager::keep_for_restart()
{
    const auto name = kept_pool_name(options_.name, id_);
    kept_state state;
    state.working_set_size = options_.working_set_size;
    state.wait_for_keys = options_.wait_for_keys;
    state.wait_for_writers = options_.wait_for_writers;
    state.frozen = frozen_;
    for (const auto& cp : set_.export_all()) {
        auto& k = state.checkpoints.emplace_back();
        k.id = cp.id;
        for (const auto& item : cp.entries) {
            const auto& block = item.value->block();
            k.entries.push_back({block.offset(), block.size(),
                                 static_cast<std::uint32_t>(item.value->key().data() -
                                                            block.data()),
                                 static_cast<std::uint32_t>(item.value->key().size()),
                                 item.value->value().size(), item.persistent});
        }
        k.deleted.assign(cp.deleted.begin(), cp.deleted.end());
        k.writers = cp.writers;
    }
    // Requests still queued are dropped with the channel; their blocks are lost to the pool.
    deferred_.clear();
    incoming_.reset();
    requests_ = {};
    write_checked_file(state_file_of(name), encode(state));
    try {
        pool_.keep(name);
    } catch (...) {
        ::unlink(state_file_of(name).c_str());
        throw;
    }
    spdlog::debug("ddict {} manager {}: kept {} entries in {}", options_.name, id_,
                  set_.entry_count(), name);
    set_.abandon();  // the blocks now belong to the kept pool
    kept_ = kept_manager{id_, name, hostname_, node_};
}

void manager::reclaim(const kept_manager& kept)
{
    const auto path = state_file_of(kept.pool);
    const auto state = decode<kept_state>(read_checked_file(path), "ddict kept state");
    if (state.working_set_size != options_.working_set_size ||
        state.wait_for_keys != options_.wait_for_keys ||
        state.wait_for_writers != options_.wait_for_writers) {
        throw_error(errc::invalid_argument,
                    fmt::format("ddict {}: manager {}'s kept state was made with "
                                "working_set_size {}, wait_for_keys {}, wait_for_writers {}: "
                                "a mismatch with this dictionary's options",
                                options_.name, id_, state.working_set_size, state.wait_for_keys,
                                state.wait_for_writers));
    }
    pool_ = pool::pool::reclaim(kept.pool, {});
    share_ = pool_.size() > pool_overhead ? pool_.size() - pool_overhead : pool_.size();
    std::vector<checkpoint_state> states;
    for (const auto& k : state.checkpoints) {
        auto& st = states.emplace_back();
        st.id = k.id;
        for (const auto& e : k.entries) {
            if (e.key_offset > e.size || e.key_size > e.size - e.key_offset ||
                e.value_size > e.size - e.key_offset - e.key_size) {
                throw_error(errc::corrupt_file,
                            fmt::format("ddict {}: manager {}'s kept state has an entry "
                                        "outside its block",
                                        options_.name, id_));
            }
            st.entries.emplace_back(entry(pool_.attach_allocation(e.offset, e.size),
                                          e.key_offset, e.key_size, e.value_size),
                                    e.persistent);
        }
        st.deleted = k.deleted;
        st.writers = k.writers;
    }
    replace_set(working_set::restore(set_options(), std::move(states)));
    frozen_ = frozen_ || state.frozen;
    ::unlink(path.c_str());
}

// ---- synchronize ------------------------------------------------------------------------------

void manager::do_sync_to(const pending& p)
{
    const auto req = decode<sync_request>(p.body, "ddict sync_to");
    drain_jobs();
    const auto all = set_.export_all();
    std::vector<checkpoint_view> views;
    views.reserve(all.size());
    for (const auto& cp : all) {
        auto& v = views.emplace_back();
        v.id = cp.id;
        for (const auto& item : cp.entries) {
            v.entries.push_back({item.value->key(), item.value->value(), item.persistent});
        }
        v.deleted.assign(cp.deleted.begin(), cp.deleted.end());
        v.writers = cp.writers;
    }
    auto target = channels::channel::attach(req.target);
    chunk_sink sink(target, p.h, req.reply_channel, image_size(views));
    write_image(meta(), views, sink);
    sink.flush();
    // The target answers the client.
}

void manager::answer_sync(const incoming_state& in, errc status, std::string_view info)
{
    response_header rh{};
    rh.code = op::sync_to;
    rh.status = static_cast<std::uint16_t>(status);
    rh.info_size = static_cast<std::uint32_t>(info.size());
    rh.tag = in.tag;
    std::vector<std::byte> msg(sizeof rh + info.size());
    std::memcpy(msg.data(), &rh, sizeof rh);
    std::memcpy(msg.data() + sizeof rh, info.data(), info.size());
    try {
        channels::channel::attach(in.reply_channel).send(msg, reply_patience);
    } catch (const std::exception& e) {
        spdlog::warn("ddict {} manager {}: cannot answer a synchronize: {}", options_.name, id_,
                     e.what());
    }
}

void manager::adopt_image(loaded_image image)
{
    const auto want = meta();
    if (image.meta.working_set_size != want.working_set_size ||
        image.meta.wait_for_keys != want.wait_for_keys ||
        image.meta.wait_for_writers != want.wait_for_writers) {
        throw_error(errc::invalid_argument,
                    fmt::format("ddict {}: manager {} cannot take the state of a dictionary "
                                "with other checkpoint options (working_set_size {}, "
                                "wait_for_keys {}, wait_for_writers {})",
                                options_.name, id_, image.meta.working_set_size,
                                image.meta.wait_for_keys, image.meta.wait_for_writers));
    }
    replace_set(working_set::restore(set_options(), std::move(image.checkpoints)));
}

void manager::do_set_state(const pending& p)
{
    const auto offset = p.h.arg;
    const auto total = p.h.arg2;
    if (offset == 0) {
        // A new image: what this manager held is discarded (it is being made a copy).
        incoming_.reset();
        incoming_.emplace();
        incoming_->client = p.h.client;
        incoming_->tag = p.h.tag;
        incoming_->reply_channel.assign(reinterpret_cast<const char*>(p.key.data()),
                                        p.key.size());
        try {
            drain_jobs();
            replace_set(working_set(set_options()));
            incoming_->loader = std::make_unique<image_loader>(pool_, total);
        } catch (const error& e) {
            incoming_->status = status_of(e);
            incoming_->failed = e.what();
        }
    }
    if (!incoming_ || incoming_->tag != p.h.tag || incoming_->client != p.h.client) {
        return;  // the rest of an image given up on
    }
    auto& in = *incoming_;
    if (in.failed.empty()) {
        try {
            if (offset != in.next_offset) {
                throw_error(errc::malformed_message,
                            fmt::format("ddict synchronize: chunk at {} where {} was due",
                                        offset, in.next_offset));
            }
            in.loader->feed(p.body);
            in.next_offset += p.body.size();
        } catch (const error& e) {
            in.status = status_of(e);
            in.failed = e.what();
            in.loader.reset();
        }
    }
    if (in.answered || (in.next_offset < total && in.failed.empty())) {
        return;  // more to come, or the rest of an image already answered (failed)
    }
    if (in.failed.empty()) {
        try {
            adopt_image(in.loader->take());
        } catch (const error& e) {
            in.status = status_of(e);
            in.failed = e.what();
        }
        in.loader.reset();
    }
    answer_sync(in, in.failed.empty() ? errc::ok : in.status, in.failed);
    in.answered = true;
    if (in.failed.empty()) {
        incoming_.reset();
    }
    retry_deferred();
}

}  // namespace dragonx::dict
