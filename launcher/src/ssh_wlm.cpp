// ssh_wlm.cpp - ssh: the hosts of --hostfile/--hostlist, one ssh per host starting its daemon.
//
// Notes:
// - Per host, in the order given: ssh -oBatchMode=yes HOST 'cd CWD && exec env VAR=...
//   dragonx-runtime ... --node I --hostname HOST --address 0.0.0.0' (BatchMode: never ask
//   for a password; a host that needs one fails at once). Every word of the remote command
//   is quoted for the remote shell.
// - The remote command assumes what a cluster's shared file system gives: the same working
//   directory and the same dragonx-runtime path on every host. It passes on PATH,
//   LD_LIBRARY_PATH and the DRAGONX_* variables of the launcher (DRAGONX_RUN set to the run,
//   never the secret).
// - The run secret is written to ssh's stdin, which ssh forwards to the daemon's stdin.
// - ssh is stopped with SIGTERM, then SIGKILL; a daemon that loses its launcher tears down.
#include <fmt/format.h>

#include <dragonx/common/error.hpp>

#include "wlm.hpp"

extern char** environ;

namespace dragonx::launcher {

namespace {

/// The launcher's variables a remote daemon (and the processes it starts) should see.
std::vector<std::string> forwarded_variables(const std::string& run)
{
    std::vector<std::string> vars;
    for (char** v = environ; *v != nullptr; ++v) {
        const std::string_view entry(*v);
        const auto name = entry.substr(0, entry.find('='));
        const bool ours = name.starts_with("DRAGONX_") && name != "DRAGONX_RUN" &&
                          name != "DRAGONX_NODE" && name != "DRAGONX_RUN_SECRET";
        if (ours || name == "PATH" || name == "LD_LIBRARY_PATH") {
            vars.emplace_back(entry);
        }
    }
    vars.push_back("DRAGONX_RUN=" + run);
    return vars;
}

class ssh_wlm final : public workload_manager {
public:
    ssh_wlm(const run_options& options, const host_environment& env)
    {
        if (options.hosts.empty()) {
            throw_error(errc::invalid_argument,
                        "--wlm ssh needs the hosts to use: --hostfile FILE or --hostlist A,B");
        }
        if (!env.on_path("ssh")) {
            throw_error(errc::not_found, "--wlm ssh: ssh is not on PATH");
        }
        for (const auto& host : options.hosts) {
            if (host.starts_with('-')) {
                throw_error(errc::invalid_argument,
                            fmt::format("--wlm ssh: '{}' is not a host name", host));
            }
        }
        nodes_ = select_nodes(options.hosts, {}, options.nodes, "the host list");
    }

    std::string_view name() const noexcept override { return "ssh"; }
    bool spans_hosts() const noexcept override { return true; }

    std::vector<spawn_request> daemon_commands(const daemon_launch& launch) const override
    {
        const auto vars = forwarded_variables(launch.run);
        std::vector<spawn_request> requests;
        for (std::size_t node = 0; node < nodes_.size(); ++node) {
            const auto& host = nodes_[node];
            auto daemon = daemon_arguments(launch, nodes_.size());
            daemon.insert(daemon.end(), {"--node", std::to_string(node), "--hostname", host,
                                         "--address", "0.0.0.0"});
            std::string remote = "cd " + shell_quote(launch.cwd) + " && exec env";
            for (const auto& word : vars) {
                remote += ' ' + shell_quote(word);
            }
            for (const auto& word : daemon) {
                remote += ' ' + shell_quote(word);
            }
            requests.push_back({.label = fmt::format("ssh to {} (node {})", host, node),
                                .argv = {"ssh", "-oBatchMode=yes", host, remote},
                                .env = environment_with({}, {"DRAGONX_RUN_SECRET"}),
                                .stdin_data = launch.secret_hex + "\n",
                                .terminate_first = true});
        }
        return requests;
    }
};

} // namespace

std::unique_ptr<workload_manager> make_ssh_wlm(const run_options& options,
                                               const host_environment& env)
{
    return std::make_unique<ssh_wlm>(options, env);
}

} // namespace dragonx::launcher
