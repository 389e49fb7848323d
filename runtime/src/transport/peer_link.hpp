// peer_link.hpp - how the transport agents of a run move frames between nodes.
//
// Every node's daemon runs one transport agent; agents exchange frames (a remote channel
// operation, or its result) over a peer_link. Two implementations: tcp_link (Asio sockets)
// and ofi_link (libfabric RDM endpoints). The agent neither knows nor cares which.
//
//   auto link = make_tcp_link(io, secret, my_node, "0.0.0.0");
//   link->start({.on_frame = ..., .on_lost = ...});
//   node_info.agent_address = link->address();          // published in the node table
//   link->set_peers(addresses_by_node);                  // once the node table is known
//   link->send(2, parts);                                // to node 2's agent
//
// Contract:
// - All members and handlers run on the io_context given at construction (the agent's
//   thread). send() never blocks: frames queue and go out in order, per destination node.
// - A frame is opaque bytes (the agent's wire format, transport/wire.hpp), at most
//   max_link_frame bytes. send() gathers `parts` into one frame; on_frame gets it whole and
//   contiguous, valid only during the call.
// - Only peers of the same run are heard: a link authenticates its peers with the run secret
//   (tcp: the HMAC handshake of auth.hpp; ofi: a run token in every frame). Anything else is
//   dropped and logged, never delivered.
// - on_lost(node, why) is called once when a peer that was reachable stops being so (its
//   agent died: connection reset, EOF, provider error), and for a send to a node that cannot
//   be reached at all. Frames queued for that node are dropped. A later send() may try again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace dragonx::rt::detail {

inline constexpr std::size_t max_link_frame = (64u << 20) + (64u << 10);

class peer_link {
public:
    struct handlers {
        std::function<void(std::uint32_t node, std::span<const std::byte> frame)> on_frame;
        std::function<void(std::uint32_t node, const std::string& why)> on_lost;
    };

    virtual ~peer_link() = default;

    /// For logs and notices: "tcp", "ofi:tcp;ofi_rxm".
    [[nodiscard]] virtual std::string name() const = 0;
    /// How peers reach this agent: a printable string, put in the node table.
    [[nodiscard]] virtual std::string address() const = 0;
    /// Starts listening / receiving. Call once, before set_peers().
    virtual void start(handlers h) = 0;
    /// Every node's agent address, indexed by node (this node's own entry included).
    virtual void set_peers(std::vector<std::string> addresses) = 0;
    /// Queues one frame, the concatenation of `parts`, for `node`'s agent.
    virtual void send(std::uint32_t node, std::span<const std::span<const std::byte>> parts) = 0;
    /// Corked, frames queue without being written until uncork(), which writes each peer's
    /// queue in one go (a result and the request that follows it share one system call and
    /// one segment). A hint: a link may write at once anyway.
    virtual void cork() {}
    virtual void uncork() {}
    /// Progress for a link whose owner drives it (ofi: a completion queue is polled, not
    /// waited on, while there is work): poll() does what can be done now without waiting and
    /// says whether anything happened; prepare_to_sleep() is called before the owner blocks in
    /// the io_context and arms whatever wakes it for the link's next event, or returns false
    /// when there is work already (poll again instead of sleeping). Links driven by their
    /// own io_context handlers (tcp) keep these defaults.
    virtual bool poll() { return false; }
    virtual bool prepare_to_sleep() { return true; }
    /// Stops; no handler is called afterwards.
    virtual void close() = 0;
};

}  // namespace dragonx::rt::detail
