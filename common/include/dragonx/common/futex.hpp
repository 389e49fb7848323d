// futex.hpp - process-shared futex wait and wake on a 32-bit atomic in shared memory.
//
// Notes:
// - Shared (not FUTEX_PRIVATE) futexes: the word may live in a mapping shared by processes
//   that map it at different addresses; the kernel keys them by the underlying page.
// - futex_wait returns when woken, when *word != expected, on a signal, or at the timeout:
//   callers re-check their condition in a loop. It never throws for those cases.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>

namespace dragonx {

static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

/// Sleeps while *word == expected, at most `limit` (std::nullopt: no limit).
void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::optional<std::chrono::nanoseconds> limit) noexcept;

/// One word of futex_wait_any: sleep while *word == expected.
struct futex_watch {
    const std::atomic<std::uint32_t>* word;
    std::uint32_t expected;
};

/// Sleeps while every watched word still holds its expected value, at most `limit`; at most
/// 128 words. Uses futex_waitv (Linux 5.16+); on older kernels it sleeps for a short slice
/// (1 ms, or less if `limit` is shorter) so callers polling in a loop stay correct.
void futex_wait_any(std::span<const futex_watch> watches,
                    std::optional<std::chrono::nanoseconds> limit) noexcept;

/// Wakes up to `count` sleepers on `word`.
void futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept;

}  // namespace dragonx
