// daemon_main.cpp - dragonx-runtime: the per-node daemon, started by `dragonx run` (never by
// hand). The run secret arrives on stdin (one line of 64 hex digits) or in
// DRAGONX_RUN_SECRET, which is removed from the environment at once; never on argv.
// Its node index and name are given, or found in the environment a workload manager's
// launch command sets (node_identity.hpp). --address 0.0.0.0 listens on every interface and
// advertises the address its connection to the launcher leaves from.
#include <csignal>
#include <cstdlib>
#include <optional>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>

#include "daemon.hpp"
#include "node_identity.hpp"

namespace {

dragonx::rt::detail::run_secret read_secret()
{
    using dragonx::rt::detail::secret_from_hex;
    if (const char* env = std::getenv("DRAGONX_RUN_SECRET"); env != nullptr) {
        auto secret = secret_from_hex(env);
        ::unsetenv("DRAGONX_RUN_SECRET");
        return secret;
    }
    std::string line;
    if (!std::getline(std::cin, line)) {
        throw dragonx::error(dragonx::errc::invalid_argument,
                             "no run secret on stdin (dragonx-runtime is started by dragonx run)");
    }
    return secret_from_hex(line);
}

}  // namespace

int main(int argc, char** argv)
{
    dragonx::rt::detail::daemon_config config;
    dragonx::rt::detail::node_identity_options identity;
    std::string launcher;
    std::string level = "warning";
    CLI::App app{"dragonx-runtime: the per-node daemon of a dragonx run (started by dragonx run)"};
    app.add_option("--run", config.run, "run id")->required();
    app.add_option("--node", identity.node, "this node's index");
    app.add_option("--node-from", identity.node_from,
                   "variables holding the node index (the first one set counts)");
    app.add_option("--nnodes", config.nnodes, "number of nodes")->required();
    app.add_option("--hostname", identity.hostname, "this node's name in the run");
    app.add_option("--hostname-from", identity.hostname_from, "variable holding the name");
    app.add_option("--hostnames", identity.hostnames, "names of all nodes, by index");
    app.add_option("--launcher", launcher, "HOST:PORT of the launcher")->required();
    app.add_option("--address", config.address,
                   "address to listen on for other daemons (0.0.0.0: all, see above)");
    app.add_option("--log-level", level, "debug|info|warning|error|critical|none");
    app.add_option("--transport", config.transport, "tcp|ofi|ofi:<provider>");
    CLI11_PARSE(app, argc, argv);

    spdlog::set_pattern("dragonx-runtime: %l: %v");
    spdlog::set_level(spdlog::level::from_str(level == "warning" ? "warn"
                                              : level == "none"  ? "off"
                                                                 : level));
    try {
        config.secret = read_secret();  // first: the secret leaves the environment at once
        const auto id = dragonx::rt::detail::resolve_node_identity(identity, config.nnodes,
                                              [](const std::string& name) {
                                                  const char* v = std::getenv(name.c_str());
                                                  return v != nullptr
                                                             ? std::optional<std::string>(v)
                                                             : std::nullopt;
                                              });
        config.node = id.node;
        config.hostname = id.hostname;
        spdlog::set_pattern(fmt::format("dragonx-runtime[node {} {}]: %l: %v", config.node,
                                        config.hostname));
        // The daemon is a process of the run on its node (before any thread starts): the
        // channels its transport agent attaches are then seen as local, others' as remote.
        ::setenv("DRAGONX_RUN", config.run.c_str(), 1);
        ::setenv("DRAGONX_NODE", std::to_string(config.node).c_str(), 1);
        const auto colon = launcher.rfind(':');
        if (colon == std::string::npos) {
            throw dragonx::error(dragonx::errc::invalid_argument, "--launcher must be HOST:PORT");
        }
        config.launcher_host = launcher.substr(0, colon);
        config.launcher_port = static_cast<std::uint16_t>(std::stoul(launcher.substr(colon + 1)));

        asio::io_context io;
        dragonx::rt::detail::node_daemon daemon(io, config);
        asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
        signals.async_wait([&](const std::error_code& ec, int sig) {
            if (!ec) {
                daemon.shutdown(std::string("got signal ") + ::strsignal(sig));
            }
        });
        std::signal(SIGPIPE, SIG_IGN);
        daemon.start();
        io.run();
        return daemon.exit_code();
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }
}
