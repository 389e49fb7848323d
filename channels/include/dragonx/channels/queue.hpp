// queue.hpp - dragonx::queue<T>: a typed multi-process FIFO queue over a channel.
//
//   auto q = dragonx::queue<std::vector<double>>::create(pool, {.capacity = 64});
//   q.put({1.0, 2.0}, 1s);
//   // any process of the node: auto r = dragonx::queue<std::vector<double>>::attach(desc);
//   std::vector<double> v = r.get(dragonx::forever);
//
// Values go through dragonx::codec<T> (codec.hpp): specialise it for your own types.
//
// Notes:
// - Everything channel.hpp says holds: MPMC, FIFO, exactly once, timeouts (forever, zero,
//   negative is an error), try_* return values, blocking calls throw errc::timeout, a killed
//   process does not wedge the others.
// - An encoded value of up to block_size bytes travels inside the channel's slot; a larger one
//   is encoded straight into a block of the channel's pool, which the receiver decodes from
//   in place: one copy in, one copy out, whatever the size.
// - A message that does not decode as a T (a producer with another T) throws
//   errc::malformed_message from get(); that message is consumed.
// - A queue handle may be used by several threads at once; each keeps its own scratch space.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/codec.hpp>
#include <dragonx/common/deadline.hpp>

namespace dragonx {

/// Capacity (values held at most) and block size (bytes of an encoded value that travel
/// inline) of a queue's channel.
using queue_options = channels::channel_options;

template <class T>
    requires encodable<T> && decodable<T>
class queue {
public:
    /// Creates a queue in `pool`. Throws as channel::create does.
    [[nodiscard]] static queue create(const pool::pool& pool, const queue_options& options = {})
    {
        return queue(channels::channel::create(pool, options));
    }
    /// Attaches the queue named by `descriptor`. Throws as channel::attach does.
    [[nodiscard]] static queue attach(std::string_view descriptor,
                                      channels::transport* remote = nullptr)
    {
        return queue(channels::channel::attach(descriptor, remote));
    }

    queue() noexcept = default;

    /// Puts `value` if there is room now; false if the queue is full (or, for a large value,
    /// the pool has no room right now).
    [[nodiscard]] bool try_put(const T& value)
    {
        encoder& out = encode_value(value);
        if (out.size() <= channel_.block_size() || !channel_.is_local()) {
            return channel_.try_send(write_scratch(out));
        }
        auto block = channel_.pool().try_allocate(out.size());
        if (!block) {
            return false;
        }
        out.write_to(std::span(block->data(), out.size()));
        return channel_.try_send(*block);
    }

    /// Puts `value`, waiting up to `limit` for room. Throws errc::timeout.
    void put(const T& value, timeout limit)
    {
        encoder& out = encode_value(value);
        if (out.size() <= channel_.block_size() || !channel_.is_local()) {
            channel_.send(write_scratch(out), limit);
            return;
        }
        const auto until = deadline::after(limit);
        auto block = channel_.pool().allocate(out.size(), until.remaining());
        out.write_to(std::span(block.data(), out.size()));
        channel_.send(block, until.remaining());
    }

    /// The next value, or nullopt if the queue is empty.
    [[nodiscard]] std::optional<T> try_get()
    {
        auto m = channel_.try_take(scratch());
        if (!m) {
            return std::nullopt;
        }
        return decode_value(*m);
    }

    /// The next value, waiting up to `limit` for one. Throws errc::timeout.
    [[nodiscard]] T get(timeout limit)
    {
        auto m = channel_.take(scratch(), limit);
        return decode_value(m);
    }

    /// Values in the queue now (a snapshot).
    [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(channel_.size()); }
    [[nodiscard]] bool empty() const { return size() == 0; }
    [[nodiscard]] bool full() const { return size() >= channel_.capacity(); }
    [[nodiscard]] std::size_t capacity() const { return channel_.capacity(); }
    /// Waits up to `limit` for a value to be there (a hint: another process may take it).
    [[nodiscard]] bool poll(timeout limit) const
    {
        return channel_.poll(channels::poll_event::readable, limit);
    }

    [[nodiscard]] std::string descriptor() const { return channel_.descriptor(); }
    [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(channel_); }
    /// The channel underneath, e.g. for a channel_set.
    [[nodiscard]] const channels::channel& channel() const noexcept { return channel_; }
    [[nodiscard]] channels::channel& channel() noexcept { return channel_; }
    void disown() { channel_.disown(); }
    /// Frees the queue and the values still in it.
    void destroy() { channel_.destroy(); }

private:
    explicit queue(channels::channel ch) noexcept : channel_(std::move(ch)) {}

    static encoder& encode_value(const T& value)
    {
        thread_local encoder out;
        out.clear();
        codec<T>::encode(value, out);
        return out;
    }

    std::span<std::byte> scratch() const
    {
        thread_local std::vector<std::byte> buffer;
        if (buffer.size() < channel_.block_size()) {
            buffer.resize(channel_.block_size());
        }
        return std::span(buffer).first(channel_.block_size());
    }

    std::span<const std::byte> write_scratch(const encoder& out) const
    {
        thread_local std::vector<std::byte> buffer;
        if (buffer.size() < out.size()) {
            buffer.resize(out.size());
        }
        const auto bytes = std::span(buffer).first(out.size());
        out.write_to(bytes);
        return bytes;
    }

    static T decode_value(const channels::message& m)
    {
        return dragonx::decode<T>(m.bytes(), "queue message");
    }

    channels::channel channel_;
};

}  // namespace dragonx
