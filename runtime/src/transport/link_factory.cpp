// link_factory.cpp - tcp or ofi, as configured.
#include "link_factory.hpp"

#include <dragonx/common/error.hpp>

#include "ofi_link.hpp"
#include "tcp_link.hpp"

namespace dragonx::rt::detail {

std::unique_ptr<peer_link> make_link(asio::io_context& io, const agent_config& config)
{
    if (config.transport == "tcp") {
        return make_tcp_link(io, config.secret, config.node, config.listen_address,
                             config.advertised_host);
    }
    if (config.transport == "ofi" || config.transport.starts_with("ofi:")) {
        // The agent polls the link while it is busy (transport_agent::impl::serve).
        return make_ofi_link(io, config.secret, config.node,
                             {.provider = config.transport == "ofi" ? ""
                                                                    : config.transport.substr(4),
                              .bind_address = config.advertised_host,
                              .owner_polls = true});
    }
    throw_error(errc::invalid_argument, "unknown transport '" + config.transport +
                                            "' (tcp, ofi or ofi:<provider>)");
}

}  // namespace dragonx::rt::detail
