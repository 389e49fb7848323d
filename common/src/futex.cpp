// futex.cpp - FUTEX_WAIT / FUTEX_WAKE system calls.
#include <dragonx/common/futex.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <thread>

namespace dragonx {

void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::optional<std::chrono::nanoseconds> limit) noexcept
{
    timespec ts{};
    timespec* tsp = nullptr;
    if (limit) {
        const auto ns = limit->count() > 0 ? limit->count() : 0;
        ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        tsp = &ts;
    }
    // FUTEX_WAIT's timeout is relative. EAGAIN (value changed), EINTR and ETIMEDOUT all mean
    // "go and look again", which every caller does.
    ::syscall(SYS_futex, &word, FUTEX_WAIT, expected, tsp, nullptr, 0);
}

void futex_wait_any(std::span<const futex_watch> watches,
                    std::optional<std::chrono::nanoseconds> limit) noexcept
{
    constexpr std::size_t max_watches = 128;  // FUTEX_WAITV_MAX
    constexpr auto fallback_slice = std::chrono::milliseconds(1);
    // Without futex_waitv the caller's loop polls: sleep a short slice and let it look again.
    const auto sleep_a_slice = [&] {
        std::this_thread::sleep_for(
            limit ? std::min<std::chrono::nanoseconds>(*limit, fallback_slice) : fallback_slice);
    };
    if (watches.empty() || watches.size() > max_watches) {
        sleep_a_slice();
        return;
    }
    futex_waitv waiters[max_watches] = {};
    for (std::size_t i = 0; i < watches.size(); ++i) {
        waiters[i].val = watches[i].expected;
        waiters[i].uaddr = reinterpret_cast<std::uintptr_t>(watches[i].word);
        waiters[i].flags = FUTEX_32;  // shared: no FUTEX_PRIVATE_FLAG
    }
    // futex_waitv takes an absolute deadline on the given clock.
    timespec ts{};
    timespec* tsp = nullptr;
    if (limit) {
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        const auto ns = ts.tv_nsec + std::max<std::int64_t>(limit->count(), 0);
        ts.tv_sec += static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        tsp = &ts;
    }
    const long r = ::syscall(SYS_futex_waitv, waiters, watches.size(), 0, tsp, CLOCK_MONOTONIC);
    if (r < 0 && errno == ENOSYS) {
        sleep_a_slice();
    }
    // Otherwise: woken, a value differed (EAGAIN), a signal or the deadline: callers look again.
}

void futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept
{
    ::syscall(SYS_futex, &word, FUTEX_WAKE, count, nullptr, nullptr, 0);
}

}  // namespace dragonx
