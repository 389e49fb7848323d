// unix_client.hpp - the client end of a local Unix stream socket (the daemon's, the agent's).
#pragma once

#include <string>

#include <dragonx/common/error.hpp>
#include <dragonx/common/unique_fd.hpp>

namespace dragonx::rt::detail {

/// A blocking stream socket connected to `path`. Throws errc::invalid_argument when the path
/// is too long for a socket address, and `on_failure` ("cannot reach <what> at <path>: why")
/// when nothing accepts there.
[[nodiscard]] unique_fd connect_unix(const std::string& path, errc on_failure,
                                     const std::string& what);

}  // namespace dragonx::rt::detail
