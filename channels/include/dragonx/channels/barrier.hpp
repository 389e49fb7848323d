// barrier.hpp - dragonx::barrier: `parties` processes wait until all of them have arrived.
//
//   auto b = dragonx::barrier::create(pool, 4);
//   // in each of the 4 processes: dragonx::barrier::attach(desc).wait(30s)
//
// wait() returns a distinct index in [0, parties) to each waiter of a round (the order of
// arrival), then the barrier is ready for the next round.
//
// Notes:
// - abort() breaks the barrier: current waiters and every later wait() throw
//   errc::broken_barrier until reset(). reset() makes current waiters throw
//   errc::broken_barrier and the barrier usable again.
// - A wait that times out throws errc::timeout and breaks the barrier for the others (they
//   cannot complete a round without the one that left).
// - An optional action runs in the last arriving process before the others are released; if
//   it throws, the barrier breaks and the exception goes to that process.
// - A process killed while waiting has still arrived: its round completes without it. One
//   killed before arriving leaves a round that cannot complete: the others time out (or wait
//   for ever if they asked for no timeout). Lifetime and locality as in sync_object.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include <dragonx/channels/sync_object.hpp>
#include <dragonx/common/deadline.hpp>

namespace dragonx {

class barrier : public sync_object {
public:
    using action_type = std::function<void()>;

    /// Throws errc::invalid_argument (parties < 1 or > 2^31), errc::pool_full.
    [[nodiscard]] static barrier create(const pool::pool& pool, std::int64_t parties,
                                        action_type action = {});
    /// Throws as event::attach does.
    [[nodiscard]] static barrier attach(std::string_view descriptor, action_type action = {});

    barrier() noexcept = default;

    /// Waits up to `limit` for the round to complete; returns this waiter's index. Throws
    /// errc::broken_barrier, errc::timeout (and breaks the barrier), errc::not_found.
    std::uint32_t wait(timeout limit);
    /// Breaks the barrier (see above).
    void abort();
    /// Breaks the current round, if any, and makes the barrier usable again.
    void reset();

    [[nodiscard]] std::uint32_t parties() const;
    /// Waiters in the current round (a snapshot); 0 while the barrier is broken.
    [[nodiscard]] std::uint32_t n_waiting() const;
    [[nodiscard]] bool broken() const;

private:
    barrier(std::unique_ptr<detail::sync_state> state, action_type action) noexcept;
    // The last arrival of round g: runs the action, then releases the round.
    void release_round(std::uint32_t g);

    action_type action_;
};

}  // namespace dragonx
