// pbs_wlm.cpp - PBS: the hosts of the job's node file, and one launch command (PALS mpiexec
// by default) that starts a daemon on each of them.
//
// Notes:
// - Needs PBS_JOBID and PBS_NODEFILE (a job started by qsub). The nodes are the unique hosts
//   of PBS_NODEFILE in file order (it repeats a host once per MPI slot).
// - The launch command is the template in DRAGONX_PBS_LAUNCH, or by default
//     mpiexec --np {nnodes} --ppn 1 --cpu-bind none --hosts {nodelist} --line-buffer
//   (Cray/HPE PALS, what DragonHPC uses), with the daemon's command line appended. The
//   template must start exactly one rank per node, in the order of {nodelist}, and pass the
//   launcher's environment on (the run secret travels in DRAGONX_RUN_SECRET). Examples:
//     MPICH (Hydra): mpiexec -n {nnodes} -ppn 1 -hosts {nodelist}
//     Open MPI:      mpirun -np {nnodes} --map-by ppr:1:node --host {nodelist}
//                    -x DRAGONX_RUN -x DRAGONX_RUN_SECRET -x PATH
//   (`pbsdsh` does not pass the environment on, so it cannot be used as is.)
// - Identity: the daemon takes its node index from the first of PALS_NODEID, PMI_RANK,
//   OMPI_COMM_WORLD_RANK, PMIX_RANK that is set (one rank per node: rank == node index), and
//   its name from the node list it is given (--hostnames).
// - The launch command is stopped with SIGTERM (passed on to the daemons), then SIGKILL.
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>

#include "wlm.hpp"

namespace dragonx::launcher {

namespace {

constexpr std::string_view default_template =
    "mpiexec --np {nnodes} --ppn 1 --cpu-bind none --hosts {nodelist} --line-buffer";
constexpr std::string_view rank_variables = "PALS_NODEID,PMI_RANK,OMPI_COMM_WORLD_RANK,PMIX_RANK";

std::string read_nodefile(const std::string& path)
{
    std::ifstream in(path);
    if (!in) {
        throw_error(errc::not_found,
                    fmt::format("--wlm pbs: cannot read PBS_NODEFILE '{}'", path));
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

class pbs_wlm final : public workload_manager {
public:
    pbs_wlm(const run_options& options, const host_environment& env)
        : template_(env.get("DRAGONX_PBS_LAUNCH").value_or(std::string(default_template)))
    {
        const auto job = env.get("PBS_JOBID");
        const auto nodefile = env.get("PBS_NODEFILE");
        if (!job || !nodefile) {
            throw_error(errc::not_found,
                        fmt::format("--wlm pbs: not inside a PBS job ({} is not set); submit a "
                                    "script that calls `dragonx run PROG` with qsub (see "
                                    "examples/batch/pbs_job.sh)",
                                    job ? "PBS_NODEFILE" : "PBS_JOBID"));
        }
        nodes_ = select_nodes(unique_hosts(read_nodefile(*nodefile)), options.hosts,
                              options.nodes,
                              fmt::format("the PBS job {} (PBS_NODEFILE {})", *job, *nodefile));
        (void)launch_prefix();  // a bad DRAGONX_PBS_LAUNCH is reported now, not at launch
    }

    std::string_view name() const noexcept override { return "pbs"; }
    bool spans_hosts() const noexcept override { return true; }

    std::vector<spawn_request> daemon_commands(const daemon_launch& launch) const override
    {
        return {one_command_for_all_daemons(
            launch_prefix(), launch, nodes_.size(),
            {"--node-from", std::string(rank_variables), "--hostnames", join(nodes_, ",")},
            fmt::format("the PBS launch command ({})", launch_prefix().front()))};
    }

    std::optional<spawn_request>
    on_every_node(const std::vector<std::string>& program_and_args) const override
    {
        auto argv = launch_prefix();
        argv.insert(argv.end(), program_and_args.begin(), program_and_args.end());
        return spawn_request{.label = fmt::format("the PBS launch command ({})", argv.front()),
                             .argv = std::move(argv),
                             .env = environment_with({}, {}),
                             .new_session = false,
                             .stdout_to_stderr = false,
                             .terminate_first = true};
    }

private:
    std::vector<std::string> launch_prefix() const
    {
        return expand_launch_template(template_, nodes_);
    }

    std::string template_;
};

} // namespace

std::unique_ptr<workload_manager> make_pbs_wlm(const run_options& options,
                                               const host_environment& env)
{
    return std::make_unique<pbs_wlm>(options, env);
}

} // namespace dragonx::launcher
