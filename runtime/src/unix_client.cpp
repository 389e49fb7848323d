// unix_client.cpp - connecting to a local Unix stream socket.
#include "unix_client.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>

namespace dragonx::rt::detail {

unique_fd connect_unix(const std::string& path, errc on_failure, const std::string& what)
{
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        throw_error(errc::invalid_argument, "the socket path of " + what + " is too long: " +
                                                path);
    }
    path.copy(addr.sun_path, path.size());
    unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    throw_system_error_on(!s, "socket");
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        throw_error(on_failure,
                    "cannot reach " + what + " at " + path + ": " + std::strerror(errno));
    }
    return s;
}

}  // namespace dragonx::rt::detail
