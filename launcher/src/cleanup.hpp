// cleanup.hpp - `dragonx cleanup`: remove what crashed runs of this user left on this node
// (and, inside an allocation, on its other nodes: run_cleanup_everywhere).
//
// Notes:
// - A run is *live* when its launcher is alive on this host: the launcher record in its run
//   directory (see runtime/src/run_paths.hpp) names a process that still exists with the same
//   start time. A record naming another host counts as live (we cannot tell from here), and
//   so does a run without a record here whose daemon on this host was started by a launcher
//   on another host (its --launcher address is not one of this host's): the node of a
//   multi-node run. Such a daemon ends by itself when it loses its launcher.
//   Runs of processes outside `dragonx run` ("solo<pid>") and of test programs ("t<pid>") are
//   live while that pid exists. Run ids of any other shape are not ours: never touched.
// - For every run that is not live, in this order: its stray daemons (processes of this uid
//   whose executable is named dragonx-runtime and whose command line has "--run <id>") get
//   SIGTERM, then SIGKILL after `grace`; its shm objects (/dev/shm/dragonx-<id>-*, owned by
//   this uid) are unlinked; its run directory is removed.
// - Each removal is printed as one line ("removed /dev/shm/dragonx-r...-n0-..."), and with
//   dry_run it is only printed ("would remove ..."). Prints "nothing to clean up" when there
//   is nothing. Never touches another user's objects or processes.
#pragma once

#include <chrono>
#include <ostream>

#include "options.hpp"

namespace dragonx::launcher {

/// Runs the cleanup on this node; returns the exit code (0, or 1 if something could not be
/// removed). options.this_node_only is not looked at.
int run_cleanup(const cleanup_options& options, std::ostream& out,
                std::chrono::milliseconds grace = std::chrono::seconds(1));

/// `dragonx cleanup`: run_cleanup() here, then, unless options.this_node_only, on every node of
/// the Slurm or PBS allocation this process runs in (one `dragonx cleanup --this-node-only`
/// per node, started the way the run's daemons are: srun --overlap, or the PBS launch
/// template; their output goes to `out`'s stdout, labelled by srun). Without an allocation,
/// this node only. Returns 1 if any node failed or could not be reached, else 0. Blocks up to
/// `limit` for the other nodes (then stops the fan-out and fails).
int run_cleanup_everywhere(const cleanup_options& options, std::ostream& out,
                           std::chrono::milliseconds limit = std::chrono::seconds(120));

}  // namespace dragonx::launcher
