// host_address.cpp - finding an address of this host that other hosts can route to.
#include "host_address.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

#include "run_paths.hpp"
#include "wlm.hpp"

namespace dragonx::launcher {

namespace {

std::string to_text(const in_addr& address)
{
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &address, text, sizeof text);
    return text;
}

bool is_loopback(const in_addr& address)
{
    return (ntohl(address.s_addr) >> 24) == 127;
}

/// The IPv4 addresses `name` resolves to, in the resolver's order.
std::vector<in_addr> resolve(const std::string& name)
{
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0) {
        return {};
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, &::freeaddrinfo);
    std::vector<in_addr> addresses;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        addresses.push_back(reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr);
    }
    return addresses;
}

std::optional<std::string> first_interface_address()
{
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
        return std::nullopt;
    }
    std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> owner(list, &::freeifaddrs);
    for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET ||
            (i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) {
            continue;
        }
        const auto& address = reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr;
        if (!is_loopback(address)) {
            return to_text(address);
        }
    }
    return std::nullopt;
}

} // namespace

std::string advertised_address(const host_environment& env)
{
    if (const auto chosen = env.get("DRAGONX_LAUNCHER_ADDRESS")) {
        const auto addresses = resolve(*chosen);
        if (addresses.empty()) {
            throw_error(errc::invalid_argument,
                        fmt::format("DRAGONX_LAUNCHER_ADDRESS='{}' is not an IPv4 address or a "
                                    "host name that resolves to one",
                                    *chosen));
        }
        return to_text(addresses.front());
    }
    for (const auto& address : resolve(rt::detail::host_name())) {
        if (!is_loopback(address)) {
            return to_text(address);
        }
    }
    if (auto address = first_interface_address()) {
        return *address;
    }
    log::get("launcher").warn("this host has no IPv4 address but loopback: daemons on other "
                              "hosts cannot reach the launcher (set DRAGONX_LAUNCHER_ADDRESS)");
    return "127.0.0.1";
}

} // namespace dragonx::launcher
