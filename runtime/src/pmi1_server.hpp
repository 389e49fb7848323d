// pmi1_server.hpp - a PMI-1 job (pmi1_job.hpp) served on a TCP port: what the ranks of an
// MPICH program find through PMI_PORT=<host>:<port> and PMI_ID=<rank>.
//
//   pmi1_server pmi(io, "10.0.0.1", "kvs_dragonx_g1", {0, 1, 0, 1}, hooks);
//   env["PMI_PORT"] = pmi.port_string();        // "10.0.0.1:40123"
//   ...
//   pmi.rank_exited(2);                        // the process of rank 2 has exited
//
// Notes:
// - Listens on `address` (an IP address), on a port the system picks, from construction to
//   destruction. One connection per rank; lines are read with a limit (pmi1_max_line): a
//   longer line is answered with an error and closes the connection, like any bad line.
// - Everything runs on `io`'s thread (the daemon's event loop) and never blocks; not
//   thread-safe.
// - The destructor closes the port and every connection (a rank still talking to it sees
//   its connection end); no hook is called after it. Handlers still queued in `io` keep the
//   server's state alive and find it closed.
// - A connection the job is done with (refused, or the job failed) gets its last lines, then
//   our side is shut down and what the client still sends is read and dropped until it
//   closes (so the error line is not lost to a reset).
// - At most 4 × ranks + 16 connections at a time; more are closed at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "pmi1_job.hpp"

namespace dragonx::rt::detail {

class pmi1_server {
public:
    /// Throws errc::invalid_argument (see pmi1_job), or std::system_error if it cannot listen.
    /// hooks.send and hooks.close are the server's own; `aborted` and `failed` are passed on.
    pmi1_server(asio::io_context& io, const std::string& address, std::string kvsname,
                std::vector<std::uint32_t> node_of_rank, pmi1_job_hooks hooks);
    ~pmi1_server();
    pmi1_server(const pmi1_server&) = delete;
    pmi1_server& operator=(const pmi1_server&) = delete;

    /// "<address>:<port>", the value of PMI_PORT.
    [[nodiscard]] std::string port_string() const;
    [[nodiscard]] std::uint16_t port() const;

    /// The process of `rank` exited (see pmi1_job::rank_exited).
    void rank_exited(int rank);
    [[nodiscard]] bool failed() const;
    [[nodiscard]] bool finalized(int rank) const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

}  // namespace dragonx::rt::detail
