// wait.hpp - how dragonx waits for a condition another process will make true: spin briefly,
// then yield, then sleep on a futex.
//
// Waking a sleeping process on another core costs tens of microseconds on small VMs, so a short
// busy spin catches a partner that is about to act. Spinning with more busy processes than
// cores steals the partner's CPU, so the second phase yields the CPU between looks, and the
// last phase sleeps. Every phase honours the deadline.
//
// Protocol with the waker (both sides in shared memory):
//   waiter: sleepers += 1; s = seq; if (!ready()) futex_wait(seq, s); ... sleepers -= 1
//   waker:  make ready() true; wake_sleepers(seq, sleepers)
// The waker's fence and the waiter's seq_cst increment make sure that either the waker sees
// the sleeper, or the sleeper sees ready() before it sleeps: no lost wake-ups.
//
// Notes:
// - A waiter killed while asleep leaves `sleepers` raised; wakers then make one harmless
//   extra system call per wake. Sleeps are capped (max_sleep) so a waker killed between
//   making ready() true and waking costs a bounded delay, never a hang.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>

#include <dragonx/common/deadline.hpp>
#include <dragonx/common/futex.hpp>

namespace dragonx {

struct wait_policy {
    /// Busy-polling time before yielding.
    std::chrono::nanoseconds spin = std::chrono::microseconds(10);
    /// Polling time with sched_yield() between looks, before sleeping.
    std::chrono::nanoseconds yield = std::chrono::microseconds(100);
    /// Longest single futex sleep; the condition is re-checked after it.
    std::chrono::nanoseconds max_sleep = std::chrono::milliseconds(50);
};

inline void cpu_relax() noexcept
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
}

/// The busy phases of a wait: spins for policy.spin, then yields between looks for
/// policy.yield. True as soon as ready(); false when both phases (or the deadline) ran out
/// without it: the caller then sleeps, or gives up at the deadline.
template <class Ready>
bool wait_busy_phases(Ready&& ready, const deadline& until, const wait_policy& policy)
{
    using clock = std::chrono::steady_clock;
    if (ready()) {
        return true;
    }
    const auto start = clock::now();
    // Phase 1: spin. The clock is read once per 64 looks.
    for (unsigned i = 1; policy.spin.count() > 0; ++i) {
        if (ready()) {
            return true;
        }
        cpu_relax();
        if (i % 64 == 0) {
            const auto now = clock::now();
            if (now - start >= policy.spin || until.expired()) {
                break;
            }
        }
    }
    // Phase 2: yield between looks.
    while (clock::now() - start < policy.spin + policy.yield) {
        if (ready()) {
            return true;
        }
        if (until.expired()) {
            return ready();
        }
        ::sched_yield();
    }
    return false;
}

/// Waits until ready() returns true (then returns true) or `until` passes (then returns
/// false). ready() must be cheap and safe to call often, from any process.
template <class Ready>
bool wait_until(Ready&& ready, std::atomic<std::uint32_t>& seq,
                std::atomic<std::uint32_t>& sleepers, const deadline& until,
                const wait_policy& policy)
{
    if (wait_busy_phases(ready, until, policy)) {
        return true;
    }
    // Phase 3: sleep.
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    for (;;) {
        const std::uint32_t s = seq.load(std::memory_order_seq_cst);
        if (ready()) {
            sleepers.fetch_sub(1, std::memory_order_relaxed);
            return true;
        }
        const auto left = until.remaining();
        if (left && left->count() == 0) {
            sleepers.fetch_sub(1, std::memory_order_relaxed);
            return false;
        }
        futex_wait(seq, s, left ? std::min(*left, policy.max_sleep) : policy.max_sleep);
    }
}

/// Wakes every sleeper of `seq`, if there is any: no system call otherwise. Call after
/// making the condition true.
inline void wake_sleepers(std::atomic<std::uint32_t>& seq,
                          std::atomic<std::uint32_t>& sleepers) noexcept
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) != 0) {
        seq.fetch_add(1, std::memory_order_seq_cst);
        futex_wake(seq, INT_MAX);
    }
}

}  // namespace dragonx
