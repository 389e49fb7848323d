// policy.hpp - dragonx::policy: where a process runs (node, CPUs, GPUs), its merge and codec.
//
//   dragonx::policy p;                          // every field unset
//   p.placement_kind = dragonx::placement::host_name;
//   p.host_name = "nid00042";
//   p.gpu_affinity = std::vector<int>{0, 1};
//   auto effective = dragonx::merge(dragonx::global_policy(), merge(context, p));
//
// A policy is a set of optional fields. merge(low, high) takes every field that `high` sets
// and the rest from `low`, so the effective policy of a process is
//   merge(global, merge(context, merge(group, merge(template, explicit))))
// and a field is "set" only when someone set it: unlike the reference (spec/runtime.md §5.2,
// QUIRK), a value equal to the default (anywhere, roundrobin) set on purpose still wins.
//
// Notes:
// - Plain value type: copyable, no shared state, thread-compatible.
// - An empty cpu_affinity or gpu_affinity that is set means "no restriction" at evaluation, but
//   it does override a non-empty list of a lower policy in merge().
// - validate() checks what evaluation needs (a host for pinned placements, no negative ids);
//   the placement evaluator calls it on every merged request.
// - codec<policy> keeps set/unset for every field; decoding checks structure and enum ranges
//   (errc::malformed_message), not the rules of validate().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/codec.hpp>

namespace dragonx {

/// How a node is chosen. local and anywhere are placed alike (the evaluator's cursor): the
/// reference treats them the same; host_name and host_id pin a node.
enum class placement : std::uint8_t {
    local = 0,
    anywhere = 1,
    host_name = 2,  // the node whose hostname is policy::host_name
    host_id = 3,    // the node whose index is policy::host_id
};

/// How unpinned requests are spread over the nodes (see evaluator.hpp).
enum class distribution : std::uint8_t {
    roundrobin = 0,  // one per node in turn, whatever the node's load
    block = 1,       // fill a node's CPUs (one request per CPU), then the next node
};

struct policy {
    std::optional<placement> placement_kind;
    std::optional<std::string> host_name;  // for placement::host_name
    std::optional<std::uint32_t> host_id;  // for placement::host_id: a node index
    std::optional<distribution> distribution_kind;
    std::optional<std::vector<int>> cpu_affinity;  // allowed CPUs (ids as the node numbers them)
    std::optional<std::vector<int>> gpu_affinity;  // GPU ids to expose

    bool operator==(const policy&) const = default;
};

/// `low` with every field that `high` sets replaced by high's value.
[[nodiscard]] policy merge(const policy& low, const policy& high);

/// The base every request is merged onto: placement anywhere, distribution roundrobin.
[[nodiscard]] policy global_policy();

/// Throws errc::invalid_argument when `p` cannot be evaluated: host_name placement without a
/// (non-empty) host_name, host_id placement without a host_id, or a negative CPU or GPU id.
void validate(const policy& p);

[[nodiscard]] std::string_view to_string(placement p) noexcept;
[[nodiscard]] std::string_view to_string(distribution d) noexcept;
/// The set fields, for messages and logs: "policy{placement=host_name, host_name=n1}".
[[nodiscard]] std::string to_string(const policy& p);

/// Wire form: a chunk holding a one-byte mask of the set fields, then one chunk per set field
/// in declaration order (enums as one byte, host_id as 4 bytes, id lists as int arrays).
template <>
struct codec<policy> {
    static void encode(const policy& p, encoder& out);
    /// Throws errc::malformed_message (unknown mask bits, enum out of range, bad chunk).
    static policy decode(decoder& in);
};

}  // namespace dragonx
