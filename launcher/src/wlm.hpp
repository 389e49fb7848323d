// wlm.hpp - workload managers: which nodes a run gets, and how their daemons are started
// (DESIGN.md §10, spec/runtime.md §1.3-§1.4).
//
//   auto wlm = make_workload_manager(options, host_environment::current());  // finds the nodes
//   children.start(wlm->daemon_commands(launch));   // one dragonx-runtime per node, somewhere
//
// Back ends (one file each):
// - local (local_wlm.cpp): the daemons are children of the launcher on this host: one node,
//   or K virtual nodes node0..node{K-1} for `--wlm local -N K`. Loopback only.
// - slurm (slurm_wlm.cpp): nodes from `scontrol show hostnames "$SLURM_JOB_NODELIST"`; one
//   `srun --overlap ... dragonx-runtime` step starts every daemon. Each daemon takes its index
//   from SLURM_NODEID and its name from SLURMD_NODENAME; the run secret travels in the
//   environment (DRAGONX_RUN_SECRET, which srun exports and the daemon unsets at once).
// - pbs (pbs_wlm.cpp): nodes are the unique hosts of $PBS_NODEFILE, in file order; one launch
//   command from a template (default: PALS mpiexec) starts every daemon. Each daemon takes its
//   index from the first of PALS_NODEID, PMI_RANK, OMPI_COMM_WORLD_RANK, PMIX_RANK that is
//   set (the launch runs one rank per node, so rank == node), and its name from the node list.
// - ssh (ssh_wlm.cpp): the hosts of --hostfile/--hostlist, in order; one
//   `ssh -oBatchMode=yes HOST 'cd CWD && exec env ... dragonx-runtime ...'` per host, with the
//   run secret written to ssh's stdin.
//
// Notes:
// - Detection (choose_wlm): -s: local; --wlm W: W; --hostfile/--hostlist: ssh; SLURM_JOB_ID
//   set and srun on PATH: slurm; PBS_JOBID and PBS_NODEFILE set: pbs; else local.
// - -N K takes the first K nodes of the allocation; K above what it offers is an error naming
//   both numbers. With --wlm slurm or pbs, --hostfile/--hostlist pick nodes of the allocation
//   (kept in allocation order).
// - Every node name here is what the run calls the node (node_info.hostname, messages).
// - Construction may run short commands (scontrol) and read files (PBS_NODEFILE); it throws
//   dragonx::error with a message for the user when the allocation is missing or unusable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.hpp"
#include "options.hpp"

namespace dragonx::launcher {

/// What detection and the back ends look at on this host: environment variables and the
/// programs on PATH. current() is the real one; tests make their own.
struct host_environment {
    std::function<std::optional<std::string>(const std::string&)> variable;
    std::function<bool(const std::string&)> on_path;

    [[nodiscard]] static host_environment current();
    /// The variable's value if it is set and not empty.
    [[nodiscard]] std::optional<std::string> get(const std::string& name) const
    {
        auto value = variable(name);
        return value && !value->empty() ? value : std::nullopt;
    }
};

/// What every daemon of a run is told.
struct daemon_launch {
    std::string runtime_exe;       // path of dragonx-runtime (the same on every node)
    std::string run;               // run id
    std::string launcher_address;  // HOST:PORT the daemons connect to
    std::string secret_hex;        // the run secret (never on a command line)
    std::string log_level;
    std::string cwd;               // the launcher's working directory
    std::string transport = "tcp";  // the agents' link: tcp | ofi | ofi:<provider>
};

class workload_manager {
public:
    virtual ~workload_manager() = default;

    /// "local", "slurm", "pbs" or "ssh".
    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    /// The run's nodes by index (node 0 first): the names the run uses for them.
    [[nodiscard]] const std::vector<std::string>& nodes() const noexcept { return nodes_; }
    /// True when daemons run on other hosts: then the launcher and the daemons listen on
    /// every interface and advertise routable addresses; false: loopback only.
    [[nodiscard]] virtual bool spans_hosts() const noexcept = 0;
    /// The processes that start one daemon on each node: one per node (local, ssh) or one
    /// launch command for all (srun, mpiexec).
    [[nodiscard]] virtual std::vector<spawn_request>
    daemon_commands(const daemon_launch& launch) const = 0;
    /// A command that runs `program args` once on every node (for `dragonx cleanup`), or
    /// nullopt when this back end has no such fan-out (local, ssh).
    [[nodiscard]] virtual std::optional<spawn_request>
    on_every_node(const std::vector<std::string>& program_and_args) const
    {
        (void)program_and_args;
        return std::nullopt;
    }

protected:
    std::vector<std::string> nodes_;
};

/// The workload manager `options` and `env` select (see Notes), with its nodes found and
/// -N applied. Throws dragonx::error with a message for the user.
[[nodiscard]] std::unique_ptr<workload_manager>
make_workload_manager(const run_options& options, const host_environment& env);

std::unique_ptr<workload_manager> make_local_wlm(const run_options& options);
std::unique_ptr<workload_manager> make_slurm_wlm(const run_options& options,
                                                 const host_environment& env);
std::unique_ptr<workload_manager> make_pbs_wlm(const run_options& options,
                                               const host_environment& env);
std::unique_ptr<workload_manager> make_ssh_wlm(const run_options& options,
                                               const host_environment& env);

// ---- the parts, exposed for the back ends and for tests --------------------------------------

/// Which back end a run uses (see Notes); never `automatic`.
[[nodiscard]] wlm_kind choose_wlm(const run_options& options, const host_environment& env);

/// The nodes a run uses from the `offered` ones of `allocation` (a phrase for messages, e.g.
/// "the Slurm allocation (job 12)"): only those in `wanted` if it is not empty (each must be
/// offered; allocation order is kept), then the first `count` (0: all). Throws
/// dragonx::error(invalid_argument) naming the numbers or the host.
[[nodiscard]] std::vector<std::string> select_nodes(const std::vector<std::string>& offered,
                                                    const std::vector<std::string>& wanted,
                                                    std::uint32_t count,
                                                    const std::string& allocation);

/// The hosts named by a node file or command output: the first word of each line, blank
/// lines and '#' comments skipped, duplicates dropped (first kept), order kept.
[[nodiscard]] std::vector<std::string> unique_hosts(std::string_view text);

/// A launch command template split into words at white space, with {nnodes} (the number
/// of nodes) and {nodelist} (their names, comma-separated) replaced inside each word; no
/// shell is involved. Throws dragonx::error(invalid_argument) for an empty template or an
/// unknown {placeholder}.
[[nodiscard]] std::vector<std::string> expand_launch_template(std::string_view text,
                                                              std::span<const std::string> nodes);

/// `word` quoted for a POSIX shell ('...'), as ssh's remote command needs.
[[nodiscard]] std::string shell_quote(std::string_view word);

/// "a,b,c"
[[nodiscard]] std::string join(std::span<const std::string> words, std::string_view separator);

/// The one launch command (srun, mpiexec) that starts every daemon of a run at once:
/// `prefix` (the launcher and its options), the daemon's arguments, `identity` (how each
/// daemon learns its node), listening on every interface; the run secret travels in the
/// environment, since one command cannot give each daemon its own stdin.
[[nodiscard]] spawn_request one_command_for_all_daemons(std::vector<std::string> prefix,
                                                        const daemon_launch& launch,
                                                        std::size_t nnodes,
                                                        const std::vector<std::string>& identity,
                                                        std::string label);

/// The arguments every daemon gets: exe, --run, --nnodes, --launcher, --log-level,
/// --transport. The back end adds how the daemon learns its node (--node/--node-from,
/// --hostname/...) and where it listens (--address).
[[nodiscard]] std::vector<std::string> daemon_arguments(const daemon_launch& launch,
                                                        std::size_t nnodes);

}  // namespace dragonx::launcher
