// ofi_link.hpp - the peer_link of the transport agents over libfabric RDM endpoints.
//
//   auto link = make_ofi_link(io, secret, my_node, "", "10.200.0.2");   // "" = default provider
//   link->start({.on_frame = ..., .on_lost = ...});
//   publish(link->address());           // hex of the endpoint's fi_getname()
//   link->set_peers(addresses);         // fi_av_insert of every node's address
//
// Notes:
// - Contract: as peer_link (peer_link.hpp). In short: everything runs on the io_context's
//   thread, send() never blocks, frames of one sender reach one destination in order, whole.
// - The io_context must be run by one thread only (the agent's): the completion queue's wait
//   fd is re-armed after fi_trywait() on that thread, and a second thread could take the
//   wake-up meant for it.
// - Peers: only links of the same run (same secret) are heard. Every frame carries a token
//   derived from the secret; frames with another token are dropped and logged. The token is
//   not a MAC of the frame: it keeps runs apart, it does not stop a forger on the fabric.
// - Peer death: RDM has no connections to lose, so a peer counts as lost when the provider
//   reports an error for a send to it, or when a send to it has made no progress for
//   `unreachable_after` (tcp;ofi_rxm retries a connection to a dead address forever). The
//   agent also learns of dead nodes from the control plane. Frames the provider had taken
//   before the loss may still arrive later, at a new agent that got the dead one's address.
// - Must not be destroyed from inside one of its own handlers; close() may be called there.
//   Handlers must not throw: the exception would leave io_context::run() and the receive
//   buffer of the frame at hand would not be posted again.
// - cork(): frames queue unposted until uncork(); then, and whenever the provider made frames
//   wait, small frames queued together for one node leave as one message.
// - close() waits up to half a second for sends already handed to the provider (so that a
//   last frame before shutdown arrives); frames still queued are dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "auth.hpp"
#include "transport/ofi_library.hpp"
#include "transport/peer_link.hpp"

namespace dragonx::rt::detail {

struct ofi_link_options {
    /// libfabric to use; null: ofi_library::load_configured().
    std::shared_ptr<const ofi_library> library;
    /// "" for automatic, else a provider name ("tcp", "verbs", "cxi"); see choose_provider().
    std::string provider;
    /// The IP address this node's peers can reach it by ("10.200.0.2"); "" for the provider's
    /// default interface.
    std::string bind_address;
    /// A send that makes no progress for this long reports its node lost.
    std::chrono::milliseconds unreachable_after{10000};
    /// False: no wait fd; the completion queue is polled every millisecond instead. That is
    /// also what happens, with a notice in the log, when the provider's completion queues
    /// have no FI_WAIT_FD.
    bool use_wait_fd = true;
    /// True: the owner drives progress (the transport agent). It calls poll() while busy and
    /// prepare_to_sleep() before each blocking run of the io_context; the wait fd (or poll
    /// timer) is armed only there. Polling the queue directly skips the provider's wake-up
    /// signals and the re-arming of the fd for every completion. False: the link re-arms its
    /// wait after every progress and works under a plain io_context::run().
    bool owner_polls = false;
};

/// An ofi_link for node `my_node`. Throws errc::no_transport when libfabric cannot be loaded
/// or has no usable provider, naming which and why; dragonx::error for other setup failures.
[[nodiscard]] std::unique_ptr<peer_link> make_ofi_link(asio::io_context& io,
                                                       const run_secret& secret,
                                                       std::uint32_t my_node,
                                                       ofi_link_options options);

/// The same with the default options but for `provider` and `bind_address`.
[[nodiscard]] std::unique_ptr<peer_link> make_ofi_link(asio::io_context& io,
                                                       const run_secret& secret,
                                                       std::uint32_t my_node, std::string provider,
                                                       std::string bind_address);

}  // namespace dragonx::rt::detail
