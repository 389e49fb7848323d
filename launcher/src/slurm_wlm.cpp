// slurm_wlm.cpp - Slurm: the nodes of the job this launcher runs in, and one srun step that
// starts a daemon on each of them.
//
// Notes:
// - Needs SLURM_JOB_ID (an allocation: sbatch or salloc) and srun on PATH; outside an
//   allocation `--wlm slurm` is an error that says how to get one.
// - The step: srun --nodes=N --ntasks=N --ntasks-per-node=1 --cpu-bind=none --overlap
//   --whole --nodelist=... --kill-on-bad-exit=0 dragonx-runtime ... --overlap lets the
//   run's other steps (and `dragonx cleanup`) share the nodes; --whole gives the step every
//   CPU the job has on a node, so the daemons' processes are not confined to one.
// - Identity: --node-from SLURM_NODEID --hostname-from SLURMD_NODENAME. The step's node order
//   is Slurm's, which is the order of `scontrol show hostnames`, which select_nodes keeps; the
//   launcher checks the names when the daemons report.
// - The secret is in srun's environment (one step cannot give each task its own stdin);
//   the daemons unset it at once. srun is stopped with SIGTERM (passed on to the daemons),
//   then SIGKILL.
#include <fmt/format.h>

#include <dragonx/common/error.hpp>

#include "wlm.hpp"

namespace dragonx::launcher {

namespace {

constexpr std::chrono::seconds scontrol_limit{30};

class slurm_wlm final : public workload_manager {
public:
    slurm_wlm(const run_options& options, const host_environment& env)
    {
        const auto job = env.get("SLURM_JOB_ID");
        if (!job) {
            throw_error(errc::not_found,
                        "--wlm slurm: not inside a Slurm allocation (SLURM_JOB_ID is not set); "
                        "run dragonx from one: `salloc -N 2 dragonx run PROG` or an sbatch "
                        "script that calls `dragonx run PROG` (see examples/batch/slurm_job.sh)");
        }
        if (!env.on_path("srun")) {
            throw_error(errc::not_found,
                        "--wlm slurm: srun is not on PATH, so the daemons cannot be started");
        }
        auto nodelist = env.get("SLURM_JOB_NODELIST");
        if (!nodelist) {
            nodelist = env.get("SLURM_NODELIST");
        }
        if (!nodelist) {
            throw_error(errc::not_found, fmt::format("--wlm slurm: Slurm job {} has no node list "
                                                     "(SLURM_JOB_NODELIST is not set)",
                                                     *job));
        }
        const auto offered =
            unique_hosts(capture_output({"scontrol", "show", "hostnames", *nodelist},
                                        std::chrono::duration_cast<std::chrono::milliseconds>(
                                            scontrol_limit)));
        nodes_ = select_nodes(offered, options.hosts, options.nodes,
                              fmt::format("the Slurm allocation (job {})", *job));
    }

    std::string_view name() const noexcept override { return "slurm"; }
    bool spans_hosts() const noexcept override { return true; }

    std::vector<spawn_request> daemon_commands(const daemon_launch& launch) const override
    {
        return {one_command_for_all_daemons(
            step_prefix(), launch, nodes_.size(),
            {"--node-from", "SLURM_NODEID", "--hostname-from", "SLURMD_NODENAME"},
            "srun (the daemons' job step)")};
    }

    std::optional<spawn_request>
    on_every_node(const std::vector<std::string>& program_and_args) const override
    {
        auto argv = step_prefix();
        argv.push_back("--label");
        argv.insert(argv.end(), program_and_args.begin(), program_and_args.end());
        return spawn_request{.label = "srun",
                             .argv = std::move(argv),
                             .env = environment_with({}, {}),
                             .new_session = false,
                             .stdout_to_stderr = false,
                             .terminate_first = true};
    }

private:
    std::vector<std::string> step_prefix() const
    {
        const auto n = std::to_string(nodes_.size());
        return {"srun",
                "--nodes=" + n,
                "--ntasks=" + n,
                "--ntasks-per-node=1",
                "--cpu-bind=none",
                "--overlap",
                "--whole",
                "--kill-on-bad-exit=0",
                "--nodelist=" + join(nodes_, ",")};
    }
};

} // namespace

std::unique_ptr<workload_manager> make_slurm_wlm(const run_options& options,
                                                 const host_environment& env)
{
    return std::make_unique<slurm_wlm>(options, env);
}

} // namespace dragonx::launcher
