// local_wlm.cpp - the local workload manager: the run's daemons as children of the launcher
// on this host, one per node: one node, or K virtual nodes node0..node{K-1} for
// `--wlm local -N K` (each with its own node index, shm namespace and port).
//
// Notes:
// - Each daemon gets the run secret on its stdin (never argv), DRAGONX_RUN and DRAGONX_NODE
//   in its environment, and listens on 127.0.0.1 only.
// - A daemon is stopped with SIGKILL: it is ours, and the launcher cleans up after it.
#include <fmt/format.h>

#include <dragonx/common/error.hpp>

#include "wlm.hpp"

namespace dragonx::launcher {

namespace {

class local_wlm final : public workload_manager {
public:
    explicit local_wlm(std::uint32_t nnodes)
    {
        for (std::uint32_t n = 0; n < nnodes; ++n) {
            nodes_.push_back(fmt::format("node{}", n));
        }
    }

    std::string_view name() const noexcept override { return "local"; }
    bool spans_hosts() const noexcept override { return false; }

    std::vector<spawn_request> daemon_commands(const daemon_launch& launch) const override
    {
        std::vector<spawn_request> requests;
        for (std::size_t node = 0; node < nodes_.size(); ++node) {
            auto argv = daemon_arguments(launch, nodes_.size());
            argv.insert(argv.end(), {"--node", std::to_string(node), "--hostname", nodes_[node]});
            requests.push_back(
                {.label = fmt::format("the daemon of node {}", node),
                 .argv = std::move(argv),
                 .env = environment_with({"DRAGONX_RUN=" + launch.run,
                                          "DRAGONX_NODE=" + std::to_string(node)},
                                         {"DRAGONX_RUN_SECRET"}),
                 .stdin_data = launch.secret_hex + "\n"});
        }
        return requests;
    }
};

} // namespace

std::unique_ptr<workload_manager> make_local_wlm(const run_options& options)
{
    if (!options.hosts.empty()) {
        throw_error(errc::invalid_argument,
                    "--hostfile/--hostlist name hosts to reach with ssh or to pick from a Slurm "
                    "or PBS allocation; they cannot be used with --wlm local or -s");
    }
    if (options.wlm != wlm_kind::local && options.nodes > 1) {
        throw_error(errc::invalid_argument,
                    fmt::format("{} nodes requested, but no workload manager was found (no "
                                "Slurm or PBS allocation, no --hostfile/--hostlist): this host "
                                "is the only node (use --wlm local -N {} for {} virtual nodes "
                                "on this host)",
                                options.nodes, options.nodes, options.nodes));
    }
    const std::uint32_t nnodes =
        options.wlm == wlm_kind::local && options.nodes > 0 ? options.nodes : 1;
    return std::make_unique<local_wlm>(nnodes);
}

} // namespace dragonx::launcher
