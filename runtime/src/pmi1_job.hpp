// pmi1_job.hpp - the server side of MPICH's simple PMI-1 protocol for one MPI job (one
// process group): who is which rank, the job's key-value space, barriers, finalize, abort.
// No sockets: lines go in through line(), replies come out through hooks, so that the
// protocol can be tested without processes (pmi1_server.hpp puts it on TCP).
//
//   pmi1_job job("kvs_dragonx_g1", {0, 1, 0, 1}, hooks);   // 4 ranks over 2 nodes
//   job.line(client, "cmd=initack pmiid=2");   // replies initack, set size/rank/debug
//   job.line(client, "cmd=barrier_in");        // barrier_out to all once 4 have entered
//
// What a client sends (as MPICH 4.0.2's simple PMI client does with PMI_PORT and PMI_ID set):
// `initack pmiid=<rank>` first (answered with `initack`, then `set size=`, `set rank=`,
// `set debug=`), then `init`, `get_maxes`, `get_appnum`, `get_my_kvsname`,
// `get_universe_size`, `put`, `get`, `barrier_in`, `finalize`, `abort`.
//
// Notes:
// - Single-threaded: call it from one thread (the daemon's event loop). It never blocks; a
//   barrier is a count, answered when the last rank enters.
// - Bad input is answered, never fatal to the server: a malformed line, a first command that
//   is not initack, an unknown or taken pmiid, or a second barrier_in while in a barrier get
//   `cmd=error rc=-1 msg=<why>` and the client is closed. An unknown command gets the same
//   error line and the client may go on. put/get errors (unknown kvsname, key or value too
//   long, the space full, a missing key) are `rc=-1 msg=...` in their reply.
// - The job fails, once, when a rank is lost: its connection ends or it sends a bad line
//   before it finalized, it exits before it finalized (rank_exited), or it calls abort.
//   Then every client gets `cmd=error rc=-1 msg=<why>` and is closed (so ranks waiting in a
//   barrier for the lost one are released with an error instead of hanging), later clients
//   are refused, and hooks.failed says why. hooks.aborted comes first for an abort, and
//   the aborting client itself is left open and unanswered (MPICH waits to be killed).
// - hooks.close(client) means the job has forgotten `client`: flush what was sent, then
//   close it; do not report its disconnection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pmi1_wire.hpp"

namespace dragonx::rt::detail {

struct pmi1_job_hooks {
    /// Queue `line` (with its '\n') to `client`.
    std::function<void(std::uint64_t client, std::string line)> send;
    /// Flush, then close `client` (see Notes).
    std::function<void(std::uint64_t client)> close;
    /// Rank `rank` called PMI_Abort with `exit_code`. The caller ends its process: MPICH's
    /// PMI_Abort waits for the process manager to do so (it gets no reply).
    std::function<void(int rank, int exit_code)> aborted;
    /// The job failed (see Notes); called once.
    std::function<void(const std::string& why)> failed;
};

/// Where each rank runs among the job's nodes: its index among the ranks on its node, and
/// how many ranks that node has (MPI_LOCALRANKID, MPI_LOCALNRANKS).
struct pmi1_local_rank {
    int index = 0;
    int count = 0;
};
[[nodiscard]] std::vector<pmi1_local_rank> pmi1_local_ranks(
    const std::vector<std::uint32_t>& node_of_rank);

/// The value of the PMI_process_mapping key MPICH reads: "(vector,(node,nodes,ranks),...)",
/// nodes numbered in order of first appearance, one block per run of consecutive ranks on
/// one node (runs over consecutive nodes with the same count merged). Empty if it would be
/// longer than `max_length` (MPICH then finds the nodes itself, by host name).
[[nodiscard]] std::string pmi1_process_mapping(const std::vector<std::uint32_t>& node_of_rank,
                                               std::size_t max_length);

class pmi1_job {
public:
    /// The limits announced by get_maxes.
    static constexpr std::size_t kvsname_max = 256;
    static constexpr std::size_t keylen_max = 64;
    static constexpr std::size_t vallen_max = 1024;
    /// At most this many bytes of keys and values in the key-value space.
    static constexpr std::size_t space_max = 64u << 20;

    /// A job of `node_of_rank.size()` ranks (node_of_rank[r]: the dragonx node of rank r).
    /// Throws errc::invalid_argument for no ranks or a kvsname that is empty, too long or
    /// holds a space, '=' or a control character.
    pmi1_job(std::string kvsname, std::vector<std::uint32_t> node_of_rank, pmi1_job_hooks hooks);

    /// A request line (without '\n') from `client` (any id the caller picks, one per
    /// connection).
    void line(std::uint64_t client, std::string_view text);
    /// `client`'s connection ended (EOF or an error) without the job closing it.
    void disconnected(std::uint64_t client);
    /// The process of `rank` exited.
    void rank_exited(int rank);

    [[nodiscard]] bool failed() const noexcept { return failed_; }
    /// Whether `rank` has finalized (false for a rank out of range).
    [[nodiscard]] bool finalized(int rank) const noexcept;
    [[nodiscard]] std::size_t size() const noexcept { return ranks_.size(); }
    [[nodiscard]] const std::string& kvsname() const noexcept { return kvsname_; }

private:
    struct rank_state {
        std::uint64_t client = 0;  // 0: not connected
        bool connected_once = false;
        bool in_barrier = false;
        bool finalized = false;
    };

    void handshake(std::uint64_t client, const pmi1_command& initack);
    void request(int rank, std::uint64_t client, const pmi1_command& c);
    void put(std::uint64_t client, const pmi1_command& c);
    void get(std::uint64_t client, const pmi1_command& c);
    void barrier_in(int rank, std::uint64_t client);
    void refuse(std::uint64_t client, const std::string& why);
    void fail(const std::string& why);
    int rank_of(std::uint64_t client) const;

    std::string kvsname_;
    pmi1_job_hooks hooks_;
    std::vector<rank_state> ranks_;
    std::map<std::uint64_t, int> clients_;  // every open client: its rank, -1 before initack
    std::map<std::string, std::string> space_;
    std::size_t space_bytes_ = 0;
    std::size_t in_barrier_ = 0;
    bool failed_ = false;
};

}  // namespace dragonx::rt::detail
