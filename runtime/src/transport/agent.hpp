// agent.hpp - the transport agent: every node daemon runs one, and every operation on another
// node's channel goes through it (DESIGN.md §4).
//
//   transport_agent agent({.run = run, .node = 1, .secret = s, .transport = "tcp"});
//   info.agent_address = agent.address();          // into the node table
//   agent.set_nodes(addresses, names);             // once the node table is known
//   ...                                            // serves on its own thread
//   agent.node_lost(2, "daemon died");             // from the control plane
//
// How an operation travels: a process opens a session on the agent's Unix socket
// (DRAGONX_AGENT), then puts each request frame (transport/wire.hpp) into the agent's gateway
// channel, ringing the socket only when the agent sleeps; the agent finds the channel's node,
// forwards the request over the peer_link to that node's agent, which performs it on the
// channel and sends the result back the same way, into the session's response channel.
//
// Contract:
// - Its own thread and io_context: a slow control plane never delays data, and the other way
//   round. The public members are thread-safe.
// - An operation that cannot finish at once (a full channel, an empty one) waits on a
//   blocking-pool thread at the owning agent, up to the request's timeout, and never blocks
//   the agent's loop. The requester sees the end-to-end timeout as errc::timeout (or false /
//   nullopt, as the channel API says).
// - A requester's messages are performed in the order they arrive; a process sends its next
//   operation only after the previous one's result, so each sender's order is kept.
// - A node that is lost (its agent's link broke, or node_lost()) fails every operation bound
//   for it, now and later, with errc::peer_lost naming the node; the waits performed for it
//   are abandoned.
// - Malformed frames from a process close its connection; from a peer, they are dropped and
//   logged. The agent never dies of bad input.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../auth.hpp"

namespace dragonx::rt::detail {

struct agent_config {
    std::string run;
    std::uint32_t node = 0;
    run_secret secret{};
    /// "tcp", "ofi" or "ofi:<provider>".
    std::string transport = "tcp";
    /// Where the link listens, and the host name or IP peers are told to reach.
    std::string listen_address = "127.0.0.1";
    std::string advertised_host = "127.0.0.1";
};

class transport_agent {
public:
    /// Creates the link and the local socket (agent_socket_path) and starts serving. Throws
    /// if either cannot be set up.
    explicit transport_agent(const agent_config& config);
    /// Stops the thread, abandons waits, removes the socket.
    ~transport_agent();
    transport_agent(const transport_agent&) = delete;
    transport_agent& operator=(const transport_agent&) = delete;

    /// How peers reach this agent (for the node table).
    [[nodiscard]] std::string address() const;
    /// "tcp", "ofi:tcp;ofi_rxm", ...
    [[nodiscard]] std::string link_name() const;
    /// Path of the Unix socket local processes open their sessions on.
    [[nodiscard]] std::string socket_path() const;

    /// Every node's agent address and name, by node index.
    void set_nodes(std::vector<std::string> addresses, std::vector<std::string> names);
    /// Declares `node` gone (the control plane saw its daemon die).
    void node_lost(std::uint32_t node, const std::string& why);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace dragonx::rt::detail
