// discovery.hpp - what this node offers: CPUs, GPUs (and their vendor), physical memory.
//
//   auto self = dragonx::discover_local_node(node_index, hostname);
//   dragonx::placement_evaluator eval({self, ...});   // on the primary, from every node
//
// GPUs are found by asking the vendor tools, first that answers wins (spec/runtime.md §5.4):
//   nvidia-smi -L                  nvidia, one GPU per line starting "GPU "
//   rocm-smi --showuniqueid --csv  amd, one GPU per line starting "card"
//   xpu-smi discovery              intel, one GPU per "Device Name" entry
// GPU ids are 0..n-1. A visibility variable already set for that vendor (CUDA_VISIBLE_DEVICES,
// ROCR_VISIBLE_DEVICES, ZE_AFFINITY_MASK) restricts the list: see apply_visibility_mask().
//
// Notes:
// - Blocking: runs up to three tools, each stopped after `tool_timeout` (a hung tool costs at
//   most that, and is SIGKILLed with anything it started). Call it once, at node start-up.
// - Best effort: a missing, failing or hung tool means "no GPUs of that vendor", never an
//   error; only a failing sched_getaffinity throws (dragonx::error, system category).
// - Reads the environment (PATH, the visibility variables) with getenv: do not call while
//   another thread changes the environment.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/policy/evaluator.hpp>

namespace dragonx {

struct discovery_options {
    /// How long each GPU tool may take to answer.
    std::chrono::milliseconds tool_timeout = std::chrono::seconds(5);
};

/// This node, as node `index` called `hostname`: cpus from sched_getaffinity, GPUs as above,
/// memory from sysconf.
[[nodiscard]] node_resources discover_local_node(std::uint32_t index, std::string hostname,
                                                 const discovery_options& options = {});

struct gpu_inventory {
    gpu_vendor vendor = gpu_vendor::none;
    std::vector<int> gpus;  // after the visibility variable; empty for gpu_vendor::none

    bool operator==(const gpu_inventory&) const = default;
};

/// The GPUs of this node (the GPU part of discover_local_node()). A vendor whose GPUs are all
/// hidden by its visibility variable is reported with an empty list.
[[nodiscard]] gpu_inventory discover_gpus(const discovery_options& options = {});

/// The CPUs this process may run on, ascending. Throws dragonx::error if sched_getaffinity fails.
[[nodiscard]] std::vector<int> discover_cpus();

/// Physical memory in bytes (0 if sysconf cannot tell).
[[nodiscard]] std::uint64_t physical_memory_bytes() noexcept;

/// The ids of `detected` that a visibility variable's value lets through, in the variable's
/// order, without duplicates: "1,3" keeps 1 and 3; "" keeps none. Entries that are not plain
/// ids (UUIDs, "0.1" tiles) or not in `detected` are skipped.
[[nodiscard]] std::vector<int> apply_visibility_mask(const std::vector<int>& detected,
                                                     std::string_view mask);

}  // namespace dragonx
