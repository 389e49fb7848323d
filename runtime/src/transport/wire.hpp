// wire.hpp - the transport's frames: one remote channel operation, or its result.
//
// A frame is a fixed header, the target channel's descriptor and a payload:
//
//   [frame_header, 48 bytes][channel descriptor: channel_len bytes][payload: payload_len bytes]
//
// The same frames travel between a client process and its node's agent (one message each
// of the agent's gateway channel, results one message each of the client's response channel)
// and between agents (a peer_link, one frame per link frame).
//
//   request   op        value                  payload
//   send      send      -                      the message
//   recv      recv      largest message taken  -
//   poll      poll      -                      -          (event: channels::poll_event)
//   size      size      -                      -
//   attach    attach    -                      -
//   result    (the op)  poll: 1/0; size: count the message (recv), or the error text;
//                       attach: session id     attach: "<gateway>\n<doorbell>\n<response>"
//             code: errc (ok, timeout, ...)
//
// `attach` goes only from a process to its own agent, on the Unix socket that opens its
// session (agent.hpp); agents refuse it from peers.
//
// Notes:
// - Fields are in host byte order: every node of a run has the same architecture.
// - `id` is chosen by whoever sends the request and comes back in its result.
// - timeout_ns: -1 waits forever, 0 tries once, > 0 waits that long (from receipt).
// - parse() checks every length against the bytes at hand and the limits below; malformed
//   input throws errc::malformed_message, it is never trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/deadline.hpp>
#include <dragonx/common/error.hpp>

namespace dragonx::rt::detail::wire {

enum class frame_kind : std::uint8_t { request = 1, result = 2 };
enum class op : std::uint8_t { send = 1, recv = 2, poll = 3, size = 4, attach = 5 };

inline constexpr std::uint32_t max_channel_len = 4096;
inline constexpr std::uint64_t max_payload_len = (64u << 20) + 4096;
/// Results up to this many bytes (header included) travel in a response channel's slot.
inline constexpr std::uint32_t response_slot = 1024;

struct frame_header {
    std::uint8_t kind = 0;   // frame_kind
    std::uint8_t op = 0;     // op
    std::uint8_t event = 0;  // poll: channels::poll_event
    std::uint8_t reserved = 0;
    std::uint32_t code = 0;  // result: errc
    std::uint64_t id = 0;
    std::int64_t timeout_ns = -1;
    std::uint64_t value = 0;  // recv request: largest message; poll/size result: the answer
    std::uint32_t channel_len = 0;
    std::uint32_t session = 0;  // request from a process: its session (from attach)
    std::uint64_t payload_len = 0;
};
static_assert(sizeof(frame_header) == 48);

/// A frame in memory someone else owns.
struct frame_view {
    frame_header header;
    std::string_view channel;
    std::span<const std::byte> payload;
};

[[nodiscard]] inline std::span<const std::byte> header_bytes(const frame_header& h) noexcept
{
    return std::as_bytes(std::span(&h, 1));
}

/// Bytes of the frame that follow the header, checked against the limits. Throws
/// errc::malformed_message.
[[nodiscard]] inline std::uint64_t body_length(const frame_header& h)
{
    if (h.kind != static_cast<std::uint8_t>(frame_kind::request) &&
        h.kind != static_cast<std::uint8_t>(frame_kind::result)) {
        throw_error(errc::malformed_message, "transport frame: unknown kind " +
                                                 std::to_string(h.kind));
    }
    if (h.op < static_cast<std::uint8_t>(op::send) ||
        h.op > static_cast<std::uint8_t>(op::attach)) {
        throw_error(errc::malformed_message, "transport frame: unknown operation " +
                                                 std::to_string(h.op));
    }
    if (h.channel_len > max_channel_len || h.payload_len > max_payload_len) {
        throw_error(errc::malformed_message, "transport frame: lengths out of range");
    }
    return h.channel_len + h.payload_len;
}

/// Reads a frame_header from the front of `bytes` (which must hold at least 48).
[[nodiscard]] inline frame_header read_header(std::span<const std::byte> bytes) noexcept
{
    frame_header h;
    std::memcpy(&h, bytes.data(), sizeof h);
    return h;
}

/// Splits a whole frame. Throws errc::malformed_message unless it is exactly one frame.
[[nodiscard]] inline frame_view parse(std::span<const std::byte> bytes)
{
    if (bytes.size() < sizeof(frame_header)) {
        throw_error(errc::malformed_message, "transport frame: truncated header");
    }
    frame_view v;
    v.header = read_header(bytes);
    if (body_length(v.header) != bytes.size() - sizeof(frame_header)) {
        throw_error(errc::malformed_message, "transport frame: length does not match");
    }
    const auto body = bytes.subspan(sizeof(frame_header));
    v.channel = std::string_view(reinterpret_cast<const char*>(body.data()),
                                 v.header.channel_len);
    v.payload = body.subspan(v.header.channel_len);
    return v;
}

/// timeout_ns as a dragonx::timeout. Throws errc::malformed_message below -1.
[[nodiscard]] inline timeout to_timeout(std::int64_t ns)
{
    if (ns == -1) {
        return forever;
    }
    if (ns < 0) {
        throw_error(errc::malformed_message, "transport frame: negative timeout");
    }
    return std::chrono::nanoseconds(ns);
}

[[nodiscard]] inline std::int64_t from_timeout(const timeout& t) noexcept
{
    return t ? static_cast<std::int64_t>(t->count()) : -1;
}

}  // namespace dragonx::rt::detail::wire
