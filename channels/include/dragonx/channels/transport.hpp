// transport.hpp - the seam through which channel operations reach channels on other nodes.
//
// A channel handle attached to another node's channel forwards every operation to a
// transport, naming the channel by its descriptor. The runtime's transport agent (libfabric or
// TCP) implements this interface; tests may use an in-process implementation. Callers never
// see the difference, except in latency.
//
// Notes:
// - Implementations must be thread-safe and keep each sender's messages in order.
// - Errors are reported as dragonx::error, exactly as a local channel would report them
//   (errc::timeout, errc::message_too_large, ...); a transport that cannot reach the owning
//   node throws errc::no_transport or a more specific error naming the node.
// - A channel attached without a transport uses default_transport(): in a process of a
//   dragonx run, libdragonx installs the node's transport agent there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <dragonx/common/deadline.hpp>
#include <dragonx/pool/pool.hpp>

namespace dragonx::channels {

enum class poll_event;

class transport {
public:
    virtual ~transport() = default;

    /// Sends a copy of `bytes` to the channel; false if it stayed full for `limit`.
    virtual bool send(std::string_view channel, std::span<const std::byte> bytes,
                      timeout limit) = 0;
    /// Receives the next message; nullopt if it stayed empty for `limit`. A message larger
    /// than `max_bytes` is not taken: errc::message_too_large, and it stays in the channel.
    virtual std::optional<std::vector<std::byte>> recv(std::string_view channel, timeout limit,
                                                       std::size_t max_bytes) = 0;
    /// Receives the next message into a block of a pool on this node (the transport's
    /// landing pool), owned by the caller; nullopt if it stayed empty for `limit`.
    virtual std::optional<pool::allocation> recv_block(std::string_view channel,
                                                       timeout limit) = 0;
    /// Waits up to `limit` for `event` on the channel.
    virtual bool poll(std::string_view channel, poll_event event, timeout limit) = 0;
    /// Messages in the channel now.
    virtual std::uint64_t size(std::string_view channel) = 0;
};

/// Returns the transport to use for channels of other nodes, or nullptr if there is none.
using transport_provider = transport* (*)() noexcept;

/// Installs the provider default_transport() asks (nullptr: none). Thread-safe.
void set_default_transport_provider(transport_provider provider) noexcept;

/// The installed provider's transport; nullptr without a provider or outside a run.
[[nodiscard]] transport* default_transport() noexcept;

}  // namespace dragonx::channels
