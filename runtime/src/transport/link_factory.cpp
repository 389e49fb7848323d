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
    if (config.transport == "ofi") {
        return make_ofi_link(io, config.secret, config.node, "", config.advertised_host);
    }
    if (config.transport.starts_with("ofi:")) {
        return make_ofi_link(io, config.secret, config.node, config.transport.substr(4),
                             config.advertised_host);
    }
    throw_error(errc::invalid_argument, "unknown transport '" + config.transport +
                                            "' (tcp, ofi or ofi:<provider>)");
}

}  // namespace dragonx::rt::detail
