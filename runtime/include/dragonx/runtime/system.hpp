// system.hpp - dragonx::system: the nodes of the run and the policies that address them.
//
//   auto sys = dragonx::system::current();
//   for (const auto& n : sys.nodes()) std::cout << n.hostname << " " << n.cpus.size() << "\n";
//   for (const auto& p : sys.gpu_policies()) group.add(1, tmpl.with_policy(p));
//
// Notes:
// - current() asks global services for the node table once per call (a copy: cheap to keep).
// - gpu_policies() is one policy per GPU of every node, cpu_policies() one per CPU of every
//   node, hostname_policies() one per node (see policy/evaluator.hpp for how virtual nodes on
//   one host are told apart).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <dragonx/policy/evaluator.hpp>
#include <dragonx/policy/policy.hpp>

namespace dragonx {

struct node_info {
    std::uint32_t index = 0;
    std::string hostname;
    std::uint32_t host_id = 0;  // what policy::host_id names (the node index)
    std::vector<int> cpus;
    std::vector<int> gpus;
    gpu_vendor vendor = gpu_vendor::none;
    std::uint64_t memory_bytes = 0;
};

class system {
public:
    /// The run's nodes. Throws errc::no_runtime outside a run.
    static system current();

    [[nodiscard]] std::uint32_t nnodes() const noexcept
    {
        return static_cast<std::uint32_t>(nodes_.size());
    }
    [[nodiscard]] const std::vector<node_info>& nodes() const noexcept { return nodes_; }
    /// The primary node (node 0: global services and the head).
    [[nodiscard]] const node_info& primary() const { return nodes_.at(0); }
    [[nodiscard]] std::vector<policy> gpu_policies() const;
    [[nodiscard]] std::vector<policy> cpu_policies() const;
    [[nodiscard]] std::vector<policy> hostname_policies() const;

private:
    [[nodiscard]] std::vector<node_resources> resources() const;
    std::vector<node_info> nodes_;
};

}  // namespace dragonx
