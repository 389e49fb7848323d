// tcp_link.hpp - the peer_link over plain TCP sockets (Asio): `dragonx run -t tcp`, and the
// fallback where no libfabric provider is found.
//
// Each agent listens on one port. To send to node k it opens one connection to k's agent
// (lazily, on the first frame) and writes every frame for k there, in order; what arrives on
// the connections others opened to it is delivered to on_frame. So two busy agents hold two
// connections between them, one per direction.
//
// Notes:
// - A connection starts with a mutual challenge-response on the run secret (auth.hpp):
//     connector: magic "DXA1", its node (u32), a 32-byte challenge
//     acceptor:  its proof for that challenge (32 bytes), its own challenge (32 bytes)
//     connector: its proof (32 bytes), then frames
//   A peer that fails it, or says nothing within 5 s, is dropped (and logged), and nothing it
//   sent is delivered.
// - Frames travel as a u32 length and the frame's bytes; a length above max_link_frame drops
//   the connection.
// - on_lost(k) when the connection to k fails or closes (k's agent died), or k's own
//   connection to us closes after it was authenticated.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "../auth.hpp"
#include "peer_link.hpp"

namespace dragonx::rt::detail {

/// A TCP link of node `my_node`, listening on `listen_address` (an IP; port chosen by the
/// kernel) and advertising `advertised_host` to its peers. Throws if it cannot listen.
[[nodiscard]] std::unique_ptr<peer_link> make_tcp_link(asio::io_context& io,
                                                       const run_secret& secret,
                                                       std::uint32_t my_node,
                                                       const std::string& listen_address,
                                                       const std::string& advertised_host);

}  // namespace dragonx::rt::detail
