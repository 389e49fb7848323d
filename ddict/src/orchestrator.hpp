// orchestrator.hpp - a DDict's orchestrator: brings the managers up, tells clients where
// they are, and takes the dictionary down. Not on the data path.
//
// Bring-up: start one manager process per placement policy, wait until each reports ready
// (manager_ready with its request channel), then answer the creator with the descriptor and
// the directory. If a manager cannot start, exits or stays silent past the bring-up limit,
// the others are killed and the creator gets the reason: nothing is left behind (each
// manager's pool is registered with its node's runtime, which removes it when it exits).
//
// Serving: attach (a client id and the directory), managers (the directory again, with the
// empty managers), mark_empty (for clone) and destroy (shutdown to every manager, wait for
// them to exit, answer, exit).
//
// Restart (spec §7.1): a destroy with allow_restart has each manager keep its pool and state
// and report where (manager_kept); the orchestrator then writes a restart record (the options
// and the kept managers) to <persist_path>/<name>.ddict-restart. A create with `restart` reads
// it back: each manager is started on the node of the same name with its kept state, or, if
// that node is not in the run, empty on another node (and its old kept pool is removed when
// this host can see it). A plain destroy removes the record. A fresh create of a name that
// has a record is refused, so kept data is never overwritten by mistake.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/pool/pool.hpp>
#include <dragonx/runtime/process.hpp>

#include "protocol.hpp"

namespace dragonx::dict {

class orchestrator {
public:
    /// `self_exe`: the dragonx-ddict program, started again in the manager role.
    orchestrator(server_options options, std::string self_exe);

    /// Brings the managers up and answers the creator (reply channel descriptor) with the
    /// outcome. Returns false (after cleaning up) if bring-up failed.
    bool bring_up(const std::string& creator_reply);
    /// Serves attach and destroy requests until destroyed.
    void serve();

private:
    void answer(const std::string& reply_channel, std::uint64_t tag, errc status,
                std::string_view info, byte_view body);
    /// Stops the managers; with keep, collects where each kept its state and writes the
    /// restart record. Returns what went wrong (empty: nothing).
    std::string stop_managers(bool keep);
    [[nodiscard]] directory directory_for(std::uint64_t client_id) const;
    /// The kept state of each manager for a restart (nullopt: comes back empty), placing
    /// managers whose node is gone; reads and checks the restart record.
    std::vector<std::optional<kept_manager>> plan_restart();

    server_options options_;
    std::string self_exe_;
    pool::pool pool_;
    channels::channel requests_;
    std::vector<process> processes_;
    std::vector<manager_info> managers_;
    std::string descriptor_;
    std::uint64_t next_client_ = 1;
    std::vector<std::uint32_t> empty_;  // managers that came back empty, or marked so
};

}  // namespace dragonx::dict
