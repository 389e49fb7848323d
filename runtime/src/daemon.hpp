// daemon.hpp - dragonx-runtime: the per-node daemon of a run.
//
//   node_daemon d(io, config);
//   d.start();        // binds its sockets, connects to the launcher, reports the node
//   io.run();         // until teardown; then d.exit_code()
//
// What it does (DESIGN.md §1, §5, §6):
// - Connects to the launcher over TCP (authenticated with the run secret), reports its node
//   (daemon_up), receives the node table, and then serves until teardown.
// - Node 0 is the primary: it hosts global services and accepts the other daemons' TCP
//   connections; every other daemon connects to it once it has the node table. The head is
//   started only when every daemon has joined.
// - Local processes talk to it over a Unix socket (run directory, 0700): node requests
//   (register_shm) are served here, global ones forwarded to the primary and answered back.
// - Managed processes are started by its supervisor (spawn_process from the primary),
//   their output is forwarded to the launcher, their exits reported to the primary.
// - Heartbeats: it sends one to the launcher every second and gives the launcher up after
//   `launcher_silence_limit` of silence or on a closed connection: then it tears down alone.
// - Teardown (launcher's teardown, or launcher lost): SIGTERM to every process, SIGKILL after
//   the grace period, registered and node shm objects removed, socket removed (and, after
//   losing a launcher that has exited, its launcher record, so that the last daemon removes
//   the run directory), teardown_done sent; then the io_context is stopped.
//
// Notes:
// - Single-threaded: everything runs on `io`'s thread.
// - A bad message from anyone closes that connection; the daemon carries on.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <asio/io_context.hpp>

#include "auth.hpp"

namespace dragonx::rt::detail {

struct daemon_config {
    std::string run;                 // run id
    std::uint32_t node = 0;          // this node's index
    std::uint32_t nnodes = 1;
    std::string hostname;            // this node's name in the run ("node0" for virtual nodes)
    std::string launcher_host;       // where the launcher listens
    std::uint16_t launcher_port = 0;
    std::string address = "127.0.0.1";  // where this daemon listens for other daemons
    run_secret secret{};
    std::string transport = "tcp";   // the transport agent's link: tcp | ofi | ofi:<provider>
    std::chrono::milliseconds heartbeat_interval{1000};
    std::chrono::milliseconds launcher_silence_limit{10000};
    std::chrono::milliseconds terminate_grace{1000};  // SIGTERM -> SIGKILL at teardown
};

class node_daemon {
public:
    node_daemon(asio::io_context& io, daemon_config config);
    ~node_daemon();
    node_daemon(const node_daemon&) = delete;
    node_daemon& operator=(const node_daemon&) = delete;

    /// Binds the sockets and starts connecting to the launcher. Throws on a bind failure.
    void start();

    /// Tears down as if the launcher were lost (SIGTERM to the daemon).
    void shutdown(const std::string& why);

    /// 0 after a teardown the launcher asked for; 1 after losing the launcher.
    [[nodiscard]] int exit_code() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace dragonx::rt::detail
