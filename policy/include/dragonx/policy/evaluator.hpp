// evaluator.hpp - the placement evaluator: policies in, one layout (node, CPUs, GPUs) each out.
//
//   dragonx::placement_evaluator eval(nodes);             // the run's node table
//   auto layouts = eval.evaluate({p1, p2});               // one layout per request
//   if (auto env = dragonx::gpu_environment(layouts[0])) { setenv(env->first, env->second) }
//
// Algorithm (spec/runtime.md §5.3). The evaluator keeps a cursor over the nodes and the number
// of requests placed on each node so far; both persist across evaluate() calls. Each request is
// merged onto global_policy() and validated, then:
// - placement host_name / host_id: the named node (the first in node order with that hostname;
//   the node with that index); node_specified is true. The cursor does not move.
// - otherwise, distribution roundrobin: the cursor node; the cursor advances (wrapping). Load
//   is not checked: nodes are oversubscribed freely.
// - distribution block: the cursor node while it has placed fewer requests than it has CPUs;
//   when it is full the cursor moves on to the next node that is not; when every node is full
//   the evaluator switches, for good, to round robin ("overprovision").
// - cpus: node cpus ∩ cpu_affinity, in the node's order; all node cpus when cpu_affinity is
//   unset or empty. gpus: gpu_affinity ∩ node gpus, in the policy's order; all node gpus when
//   gpu_affinity is unset or empty; none when the node has none. An intersection can be empty;
//   an empty list means "leave it as it is" when the layout is applied.
//
// Notes:
// - Not thread-safe: one owner (Global Services) calls evaluate(); no blocking, no I/O.
// - evaluate() is all or nothing: if any request fails, it throws and no state changes.
// - Errors: errc::invalid_argument (a request fails validate()), errc::not_found (no node has
//   the requested hostname or index; the message names it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <dragonx/policy/policy.hpp>

namespace dragonx {

enum class gpu_vendor : std::uint8_t { none = 0, nvidia = 1, amd = 2, intel = 3 };

/// The variable that restricts the GPUs a process sees: CUDA_VISIBLE_DEVICES (nvidia),
/// ROCR_VISIBLE_DEVICES (amd), ZE_AFFINITY_MASK (intel); empty for none.
[[nodiscard]] std::string_view gpu_visibility_variable(gpu_vendor v) noexcept;
[[nodiscard]] std::string_view to_string(gpu_vendor v) noexcept;

/// What one node offers to placement.
struct node_resources {
    std::uint32_t index{};  // node index in the run (what placement::host_id names)
    std::string hostname;
    std::vector<int> cpus;  // CPUs processes may use, as the node numbers them
    std::vector<int> gpus;  // GPU ids, as the vendor's visibility variable takes them
    gpu_vendor vendor = gpu_vendor::none;
    std::uint64_t memory_bytes{};  // physical memory

    bool operator==(const node_resources&) const = default;
};

/// Where one request runs.
struct layout {
    std::uint32_t node{};  // node index
    std::string hostname;
    bool node_specified{};  // the policy pinned the node (host_name / host_id)
    std::vector<int> cpus;  // CPU affinity to set; empty: leave it as it is
    std::vector<int> gpus;  // GPUs to expose; empty: leave the variable as it is
    gpu_vendor vendor = gpu_vendor::none;

    bool operator==(const layout&) const = default;
};

class placement_evaluator {
public:
    /// Takes the node table (in its order). Throws errc::invalid_argument when it is empty or
    /// two nodes share an index.
    explicit placement_evaluator(std::vector<node_resources> nodes);

    /// One layout per request, in order (see the algorithm above). Throws errc::invalid_argument
    /// or errc::not_found, leaving the evaluator unchanged.
    [[nodiscard]] std::vector<layout> evaluate(const std::vector<policy>& requests);
    /// evaluate() of one request.
    [[nodiscard]] layout evaluate(const policy& request);

    [[nodiscard]] const std::vector<node_resources>& nodes() const noexcept { return nodes_; }
    /// Requests placed so far on each node, in node-table order.
    [[nodiscard]] const std::vector<std::uint32_t>& placed() const noexcept { return placed_; }

private:
    struct cursor_state {
        std::size_t cursor = 0;     // position in nodes_ of the next unpinned placement
        bool overprovision = false;  // block gave up: every node is full
    };
    std::size_t choose_node(const policy& p, cursor_state& state,
                            std::vector<std::uint32_t>& placed) const;
    [[nodiscard]] layout make_layout(std::size_t at, const policy& p, bool pinned) const;

    std::vector<node_resources> nodes_;
    std::vector<std::uint32_t> placed_;
    cursor_state state_;
};

/// The variable and value that expose the layout's GPUs ("CUDA_VISIBLE_DEVICES", "1,3"), or
/// std::nullopt when the layout has no GPUs or no vendor.
[[nodiscard]] std::optional<std::pair<std::string, std::string>> gpu_environment(const layout& l);

/// One policy per GPU of every node (node order, then GPU order), each pinning its node and
/// setting gpu_affinity to that one GPU. A node is pinned by host_name, as in the reference,
/// unless another node has the same hostname (virtual nodes on one host): then by host_id.
[[nodiscard]] std::vector<policy> gpu_policies(const std::vector<node_resources>& nodes);
/// One policy per CPU of every node (node order, then CPU order), each pinning its node (as
/// gpu_policies() does) and setting cpu_affinity to that one CPU.
[[nodiscard]] std::vector<policy> cpu_policies(const std::vector<node_resources>& nodes);
/// One policy per node pinning it, by host_name (or host_id, as for gpu_policies()).
[[nodiscard]] std::vector<policy> hostname_policies(const std::vector<node_resources>& nodes);

}  // namespace dragonx
