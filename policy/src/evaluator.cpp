// evaluator.cpp - placement_evaluator (spec/runtime.md §5.3), GPU environment, policy lists.
#include <dragonx/policy/evaluator.hpp>

#include <algorithm>
#include <string>
#include <unordered_set>

#include <dragonx/common/error.hpp>

namespace dragonx {

namespace {

bool contains(const std::vector<int>& ids, int id)
{
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// True when no other node has `nodes[at]`'s hostname, so a host_name policy names it alone.
bool hostname_is_unique(const std::vector<node_resources>& nodes, std::size_t at)
{
    return std::count_if(nodes.begin(), nodes.end(), [&](const node_resources& n) {
               return n.hostname == nodes[at].hostname;
           }) == 1;
}

policy pin(const std::vector<node_resources>& nodes, std::size_t at)
{
    policy p;
    if (!nodes[at].hostname.empty() && hostname_is_unique(nodes, at)) {
        p.placement_kind = placement::host_name;
        p.host_name = nodes[at].hostname;
    } else {
        p.placement_kind = placement::host_id;
        p.host_id = nodes[at].index;
    }
    return p;
}

}  // namespace

std::string_view gpu_visibility_variable(gpu_vendor v) noexcept
{
    switch (v) {
    case gpu_vendor::nvidia:
        return "CUDA_VISIBLE_DEVICES";
    case gpu_vendor::amd:
        return "ROCR_VISIBLE_DEVICES";
    case gpu_vendor::intel:
        return "ZE_AFFINITY_MASK";
    case gpu_vendor::none:
        break;
    }
    return {};
}

std::string_view to_string(gpu_vendor v) noexcept
{
    switch (v) {
    case gpu_vendor::none:
        return "none";
    case gpu_vendor::nvidia:
        return "nvidia";
    case gpu_vendor::amd:
        return "amd";
    case gpu_vendor::intel:
        return "intel";
    }
    return "invalid";
}

placement_evaluator::placement_evaluator(std::vector<node_resources> nodes)
    : nodes_(std::move(nodes)), placed_(nodes_.size(), 0)
{
    if (nodes_.empty()) {
        throw_error(errc::invalid_argument, "placement_evaluator: the node list is empty");
    }
    std::unordered_set<std::uint32_t> seen;
    for (const auto& n : nodes_) {
        if (!seen.insert(n.index).second) {
            throw_error(errc::invalid_argument, "placement_evaluator: node index " +
                                                    std::to_string(n.index) +
                                                    " appears twice in the node list");
        }
    }
}

std::vector<layout> placement_evaluator::evaluate(const std::vector<policy>& requests)
{
    // Work on copies and commit at the end, so a failing request changes nothing.
    cursor_state state = state_;
    std::vector<std::uint32_t> placed = placed_;
    std::vector<layout> out;
    out.reserve(requests.size());
    const policy base = global_policy();
    for (const auto& request : requests) {
        const policy p = merge(base, request);
        validate(p);
        const std::size_t at = choose_node(p, state, placed);
        ++placed[at];
        const bool pinned =
            p.placement_kind == placement::host_name || p.placement_kind == placement::host_id;
        out.push_back(make_layout(at, p, pinned));
    }
    state_ = state;
    placed_ = std::move(placed);
    return out;
}

layout placement_evaluator::evaluate(const policy& request)
{
    return std::move(evaluate(std::vector<policy>{request}).front());
}

std::size_t placement_evaluator::choose_node(const policy& p, cursor_state& state,
                                             std::vector<std::uint32_t>& placed) const
{
    const std::size_t n = nodes_.size();
    if (p.placement_kind == placement::host_name) {
        for (std::size_t i = 0; i < n; ++i) {
            if (nodes_[i].hostname == *p.host_name) {
                return i;
            }
        }
        throw_error(errc::not_found,
                    "placement: no node of this run has the host name '" + *p.host_name + "'");
    }
    if (p.placement_kind == placement::host_id) {
        for (std::size_t i = 0; i < n; ++i) {
            if (nodes_[i].index == *p.host_id) {
                return i;
            }
        }
        throw_error(errc::not_found, "placement: no node of this run has the host id " +
                                         std::to_string(*p.host_id) + " (a node index)");
    }

    if (p.distribution_kind == distribution::block && !state.overprovision) {
        // Stay on the cursor node while it has a free CPU slot, else move on to the first node
        // after it that has one.
        for (std::size_t step = 0; step < n; ++step) {
            const std::size_t i = (state.cursor + step) % n;
            if (placed[i] < nodes_[i].cpus.size()) {
                state.cursor = i;
                return i;
            }
        }
        state.overprovision = true;  // every node is full: round robin from now on
    }
    const std::size_t at = state.cursor;
    state.cursor = (state.cursor + 1) % n;
    return at;
}

layout placement_evaluator::make_layout(std::size_t at, const policy& p, bool pinned) const
{
    const auto& node = nodes_[at];
    layout l;
    l.node = node.index;
    l.hostname = node.hostname;
    l.node_specified = pinned;
    l.vendor = node.vendor;

    if (p.cpu_affinity && !p.cpu_affinity->empty()) {
        for (int cpu : node.cpus) {
            if (contains(*p.cpu_affinity, cpu)) {
                l.cpus.push_back(cpu);
            }
        }
    } else {
        l.cpus = node.cpus;
    }

    if (p.gpu_affinity && !p.gpu_affinity->empty()) {
        for (int gpu : *p.gpu_affinity) {
            if (contains(node.gpus, gpu) && !contains(l.gpus, gpu)) {
                l.gpus.push_back(gpu);
            }
        }
    } else {
        l.gpus = node.gpus;
    }
    return l;
}

std::optional<std::pair<std::string, std::string>> gpu_environment(const layout& l)
{
    const std::string_view variable = gpu_visibility_variable(l.vendor);
    if (l.gpus.empty() || variable.empty()) {
        return std::nullopt;
    }
    std::string value;
    for (std::size_t i = 0; i < l.gpus.size(); ++i) {
        if (i != 0) {
            value += ',';
        }
        value += std::to_string(l.gpus[i]);
    }
    return std::pair{std::string(variable), std::move(value)};
}

std::vector<policy> gpu_policies(const std::vector<node_resources>& nodes)
{
    std::vector<policy> out;
    for (std::size_t at = 0; at < nodes.size(); ++at) {
        for (int gpu : nodes[at].gpus) {
            policy p = pin(nodes, at);
            p.gpu_affinity = std::vector<int>{gpu};
            out.push_back(std::move(p));
        }
    }
    return out;
}

std::vector<policy> cpu_policies(const std::vector<node_resources>& nodes)
{
    std::vector<policy> out;
    for (std::size_t at = 0; at < nodes.size(); ++at) {
        for (int cpu : nodes[at].cpus) {
            policy p = pin(nodes, at);
            p.cpu_affinity = std::vector<int>{cpu};
            out.push_back(std::move(p));
        }
    }
    return out;
}

std::vector<policy> hostname_policies(const std::vector<node_resources>& nodes)
{
    std::vector<policy> out;
    out.reserve(nodes.size());
    for (std::size_t at = 0; at < nodes.size(); ++at) {
        out.push_back(pin(nodes, at));
    }
    return out;
}

}  // namespace dragonx
