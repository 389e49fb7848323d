// node_identity.cpp - a daemon's node index and name, from its options and environment.
#include "node_identity.hpp"

#include <charconv>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>

namespace dragonx::rt::detail {

namespace {

std::vector<std::string> split(std::string_view list)
{
    std::vector<std::string> parts;
    for (;;) {
        const auto comma = list.find(',');
        if (const auto part = list.substr(0, comma); !part.empty()) {
            parts.emplace_back(part);
        }
        if (comma == std::string_view::npos) {
            return parts;
        }
        list.remove_prefix(comma + 1);
    }
}

[[noreturn]] void fail(const std::string& what)
{
    throw_error(errc::invalid_argument, what);
}

std::uint32_t node_from_environment(const std::string& variables, const variable_lookup& variable)
{
    for (const auto& name : split(variables)) {
        const auto value = variable(name);
        if (!value || value->empty()) {
            continue;
        }
        std::uint32_t node = 0;
        const char* end = value->data() + value->size();
        const auto [ptr, ec] = std::from_chars(value->data(), end, node);
        if (ec != std::errc{} || ptr != end) {
            fail(fmt::format("--node-from: {}='{}' is not a node index", name, *value));
        }
        return node;
    }
    fail(fmt::format("--node-from {}: none of these variables is set (dragonx-runtime is "
                     "started by dragonx run, through the workload manager's launch command)",
                     variables));
}

} // namespace

node_identity resolve_node_identity(const node_identity_options& o, std::uint32_t nnodes,
                                    const variable_lookup& variable)
{
    if (o.node.has_value() == !o.node_from.empty()) {
        fail("give exactly one of --node and --node-from");
    }
    const int name_sources =
        int(o.hostname.has_value()) + int(!o.hostname_from.empty()) + int(!o.hostnames.empty());
    if (name_sources != 1) {
        fail("give exactly one of --hostname, --hostname-from and --hostnames");
    }
    node_identity id;
    id.node = o.node ? *o.node : node_from_environment(o.node_from, variable);
    if (id.node >= nnodes) {
        fail(fmt::format("node index {} is not below --nnodes {}", id.node, nnodes));
    }
    if (o.hostname) {
        id.hostname = *o.hostname;
    } else if (!o.hostname_from.empty()) {
        const auto value = variable(o.hostname_from);
        if (!value || value->empty()) {
            fail(fmt::format("--hostname-from {}: the variable is not set", o.hostname_from));
        }
        id.hostname = *value;
    } else {
        const auto names = split(o.hostnames);
        if (names.size() != nnodes) {
            fail(fmt::format("--hostnames names {} nodes, but --nnodes is {}", names.size(),
                             nnodes));
        }
        id.hostname = names[id.node];
    }
    if (id.hostname.empty()) {
        fail("the node's name is empty");
    }
    return id;
}

}  // namespace dragonx::rt::detail
