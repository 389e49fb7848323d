// link_factory.cpp - tcp or ofi, as configured.
#include "link_factory.hpp"

#include <dragonx/common/error.hpp>

#include "tcp_link.hpp"

namespace dragonx::rt::detail {

std::unique_ptr<peer_link> make_link(asio::io_context& io, const agent_config& config)
{
    if (config.transport == "tcp") {
        return make_tcp_link(io, config.secret, config.node, config.listen_address,
                             config.advertised_host);
    }
    throw_error(errc::no_transport, "transport '" + config.transport + "' is not available");
}

}  // namespace dragonx::rt::detail
