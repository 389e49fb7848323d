// linger_policy.hpp - whether the transport agent lets a result for a peer wait for a request
// to the same peer, so that both leave in one write (tcp) or one message (ofi).
//
// Lingering pays when the local process that just got a message answers at once (a
// ping-pong, an RPC, a DDict request); when nothing follows (a stream of sends that nobody
// answers) it only delays the result. The policy learns which from outcomes: a request to the
// held result's node raises a score, a linger that ran out lowers it. Below zero only one
// result in `explore_every` lingers, so that a change of pattern is still noticed.
//
// Notes:
// - Plain state of the agent's thread: not thread-safe, no clock (the agent times the linger).
#pragma once

#include <algorithm>

namespace dragonx::rt::detail {

class linger_policy {
public:
    static constexpr int max_score = 16;
    static constexpr unsigned explore_every = 8;

    /// Asked when a result for a peer is about to be sent.
    [[nodiscard]] bool should_hold() noexcept
    {
        return score_ >= 0 || ++skipped_ % explore_every == 0;
    }
    /// A request to the held result's node left with it.
    void paid_off() noexcept { score_ = std::min(score_ + 2, max_score); }
    /// The linger ran out with no such request.
    void ran_out() noexcept { score_ = std::max(score_ - 1, -max_score); }

private:
    int score_ = 0;
    unsigned skipped_ = 0;
};

}  // namespace dragonx::rt::detail
