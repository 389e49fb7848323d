// process_group.hpp - dragonx::process_group: N processes from templates, placed together,
// started, joined and stopped as one.
//
//   dragonx::process_group g({.restart = false});
//   g.add(4, {.exe = "./worker"});
//   g.start();
//   g.join(std::chrono::minutes(1));   // throws errc::process_failed if a member failed
//   g.close();
//
// Notes:
// - The group lives in global services (the primary daemon): restart (keep N alive by
//   replacing members that exit), walltime (members are sent SIGTERM, then SIGKILL, that
//   long after start) keep working whatever the creating process does; the handle only asks.
// - Members are placed in one evaluation: each template's policy over the group's policy
//   (the template's set fields win), over the global policy.
// - join() waits until no member runs. With ignore_error_on_exit false, a member that exited
//   non-zero on its own (not stopped by stop()/signal()/walltime) makes join() throw
//   errc::process_failed naming it, once per join.
// - stop(patience): SIGINT, then SIGTERM after `patience`, then SIGKILL; restarting ends.
// - The destructor closes a started group that was not closed (members are killed).
// - pmi = pmi_mode::pmi1 runs the members as the ranks of one MPICH job (programs built
//   with MPICH's mpicc): rank r is the r-th process added, and global services serves the
//   job's PMI-1 (MPICH's simple PMI wire protocol) on a TCP port of the primary node. Each
//   member gets PMI_PORT=<host>:<port>, PMI_ID, PMI_RANK, PMI_SIZE, MPI_LOCALRANKID and
//   MPI_LOCALNRANKS (its index among the ranks on its node, and their count), as MPICH's
//   mpiexec (hydra) gives them. As with mpiexec, a rank that exits non-zero before
//   MPI_Finalize, or calls MPI_Abort, has the other ranks that have not finalized killed
//   (SIGKILL; they do not count as failed, the rank does); with ignore_error_on_exit they
//   are left alone. A rank that calls MPI_Abort is itself killed (MPICH waits for that):
//   it fails with exit code 137. A rank lost before MPI_Finalize (exited with any code, or
//   its PMI connection ended) also releases the ranks waiting in a PMI barrier, with an
//   error, so they never wait for it forever. restart cannot be combined with pmi1
//   (errc::invalid_argument at start()).
//   PMIx (Open MPI) and Cray PMI are not supported: there is no pmi_mode for them.
// - Not thread-safe: one handle, one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <dragonx/common/deadline.hpp>
#include <dragonx/policy/policy.hpp>
#include <dragonx/runtime/process.hpp>

namespace dragonx {

/// How a group's members find each other as the ranks of an MPI job (see Notes).
using pmi_mode = rt::msg::pmi_mode;

struct group_options {
    bool restart = false;
    bool ignore_error_on_exit = false;
    std::optional<std::chrono::milliseconds> walltime;
    std::optional<policy> where;
    pmi_mode pmi = pmi_mode::none;
};

class process_group {
public:
    explicit process_group(group_options options = {});
    ~process_group();
    process_group(process_group&& other) noexcept;
    process_group& operator=(process_group&&) = delete;
    process_group(const process_group&) = delete;
    process_group& operator=(const process_group&) = delete;

    /// Adds `n` processes from `t` (before start()). Throws errc::invalid_argument after
    /// start() or for n == 0.
    process_group& add(std::uint32_t n, const process_template& t);

    /// Creates the group in global services and starts every member. Throws as
    /// process::start does (the members that did start keep running: close() them).
    void start();

    /// Waits up to `limit` until no member runs. Throws errc::timeout, or
    /// errc::process_failed (see Notes).
    void join(timeout limit = forever);

    /// SIGINT, SIGTERM, SIGKILL with `patience` between them, until no member runs.
    void stop(std::chrono::milliseconds patience = std::chrono::seconds(5));
    /// stop(patience), then the group is forgotten by global services.
    void close(std::chrono::milliseconds patience = std::chrono::seconds(5));

    /// Sends `sig` to every running member; restarting ends.
    void signal(int sig);
    void terminate() { signal(SIGTERM); }
    void kill() { signal(SIGKILL); }
    /// Members that exit are no longer replaced.
    void stop_restart();

    /// Puids of the members running now.
    [[nodiscard]] std::vector<puid_t> puids();
    /// (puid, exit code) of every member that has exited, in exit order.
    [[nodiscard]] std::vector<std::pair<puid_t, int>> exit_status();
    [[nodiscard]] bool walltime_expired();
    [[nodiscard]] std::uint64_t id() const noexcept { return id_; }

private:
    rt::msg::group_state ask(rt::message request);

    group_options options_;
    std::vector<rt::msg::group_member> members_;
    std::uint64_t id_ = 0;  // 0: not created yet
    bool closed_ = false;
    std::size_t errors_seen_ = 0;
};

}  // namespace dragonx
