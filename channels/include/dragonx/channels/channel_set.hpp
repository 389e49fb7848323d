// channel_set.hpp - wait for the first of several channels to have a message.
//
//   dragonx::channels::channel_set set({&requests, &control});
//   if (auto i = set.poll(100ms)) { /* channel *i has a message (a hint) */ }
//
// Notes:
// - Local channels only (the set sleeps on the channels' futex words); a channel on another
//   node throws errc::not_local. At most 128 channels. The channels must outlive the set.
// - Waiting spins, yields, then sleeps on all the channels at once (futex_waitv); senders need
//   no extra work, and send no wake-up unless someone sleeps.
// - poll() looks at the channels round-robin, starting after the one it returned last, so a
//   busy channel cannot hide the others. The answer is a hint: another receiver may take the
//   message first.
// - One set is used by one thread at a time.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/common/deadline.hpp>
#include <dragonx/common/wait.hpp>

namespace dragonx::channels {

class channel_set {
public:
    /// Throws errc::invalid_argument (no channel, more than 128, an empty handle) and
    /// errc::not_local.
    explicit channel_set(std::vector<const channel*> channels);

    /// The index (in construction order) of a channel with a message, waiting up to `limit`;
    /// nullopt at the timeout. Throws errc::not_found if one of the channels is destroyed.
    [[nodiscard]] std::optional<std::size_t> poll(timeout limit);

    [[nodiscard]] std::size_t size() const noexcept { return channels_.size(); }
    void set_wait_policy(const wait_policy& policy) noexcept { policy_ = policy; }

private:
    [[nodiscard]] std::optional<std::size_t> first_readable();

    std::vector<const channel*> channels_;
    std::size_t next_ = 0;  // where the next scan starts
    wait_policy policy_;
};

}  // namespace dragonx::channels
