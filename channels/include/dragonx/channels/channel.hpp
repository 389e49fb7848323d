// channel.hpp - channels: bounded multi-process message queues in shared memory.
//
// A channel lives in one allocation of a pool: a header and a ring of `capacity` slots of
// `block_size` bytes. Any number of processes and threads send and receive at once; messages
// come out in the order they went in (FIFO) and each is received exactly once. A message of
// up to block_size bytes is copied into a slot; a larger one is copied into a block of the
// channel's pool, and a block of that pool can be handed over without copying at all
// (ownership moves to the receiver).
//
//   auto ch = dragonx::channels::channel::create(pool, {.capacity = 64, .block_size = 256});
//   ch.send(bytes, 1s);                                  // waits for space up to 1 s
//   auto other = dragonx::channels::channel::attach(ch.descriptor());   // any process
//   std::size_t n = other.recv(buffer, dragonx::forever);
//
// Notes:
// - Timeouts: dragonx::forever waits as long as it takes, 0 tries once, negative is an error.
//   try_* calls return values for "full" and "empty"; blocking calls throw errc::timeout.
// - Waiting spins briefly, then yields, then sleeps on a futex (wait_policy); senders make no
//   system call unless a receiver sleeps, and the other way round.
// - A sender or receiver killed at any point leaves the channel usable by the others: a
//   message is either completely sent or not at all, and a receiver killed before taking a
//   message leaves it for the next one.
// - The descriptor names the node that owns the channel. On another node, operations go
//   through a transport (transport.hpp): the one given to attach(), else the default one
//   (under dragonx run, the node's transport agent); without one they throw
//   errc::no_transport.
// - A channel handle must outlive the allocations it returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/deadline.hpp>
#include <dragonx/common/wait.hpp>
#include <dragonx/pool/pool.hpp>

namespace dragonx::channels {

class transport;

namespace detail {
struct channel_state;
}

struct channel_options {
    /// Messages the channel holds at most, in [1, 2^24].
    std::uint32_t capacity = 100;
    /// Bytes a message may carry in its slot, in [8, 64 MiB]; larger messages travel in
    /// blocks of the pool.
    std::uint32_t block_size = 1024;
    /// Channel id; default: random.
    std::optional<std::uint64_t> id;
};

/// What poll() waits for.
enum class poll_event {
    readable,  // at least one message
    writable,  // room for at least one message
    empty,     // no message at all
};

/// One message taken by channel::take(): its bytes sit in the scratch buffer given to
/// take() (when they fit), in a block of the channel's pool owned by this object (large and
/// handed-over messages), or, across nodes, in memory owned by this object.
class message {
public:
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }
    [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
    /// The pool block holding the bytes, if any; move it out to keep them without a copy.
    [[nodiscard]] pool::allocation& block() noexcept { return block_; }

    message() = default;

private:
    friend class channel;
    // A message that came through the transport: it owns its bytes.
    explicit message(std::vector<std::byte> owned) : owned_(std::move(owned)), bytes_(owned_) {}

    std::vector<std::byte> owned_;
    std::span<const std::byte> bytes_;
    pool::allocation block_;
};

class channel {
public:
    /// Creates a channel in `pool` (which must stay alive while the channel is in use here;
    /// other processes attach the pool themselves). Throws errc::invalid_argument for
    /// options out of range, errc::pool_full if the pool has no room for it.
    [[nodiscard]] static channel create(const pool::pool& pool, const channel_options& options);

    /// Attaches the channel named by `descriptor`. A channel on another node is reached
    /// through `remote` (none: its operations throw errc::no_transport). Throws
    /// errc::malformed_descriptor, errc::not_found (destroyed), errc::wrong_run.
    [[nodiscard]] static channel attach(std::string_view descriptor,
                                        transport* remote = nullptr);

    channel() noexcept;
    channel(channel&&) noexcept;
    channel& operator=(channel&&) noexcept;
    channel(const channel&) = delete;
    channel& operator=(const channel&) = delete;
    /// Detaches; the creating handle also destroys the channel unless it disowned it.
    ~channel();

    [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }
    [[nodiscard]] std::string descriptor() const;
    [[nodiscard]] std::uint64_t id() const;
    [[nodiscard]] std::uint32_t node() const;
    [[nodiscard]] bool is_local() const;
    [[nodiscard]] std::uint32_t capacity() const;
    [[nodiscard]] std::uint32_t block_size() const;
    /// Messages in the channel now (a snapshot).
    [[nodiscard]] std::uint64_t size() const;
    /// The pool the channel lives in (local channels only; throws errc::not_local).
    [[nodiscard]] pool::pool& pool() const;

    // ---- sending ----------------------------------------------------------------------
    /// Sends a copy of `bytes`; false if the channel is full (or, for a message larger than
    /// block_size, the pool has no room right now). Never waits.
    [[nodiscard]] bool try_send(std::span<const std::byte> bytes);
    /// Sends a copy of `bytes`, waiting up to `limit` for room. Throws errc::timeout.
    void send(std::span<const std::byte> bytes, timeout limit);

    /// Hands `block` over to the receiver. A block of this channel's pool travels without a
    /// copy; any other block is copied and freed. On success `block` is left empty; on
    /// failure (false, or an exception) it is untouched.
    [[nodiscard]] bool try_send(pool::allocation& block);
    void send(pool::allocation& block, timeout limit);

    // ---- receiving --------------------------------------------------------------------
    /// Receives the next message into `buffer` and returns its size; nullopt if empty.
    /// Throws errc::message_too_large, leaving the message in the channel, if it does not fit.
    [[nodiscard]] std::optional<std::size_t> try_recv(std::span<std::byte> buffer);
    std::size_t recv(std::span<std::byte> buffer, timeout limit);

    /// Receives the next message as a block of the channel's pool, owned by the caller: the
    /// very block the sender handed over, or a new one holding a copy.
    [[nodiscard]] std::optional<pool::allocation> try_recv_block();
    [[nodiscard]] pool::allocation recv_block(timeout limit);

    /// Takes the next message the cheapest way: copied into `scratch` if it fits, else kept
    /// where it is (the pool block the sender filled or handed over). nullopt if empty.
    /// The message refers to `scratch`: keep the buffer until done with it.
    [[nodiscard]] std::optional<message> try_take(std::span<std::byte> scratch);
    /// As try_take(scratch), but a next message larger than `max_bytes` is not taken:
    /// errc::message_too_large, and it stays in the channel.
    [[nodiscard]] std::optional<message> try_take(std::span<std::byte> scratch,
                                                  std::size_t max_bytes);
    [[nodiscard]] message take(std::span<std::byte> scratch, timeout limit);

    /// Size of the next message, without taking it; nullopt if empty.
    [[nodiscard]] std::optional<std::size_t> peek_size() const;

    // ---- waiting ----------------------------------------------------------------------
    /// Waits up to `limit` for `event`; true if it happened. A hint: another process may
    /// take the message or the room before the caller acts.
    [[nodiscard]] bool poll(poll_event event, timeout limit) const;

    /// How this handle waits (spin, yield, sleep); see wait.hpp.
    void set_wait_policy(const wait_policy& policy);

    // ---- lifetime ---------------------------------------------------------------------
    [[nodiscard]] bool owner() const;
    void disown();
    /// Frees the channel's memory now; messages still queued and their blocks are freed.
    /// Other handles then fail with errc::not_found.
    void destroy();

private:
    friend class channel_set;
    explicit channel(std::unique_ptr<detail::channel_state> state) noexcept;
    void destroy_if_owner() noexcept;
    detail::channel_state& state() const;

    std::unique_ptr<detail::channel_state> state_;
};

}  // namespace dragonx::channels
