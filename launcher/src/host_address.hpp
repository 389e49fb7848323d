// host_address.hpp - the IPv4 address of this host that daemons on other hosts can reach the
// launcher at.
//
// Notes:
// - In order: DRAGONX_LAUNCHER_ADDRESS (an IPv4 address, or a name resolved to one; an
//   error if it does not resolve); the address this host's name resolves to, unless it is a
//   loopback address (Debian maps the host name to 127.0.1.1); the first IPv4 address of an
//   interface that is up and not loopback; else 127.0.0.1, with a warning that only this host
//   can reach it.
// - Blocking: name resolution may take a moment. Throws dragonx::error only for a bad
//   DRAGONX_LAUNCHER_ADDRESS.
#pragma once

#include <string>

namespace dragonx::launcher {

struct host_environment;

[[nodiscard]] std::string advertised_address(const host_environment& env);

}  // namespace dragonx::launcher
