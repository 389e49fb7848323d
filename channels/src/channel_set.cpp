// channel_set.cpp - polling several local channels, sleeping on all their futex words at once.
#include <dragonx/channels/channel_set.hpp>

#include <algorithm>
#include <string>

#include <dragonx/common/error.hpp>
#include <dragonx/common/futex.hpp>

#include "channel_state.hpp"

namespace dragonx::channels {

namespace {
constexpr std::size_t max_channels = 128;
}

channel_set::channel_set(std::vector<const channel*> channels) : channels_(std::move(channels))
{
    if (channels_.empty() || channels_.size() > max_channels) {
        throw_error(errc::invalid_argument, "a channel set holds 1 to " +
                                                std::to_string(max_channels) + " channels, not " +
                                                std::to_string(channels_.size()));
    }
    for (const channel* ch : channels_) {
        if (ch == nullptr || !*ch) {
            throw_error(errc::invalid_argument, "a channel set was given an empty channel handle");
        }
        const auto& s = ch->state();
        if (!s.is_local()) {
            throw_error(errc::not_local, "a channel set watches channels of this node only; " +
                                             s.name() + " lives on node " +
                                             std::to_string(s.node));
        }
        s.check_alive();
    }
}

std::optional<std::size_t> channel_set::first_readable()
{
    const std::size_t n = channels_.size();
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = (next_ + k) % n;
        const auto& s = channels_[i]->state();
        if (s.has_message() || s.is_gone()) {
            next_ = (i + 1) % n;
            return i;
        }
    }
    return std::nullopt;
}

std::optional<std::size_t> channel_set::poll(timeout limit)
{
    const auto until = deadline::after(limit);
    std::optional<std::size_t> found;
    const auto ready = [&] {
        found = first_readable();
        return found.has_value();
    };
    if (!wait_busy_phases(ready, until, policy_)) {
        // Sleep on every channel's receive word: a sender wakes us through any of them.
        std::vector<futex_watch> watches(channels_.size());
        for (const channel* ch : channels_) {
            ch->state().header->recv_sleepers.fetch_add(1, std::memory_order_seq_cst);
        }
        for (;;) {
            for (std::size_t i = 0; i < channels_.size(); ++i) {
                const auto& h = *channels_[i]->state().header;
                watches[i] = {&h.recv_seq, h.recv_seq.load(std::memory_order_seq_cst)};
            }
            if (ready()) {
                break;
            }
            const auto left = until.remaining();
            if (left && left->count() == 0) {
                break;
            }
            futex_wait_any(watches, left ? std::min(*left, policy_.max_sleep) : policy_.max_sleep);
        }
        for (const channel* ch : channels_) {
            ch->state().header->recv_sleepers.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    if (found) {
        channels_[*found]->state().check_alive();  // a destroyed channel throws, not "ready"
    }
    return found;
}

}  // namespace dragonx::channels
