// orchestrator.hpp - a DDict's orchestrator: brings the managers up, tells clients where
// they are, and takes the dictionary down. Not on the data path.
//
// Bring-up: start one manager process per placement policy, wait until each reports ready
// (manager_ready with its request channel), then answer the creator with the descriptor and
// the directory. If a manager cannot start, exits or stays silent past the bring-up limit,
// the others are killed and the creator gets the reason: nothing is left behind (each
// manager's pool is registered with its node's runtime, which removes it when it exits).
//
// Serving: attach (a client id and the directory) and destroy (shutdown to every manager,
// wait for them to exit, answer, exit).
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
    void stop_managers();
    [[nodiscard]] directory directory_for(std::uint64_t client_id) const;

    server_options options_;
    std::string self_exe_;
    pool::pool pool_;
    channels::channel requests_;
    std::vector<process> processes_;
    std::vector<manager_info> managers_;
    std::string descriptor_;
    std::uint64_t next_client_ = 1;
};

}  // namespace dragonx::dict
