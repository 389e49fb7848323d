// system.cpp - the run's node table as the API shows it.
#include <dragonx/runtime/system.hpp>

#include <dragonx/common/error.hpp>
#include <dragonx/runtime/runtime.hpp>

namespace dragonx {

system system::current()
{
    auto reply = runtime::current().request(rt::msg::get_nodes{});
    const auto* table = std::get_if<rt::msg::node_table>(&reply);
    if (table == nullptr) {
        throw_error(errc::malformed_message, "get_nodes: unexpected reply");
    }
    system s;
    for (const auto& n : table->nodes) {
        s.nodes_.push_back({n.index, n.hostname, n.index, n.cpus, n.gpus,
                            static_cast<gpu_vendor>(n.gpu_vendor), n.memory_bytes});
    }
    return s;
}

std::vector<node_resources> system::resources() const
{
    std::vector<node_resources> out;
    for (const auto& n : nodes_) {
        out.push_back({n.index, n.hostname, n.cpus, n.gpus, n.vendor, n.memory_bytes});
    }
    return out;
}

std::vector<policy> system::gpu_policies() const { return dragonx::gpu_policies(resources()); }

std::vector<policy> system::cpu_policies() const { return dragonx::cpu_policies(resources()); }

std::vector<policy> system::hostname_policies() const
{
    return dragonx::hostname_policies(resources());
}

}  // namespace dragonx
