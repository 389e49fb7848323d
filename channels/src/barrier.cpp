// barrier.cpp - dragonx::barrier: rounds ("generations") counted under a robust mutex.
//
// A round g collects `parties` arrivals. The last one releases the round: it records in bit
// g % 64 of `released` that g ended well, resets `arrived` and moves `generation` to g + 1.
// reset() also ends the round (bit cleared: its waiters are broken); abort() sets `broken`,
// which fails the current waiters and every new wait until reset(). A waiter of round g
// wakes when generation != g or broken, and reads the outcome of g from the bit: the 64-bit
// history covers every round a waiter can still be looking at (a round cannot be released
// while one of its parties is still leaving the previous one).
#include <dragonx/channels/barrier.hpp>

#include <string>

#include <dragonx/common/robust_mutex.hpp>

#include "sync_state.hpp"

namespace dragonx {
namespace {

constexpr std::int64_t max_parties = std::int64_t{1} << 31;

[[noreturn]] void throw_broken()
{
    throw_error(errc::broken_barrier, "barrier is broken (aborted, reset, or a waiter timed "
                                      "out); reset() makes it usable again");
}

// Ends round g (lock held): released well or not, then wakes everyone.
void end_round(detail::sync_header& h, std::uint32_t g, bool well)
{
    const std::uint64_t bit = std::uint64_t{1} << (g % 64);
    if (well) {
        h.released.fetch_or(bit, std::memory_order_relaxed);
    } else {
        h.released.fetch_and(~bit, std::memory_order_relaxed);
    }
    h.arrived.store(0, std::memory_order_relaxed);
    // release: the outcome bit is visible to whoever sees the new generation.
    h.generation.store(g + 1, std::memory_order_release);
}

// How round g ended, once generation has moved past it.
bool round_released(const detail::sync_header& h, std::uint32_t g)
{
    const std::uint32_t now = h.generation.load(std::memory_order_acquire);
    if (now - g > 63) {
        return false;  // too long ago to know: cannot happen, see above; report broken
    }
    return (h.released.load(std::memory_order_relaxed) >> (g % 64) & 1) != 0;
}

}  // namespace

barrier::barrier(std::unique_ptr<detail::sync_state> state, action_type action) noexcept
    : sync_object(std::move(state)), action_(std::move(action))
{
}

barrier barrier::create(const pool::pool& pool, std::int64_t parties, action_type action)
{
    if (parties < 1 || parties > max_parties) {
        throw_error(errc::invalid_argument, "a barrier has 1 to 2^31 parties, not " +
                                                std::to_string(parties));
    }
    auto s = create_state(pool, detail::sync_kind::barrier);
    s->header->parties = static_cast<std::uint32_t>(parties);
    s->header->ready.store(1, std::memory_order_release);
    return barrier(std::move(s), std::move(action));
}

barrier barrier::attach(std::string_view descriptor, action_type action)
{
    return barrier(attach_state(descriptor, detail::sync_kind::barrier), std::move(action));
}

std::uint32_t barrier::wait(timeout limit)
{
    auto& s = state();
    auto& h = *s.header;
    const auto until = deadline::after(limit);
    std::uint32_t g = 0;
    std::uint32_t index = 0;
    {
        robust_lock lock(&h.lock);
        if (h.broken.load(std::memory_order_relaxed) != 0) {
            throw_broken();
        }
        g = h.generation.load(std::memory_order_relaxed);
        index = h.arrived.load(std::memory_order_relaxed);
        h.arrived.store(index + 1, std::memory_order_relaxed);
    }
    if (index + 1 == h.parties) {
        release_round(g);
        return index;
    }
    const auto round_over = [&] {
        return h.generation.load(std::memory_order_acquire) != g ||
               h.broken.load(std::memory_order_acquire) != 0;
    };
    if (!s.wait(round_over, until)) {
        robust_lock lock(&h.lock);
        if (!round_over()) {
            h.broken.store(1, std::memory_order_relaxed);
            s.wake();
            throw_error(errc::timeout, "barrier: " + std::to_string(h.arrived.load()) + " of " +
                                           std::to_string(h.parties) +
                                           " parties had arrived at the timeout; the barrier "
                                           "is now broken");
        }
    }
    if (h.generation.load(std::memory_order_acquire) != g && round_released(h, g)) {
        return index;
    }
    throw_broken();
}

void barrier::release_round(std::uint32_t g)
{
    auto& s = state();
    auto& h = *s.header;
    try {
        if (action_) {
            action_();
        }
    } catch (...) {
        robust_lock lock(&h.lock);
        if (h.generation.load(std::memory_order_relaxed) == g) {
            h.broken.store(1, std::memory_order_relaxed);
        }
        s.wake();
        throw;
    }
    {
        robust_lock lock(&h.lock);
        if (h.generation.load(std::memory_order_relaxed) != g ||
            h.broken.load(std::memory_order_relaxed) != 0) {
            throw_broken();  // aborted or reset while the action ran
        }
        end_round(h, g, true);
    }
    s.wake();
}

void barrier::abort()
{
    auto& s = state();
    {
        robust_lock lock(&s.header->lock);
        s.header->broken.store(1, std::memory_order_release);
    }
    s.wake();
}

void barrier::reset()
{
    auto& s = state();
    auto& h = *s.header;
    {
        robust_lock lock(&h.lock);
        end_round(h, h.generation.load(std::memory_order_relaxed), false);
        h.broken.store(0, std::memory_order_release);
    }
    s.wake();
}

std::uint32_t barrier::parties() const
{
    return state().header->parties;
}

std::uint32_t barrier::n_waiting() const
{
    // The waiters of a broken round have all left (or are leaving) with an error.
    const auto& h = *state().header;
    return h.broken.load(std::memory_order_acquire) != 0
               ? 0
               : h.arrived.load(std::memory_order_acquire);
}

bool barrier::broken() const
{
    return state().header->broken.load(std::memory_order_acquire) != 0;
}

}  // namespace dragonx
