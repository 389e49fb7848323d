// futex.cpp - FUTEX_WAIT / FUTEX_WAKE system calls.
#include <dragonx/common/futex.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ctime>

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

void futex_wake(const std::atomic<std::uint32_t>& word, int count) noexcept
{
    ::syscall(SYS_futex, &word, FUTEX_WAKE, count, nullptr, nullptr, 0);
}

}  // namespace dragonx
