// cleanup_everywhere.cpp - `dragonx cleanup` on every node of the allocation: this node, then
// one `dragonx cleanup --this-node-only` per node through the workload manager.
//
// Notes:
// - A node that is both this one and in the allocation is cleaned twice; the second pass
//   finds nothing.
// - Which allocation: the launcher's own detection with default run options (Slurm, then
//   PBS); --hostfile/--hostlist do not apply to cleanup, so ssh is never used.
#include <sys/wait.h>

#include <filesystem>
#include <ostream>
#include <thread>

#include <fmt/format.h>

#include "child_process.hpp"
#include "cleanup.hpp"
#include "wlm.hpp"

namespace dragonx::launcher {

int run_cleanup_everywhere(const cleanup_options& options, std::ostream& out,
                           std::chrono::milliseconds limit)
{
    int rc = run_cleanup(options, out);
    if (options.this_node_only) {
        return rc;
    }
    std::unique_ptr<workload_manager> wlm;
    try {
        wlm = make_workload_manager(run_options{}, host_environment::current());
    } catch (const std::exception& e) {
        out << "cannot clean up the other nodes: " << e.what() << '\n';
        return 1;
    }
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    std::vector<std::string> command = {ec ? std::string("dragonx") : self.string(), "cleanup",
                                        "--this-node-only"};
    if (options.dry_run) {
        command.emplace_back("--dry-run");
    }
    const auto fan_out = wlm->on_every_node(command);
    if (!fan_out) {
        return rc;  // no allocation: this node was all there is
    }
    out << fmt::format("cleaning up the {} node(s) of the {} allocation: {}\n",
                       wlm->nodes().size(), wlm->name(), join(wlm->nodes(), ", "))
        << std::flush;
    child_set children;
    try {
        children.start({*fan_out});
    } catch (const std::exception& e) {
        out << "cannot clean up the other nodes: " << e.what() << '\n';
        return 1;
    }
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        const auto exited = children.poll_exited();
        if (!exited.empty()) {
            const int status = exited.front().status;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                out << fmt::format("{} {}: not every node was cleaned up\n", fan_out->label,
                                   describe_wait_status(status));
                return 1;
            }
            return rc;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            children.stop();
            out << fmt::format("{} did not finish within {} ms\n", fan_out->label,
                               limit.count());
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

} // namespace dragonx::launcher
