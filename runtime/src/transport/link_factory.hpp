// link_factory.hpp - the peer_link a run's configuration asks for.
//
// agent_config::transport: "tcp" -> tcp_link; "ofi" or "ofi:<provider>" -> ofi_link (when
// libfabric and a provider are available; otherwise errc::no_transport naming why).
#pragma once

#include <memory>

#include <asio/io_context.hpp>

#include "agent.hpp"
#include "peer_link.hpp"

namespace dragonx::rt::detail {

[[nodiscard]] std::unique_ptr<peer_link> make_link(asio::io_context& io,
                                                   const agent_config& config);

}  // namespace dragonx::rt::detail
