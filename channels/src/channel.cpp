// channel.cpp - local channels in pool memory, and the forwarding of remote ones.
#include <dragonx/channels/channel.hpp>

#include <cstring>
#include <limits>
#include <string>

#include <spdlog/spdlog.h>

#include <dragonx/channels/transport.hpp>
#include <dragonx/common/descriptor.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>
#include <dragonx/common/random.hpp>
#include <dragonx/common/robust_mutex.hpp>
#include <dragonx/common/wire.hpp>

#include "channel_state.hpp"
#include "pool_object.hpp"

namespace dragonx::channels {
namespace detail {

namespace {

void write_descriptor(channel_state& s)
{
    byte_writer w;
    w.put_string(s.block_descriptor);
    w.put(s.id);
    w.put(s.nonce);
    w.put(s.capacity);
    w.put(s.block_size);
    s.descriptor = seal_descriptor(descriptor_kind::channel, descriptor_version, w.bytes());
}

// Publishes one message (the caller fills the slot through `fill`) if there is room.
template <class Fill>
bool enqueue(channel_state& s, Fill&& fill)
{
    channel_header& h = *s.header;
    {
        robust_lock lock(&h.send_lock);
        const std::uint64_t tail = h.tail.load(std::memory_order_relaxed);
        // acquire: pairs with the receivers' release of head, so the slot is free to reuse.
        if (tail - h.head.load(std::memory_order_acquire) >= s.capacity) {
            return false;
        }
        fill(s.slot(tail));
        // release: publishes the slot contents to receivers (pairs with their acquire).
        h.tail.store(tail + 1, std::memory_order_release);
    }
    wake_sleepers(h.recv_seq, h.recv_sleepers);
    return true;
}

void fill_inline(channel_state& s, slot_header* slot, std::span<const std::byte> bytes)
{
    slot->kind = slot_kind::inline_bytes;
    slot->length = bytes.size();
    if (!bytes.empty()) {
        std::memcpy(s.payload(slot), bytes.data(), bytes.size());
    }
}

void fill_block(slot_header* slot, const pool::allocation& block)
{
    slot->kind = slot_kind::pool_block;
    slot->length = block.size();
    slot->offset = block.offset();
}

// What a receiver took out of a slot, decided under the receive lock.
struct taken {
    slot_kind kind;
    std::uint64_t length;
    std::uint64_t offset;
};

// Consumes the next message if `accept` (called under the lock with its slot) returns
// true; nullopt if the channel is empty or `accept` declined.
template <class Accept>
std::optional<taken> dequeue(channel_state& s, Accept&& accept)
{
    channel_header& h = *s.header;
    std::optional<taken> out;
    {
        robust_lock lock(&h.recv_lock);
        const std::uint64_t head = h.head.load(std::memory_order_relaxed);
        // acquire: pairs with the senders' release of tail, so the slot contents are visible.
        if (head == h.tail.load(std::memory_order_acquire)) {
            return std::nullopt;
        }
        slot_header* slot = s.slot(head);
        if (!accept(slot)) {
            return std::nullopt;
        }
        out = taken{slot->kind, slot->length, slot->offset};
        // release: the slot may be reused by senders from here on.
        h.head.store(head + 1, std::memory_order_release);
    }
    wake_sleepers(h.send_seq, h.send_sleepers);
    return out;
}

void check_options(const channel_options& o)
{
    if (o.capacity < 1 || o.capacity > max_capacity) {
        throw_error(errc::invalid_argument, "channel capacity " + std::to_string(o.capacity) +
                                                " is outside [1, " +
                                                std::to_string(max_capacity) + "]");
    }
    if (o.block_size < min_block_size || o.block_size > max_block_size) {
        throw_error(errc::invalid_argument, "channel block size " + std::to_string(o.block_size) +
                                                " is outside [" + std::to_string(min_block_size) +
                                                ", " + std::to_string(max_block_size) + "]");
    }
}

// Copies a message that came through the transport into the caller's buffer.
std::size_t deliver(const channel_state& s, const std::vector<std::byte>& bytes,
                    std::span<std::byte> buffer)
{
    if (bytes.size() > buffer.size()) {
        throw_error(errc::message_too_large, s.name() + ": message lost in transit: " +
                                                 std::to_string(bytes.size()) +
                                                 " bytes for a buffer of " +
                                                 std::to_string(buffer.size()));
    }
    if (!bytes.empty()) {
        std::memcpy(buffer.data(), bytes.data(), bytes.size());
    }
    return bytes.size();
}

[[noreturn]] void throw_timeout(const channel_state& s, const char* what)
{
    throw_error(errc::timeout, s.name() + ": " + what);
}

}  // namespace
}  // namespace detail

using detail::channel_header;
using detail::channel_state;
using detail::slot_header;
using detail::slot_kind;

channel::channel() noexcept = default;
channel::channel(std::unique_ptr<channel_state> state) noexcept : state_(std::move(state)) {}
channel::channel(channel&&) noexcept = default;

channel& channel::operator=(channel&& other) noexcept
{
    if (this != &other) {
        destroy_if_owner();
        state_ = std::move(other.state_);
    }
    return *this;
}

channel::~channel()
{
    destroy_if_owner();
}

void channel::destroy_if_owner() noexcept
{
    // The owner destroys the channel, unless some other handle did already.
    if (state_ && state_->owner && state_->is_local() && state_->header->nonce == state_->nonce) {
        try {
            destroy();
        } catch (const std::exception& e) {
            log::get("channels").error("destroying a channel: {}", e.what());
        }
    }
}

channel channel::create(const pool::pool& pool, const channel_options& options)
{
    detail::check_options(options);
    auto s = std::make_unique<channel_state>();
    s->pool = pool::pool::attach(pool.descriptor());
    s->id = options.id ? *options.id : random_u64();
    s->nonce = random_u64() | 1;  // never 0: 0 marks a destroyed channel
    s->capacity = options.capacity;
    s->block_size = options.block_size;
    s->node = pool.node();
    s->owner = true;

    const std::uint64_t bytes = detail::channel_bytes(options.capacity, options.block_size);
    auto block = bytes <= s->pool.size() ? s->pool.try_allocate(bytes) : std::nullopt;
    if (!block) {
        throw_error(errc::pool_full, "cannot create a channel of " + std::to_string(bytes) +
                                         " bytes: no room in pool " + pool.name());
    }
    std::memset(block->data(), 0, detail::slots_offset);
    auto* h = reinterpret_cast<channel_header*>(block->data());
    h->magic = detail::channel_magic;
    h->version = detail::channel_layout_version;
    h->channel_id = s->id;
    h->nonce = s->nonce;
    h->capacity = options.capacity;
    h->block_size = options.block_size;
    h->slot_stride = detail::slot_stride_for(options.block_size);
    init_robust_mutex(&h->send_lock);
    init_robust_mutex(&h->recv_lock);
    h->ready.store(1, std::memory_order_release);

    s->header = h;
    s->slots = block->data() + detail::slots_offset;
    s->block_descriptor = block->release();
    detail::write_descriptor(*s);
    return channel(std::move(s));
}

channel channel::attach(std::string_view descriptor, transport* remote)
{
    const auto payload =
        open_descriptor(descriptor, descriptor_kind::channel, detail::descriptor_version);
    byte_reader r(payload, errc::malformed_descriptor, "channel descriptor");
    auto s = std::make_unique<channel_state>();
    s->block_descriptor = r.get_string();
    s->id = r.get<std::uint64_t>();
    s->nonce = r.get<std::uint64_t>();
    s->capacity = r.get<std::uint32_t>();
    s->block_size = r.get<std::uint32_t>();
    r.expect_end();
    if (s->capacity < 1 || s->capacity > detail::max_capacity ||
        s->block_size < detail::min_block_size || s->block_size > detail::max_block_size) {
        r.fail("capacity or block size out of range");
    }
    const auto home = detail::locate_object(s->block_descriptor, s->name());
    s->node = home.node;
    s->descriptor = std::string(descriptor);
    if (!home.local) {
        s->remote = remote;  // operations go through the transport (or fail clearly)
        return channel(std::move(s));
    }
    auto borrowed = detail::borrow_block(home, s->block_descriptor, s->name());
    s->pool = std::move(borrowed.pool);
    auto* h = reinterpret_cast<channel_header*>(borrowed.data);
    const bool size_matches =
        borrowed.size == detail::channel_bytes(s->capacity, s->block_size);
    if (h->magic != detail::channel_magic || h->version != detail::channel_layout_version ||
        h->ready.load(std::memory_order_acquire) != 1 || h->nonce != s->nonce ||
        h->channel_id != s->id || h->capacity != s->capacity ||
        h->block_size != s->block_size || !size_matches ||
        h->slot_stride != detail::slot_stride_for(s->block_size)) {
        throw_error(errc::not_found, s->name() + " was destroyed (its memory now holds "
                                                 "something else)");
    }
    s->header = h;
    s->slots = reinterpret_cast<std::byte*>(h) + detail::slots_offset;
    return channel(std::move(s));
}

channel_state& channel::state() const
{
    if (!state_) {
        throw_error(errc::invalid_argument, "use of an empty channel handle");
    }
    return *state_;
}

std::string channel::descriptor() const { return state().descriptor; }
std::uint64_t channel::id() const { return state().id; }
std::uint32_t channel::node() const { return state().node; }
bool channel::is_local() const { return state().is_local(); }
std::uint32_t channel::capacity() const { return state().capacity; }
std::uint32_t channel::block_size() const { return state().block_size; }
bool channel::owner() const { return state().owner; }
void channel::disown() { state().owner = false; }
void channel::set_wait_policy(const wait_policy& policy) { state().policy = policy; }

pool::pool& channel::pool() const
{
    auto& s = state();
    if (!s.is_local()) {
        throw_error(errc::not_local, s.name() + " lives on node " + std::to_string(s.node) +
                                         ": its pool is not mapped here");
    }
    return s.pool;
}

std::uint64_t channel::size() const
{
    auto& s = state();
    if (!s.is_local()) {
        return s.remote_or_throw().size(s.descriptor);
    }
    s.check_alive();
    const std::uint64_t head = s.header->head.load(std::memory_order_acquire);
    return s.header->tail.load(std::memory_order_acquire) - head;
}

// ---- sending ------------------------------------------------------------------------------

bool channel::try_send(std::span<const std::byte> bytes)
{
    auto& s = state();
    if (!s.is_local()) {
        return s.remote_or_throw().send(s.descriptor, bytes, std::chrono::nanoseconds(0));
    }
    s.check_alive();
    if (bytes.size() <= s.block_size) {
        return detail::enqueue(s, [&](slot_header* slot) { detail::fill_inline(s, slot, bytes); });
    }
    if (!s.has_room()) {
        return false;
    }
    auto block = s.pool.try_allocate(bytes.size());
    if (!block) {
        return false;
    }
    std::memcpy(block->data(), bytes.data(), bytes.size());
    return try_send(*block);  // on failure the block frees itself
}

void channel::send(std::span<const std::byte> bytes, timeout limit)
{
    auto& s = state();
    if (!s.is_local()) {
        if (!s.remote_or_throw().send(s.descriptor, bytes, limit)) {
            detail::throw_timeout(s, "still full at the timeout");
        }
        return;
    }
    const auto until = deadline::after(limit);
    if (bytes.size() > s.block_size) {
        auto block = s.pool.allocate(bytes.size(), until.remaining());
        std::memcpy(block.data(), bytes.data(), bytes.size());
        send(block, until.remaining());
        return;
    }
    for (;;) {
        if (try_send(bytes)) {
            return;
        }
        if (!s.wait_for_room(until)) {
            detail::throw_timeout(s, "still full at the timeout");
        }
    }
}

bool channel::try_send(pool::allocation& block)
{
    auto& s = state();
    if (!block) {
        throw_error(errc::invalid_argument, "send of an empty allocation handle");
    }
    if (!s.is_local() || !s.pool.contains(block)) {
        // Not a block of our pool: it travels as a copy, and is freed once sent.
        if (!try_send(std::span<const std::byte>(block.data(), block.size()))) {
            return false;
        }
        block.free();
        return true;
    }
    s.check_alive();
    if (!detail::enqueue(s, [&](slot_header* slot) { detail::fill_block(slot, block); })) {
        return false;
    }
    block.disown();  // the receiver owns it now
    return true;
}

void channel::send(pool::allocation& block, timeout limit)
{
    auto& s = state();
    if (!s.is_local()) {
        // Across nodes a block travels as a copy; it is freed once sent.
        send(std::span<const std::byte>(block.data(), block.size()), limit);
        block.free();
        return;
    }
    const auto until = deadline::after(limit);
    for (;;) {
        if (try_send(block)) {
            return;
        }
        if (!s.wait_for_room(until)) {
            detail::throw_timeout(s, "still full at the timeout");
        }
    }
}

// ---- receiving ----------------------------------------------------------------------------

std::optional<std::size_t> channel::try_recv(std::span<std::byte> buffer)
{
    auto& s = state();
    if (!s.is_local()) {
        auto bytes = s.remote_or_throw().recv(s.descriptor, std::chrono::nanoseconds(0),
                                              buffer.size());
        if (!bytes) {
            return std::nullopt;
        }
        return detail::deliver(s, *bytes, buffer);
    }
    s.check_alive();
    std::uint64_t too_large = 0;
    const auto got = detail::dequeue(s, [&](slot_header* slot) {
        if (slot->length > buffer.size()) {
            too_large = slot->length;
            return false;
        }
        if (slot->kind == slot_kind::inline_bytes && slot->length != 0) {
            std::memcpy(buffer.data(), s.payload(slot), slot->length);
        }
        return true;
    });
    if (too_large != 0) {
        throw_error(errc::message_too_large,
                    s.name() + ": the next message has " + std::to_string(too_large) +
                        " bytes, the buffer " + std::to_string(buffer.size()) +
                        " (the message stays in the channel)");
    }
    if (!got) {
        return std::nullopt;
    }
    if (got->kind == slot_kind::pool_block) {
        auto block = s.pool.attach_allocation(got->offset, got->length);
        std::memcpy(buffer.data(), block.data(), got->length);
    }
    return got->length;
}

std::size_t channel::recv(std::span<std::byte> buffer, timeout limit)
{
    auto& s = state();
    if (!s.is_local()) {
        auto bytes = s.remote_or_throw().recv(s.descriptor, limit, buffer.size());
        if (!bytes) {
            detail::throw_timeout(s, "still empty at the timeout");
        }
        return detail::deliver(s, *bytes, buffer);
    }
    const auto until = deadline::after(limit);
    for (;;) {
        if (auto n = try_recv(buffer)) {
            return *n;
        }
        if (!s.wait_for_message(until)) {
            detail::throw_timeout(s, "still empty at the timeout");
        }
    }
}

std::optional<pool::allocation> channel::try_recv_block()
{
    auto& s = state();
    if (!s.is_local()) {
        return s.remote_or_throw().recv_block(s.descriptor, std::chrono::nanoseconds(0));
    }
    s.check_alive();
    std::optional<pool::allocation> copy;
    bool no_room = false;
    const auto got = detail::dequeue(s, [&](slot_header* slot) {
        if (slot->kind != slot_kind::inline_bytes) {
            return true;
        }
        copy = s.pool.try_allocate(slot->length);
        if (!copy) {
            no_room = true;
            return false;
        }
        std::memcpy(copy->data(), s.payload(slot), slot->length);
        return true;
    });
    if (no_room) {
        throw_error(errc::pool_full, s.name() + ": no room in the pool for a copy of the next "
                                                "message (it stays in the channel)");
    }
    if (!got) {
        return std::nullopt;
    }
    if (got->kind == slot_kind::pool_block) {
        return s.pool.attach_allocation(got->offset, got->length);
    }
    return copy;
}

pool::allocation channel::recv_block(timeout limit)
{
    auto& s = state();
    if (!s.is_local()) {
        auto block = s.remote_or_throw().recv_block(s.descriptor, limit);
        if (!block) {
            detail::throw_timeout(s, "still empty at the timeout");
        }
        return std::move(*block);
    }
    const auto until = deadline::after(limit);
    for (;;) {
        if (auto block = try_recv_block()) {
            return std::move(*block);
        }
        if (!s.wait_for_message(until)) {
            detail::throw_timeout(s, "still empty at the timeout");
        }
    }
}

std::optional<message> channel::try_take(std::span<std::byte> scratch)
{
    return try_take(scratch, std::numeric_limits<std::size_t>::max());
}

std::optional<message> channel::try_take(std::span<std::byte> scratch, std::size_t max_bytes)
{
    auto& s = state();
    if (!s.is_local()) {
        auto bytes =
            s.remote_or_throw().recv(s.descriptor, std::chrono::nanoseconds(0), max_bytes);
        if (!bytes) {
            return std::nullopt;
        }
        return message(std::move(*bytes));
    }
    s.check_alive();
    message m;
    std::uint64_t too_large = 0;
    const auto got = detail::dequeue(s, [&](slot_header* slot) {
        if (slot->length > max_bytes) {
            too_large = slot->length;
            return false;
        }
        if (slot->kind == slot_kind::inline_bytes && slot->length != 0) {
            const std::byte* payload = s.payload(slot);
            if (slot->length <= scratch.size()) {
                std::memcpy(scratch.data(), payload, slot->length);
            } else {
                m.owned_.assign(payload, payload + slot->length);
            }
        }
        return true;
    });
    if (too_large != 0) {
        throw_error(errc::message_too_large,
                    s.name() + ": the next message has " + std::to_string(too_large) +
                        " bytes, more than the " + std::to_string(max_bytes) +
                        " asked for (the message stays in the channel)");
    }
    if (!got) {
        return std::nullopt;
    }
    if (got->kind == slot_kind::pool_block) {
        m.block_ = s.pool.attach_allocation(got->offset, got->length);
        m.bytes_ = std::span<const std::byte>(m.block_.data(), got->length);
    } else if (got->length <= scratch.size()) {
        m.bytes_ = scratch.first(got->length);
    } else {
        m.bytes_ = m.owned_;
    }
    return m;
}

message channel::take(std::span<std::byte> scratch, timeout limit)
{
    auto& s = state();
    if (!s.is_local()) {
        auto bytes = s.remote_or_throw().recv(s.descriptor, limit,
                                              std::numeric_limits<std::size_t>::max());
        if (!bytes) {
            detail::throw_timeout(s, "still empty at the timeout");
        }
        return message(std::move(*bytes));
    }
    const auto until = deadline::after(limit);
    for (;;) {
        if (auto m = try_take(scratch)) {
            return std::move(*m);
        }
        if (!s.wait_for_message(until)) {
            detail::throw_timeout(s, "still empty at the timeout");
        }
    }
}

std::optional<std::size_t> channel::peek_size() const
{
    auto& s = state();
    if (!s.is_local()) {
        throw_error(errc::no_transport, s.name() + ": peek is not available across nodes");
    }
    s.check_alive();
    robust_lock lock(&s.header->recv_lock);
    const std::uint64_t head = s.header->head.load(std::memory_order_relaxed);
    if (head == s.header->tail.load(std::memory_order_acquire)) {
        return std::nullopt;
    }
    return s.slot(head)->length;
}

bool channel::poll(poll_event event, timeout limit) const
{
    auto& s = state();
    if (!s.is_local()) {
        return s.remote_or_throw().poll(s.descriptor, event, limit);
    }
    s.check_alive();
    const auto until = deadline::after(limit);
    bool happened = false;
    switch (event) {
    case poll_event::readable: happened = s.wait_for_message(until); break;
    case poll_event::writable: happened = s.wait_for_room(until); break;
    case poll_event::empty: happened = s.wait_for_empty(until); break;
    }
    s.check_alive();
    return happened;
}

// ---- lifetime -----------------------------------------------------------------------------

void channel::destroy()
{
    auto& s = state();
    if (!s.is_local()) {
        throw_error(errc::not_local, s.name() + " can only be destroyed on its own node");
    }
    s.check_alive();
    channel_header& h = *s.header;
    {
        robust_lock send_lock(&h.send_lock);
        robust_lock recv_lock(&h.recv_lock);
        h.destroyed.store(1, std::memory_order_release);
        h.nonce = 0;
        // Blocks still queued belong to nobody else: free them with the channel.
        for (std::uint64_t i = h.head.load(); i != h.tail.load(); ++i) {
            const slot_header* slot = s.slot(i);
            if (slot->kind == slot_kind::pool_block) {
                try {
                    s.pool.attach_allocation(slot->offset, slot->length).free();
                } catch (const dragonx::error& e) {
                    log::get("channels").error("{}: freeing a queued block: {}", s.name(),
                                               e.what());
                }
            }
        }
    }
    wake_sleepers(h.recv_seq, h.recv_sleepers);
    wake_sleepers(h.send_seq, h.send_sleepers);
    s.pool.attach_allocation(s.block_descriptor).free();
    state_.reset();
}

}  // namespace dragonx::channels
