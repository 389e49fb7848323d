// semaphore.cpp - dragonx::semaphore: one atomic count (sync_header::value), changed by CAS.
#include <dragonx/channels/semaphore.hpp>

#include <limits>
#include <string>

#include "sync_state.hpp"

namespace dragonx {

semaphore semaphore::create(const pool::pool& pool, const semaphore_options& options)
{
    if (options.value < 0) {
        throw_error(errc::invalid_argument, "a semaphore starts with 0 or more permits, not " +
                                                std::to_string(options.value));
    }
    auto s = create_state(pool, detail::sync_kind::semaphore);
    s->header->value.store(options.value, std::memory_order_relaxed);
    s->header->limit =
        options.bounded ? options.value : std::numeric_limits<std::int64_t>::max();
    s->header->ready.store(1, std::memory_order_release);
    return semaphore(std::move(s));
}

semaphore semaphore::attach(std::string_view descriptor)
{
    return semaphore(attach_state(descriptor, detail::sync_kind::semaphore));
}

bool semaphore::try_acquire()
{
    auto& count = state().header->value;
    std::int64_t v = count.load(std::memory_order_relaxed);
    // acquire on success: pairs with the release of the permit's previous holder.
    while (v > 0) {
        if (count.compare_exchange_weak(v, v - 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

void semaphore::acquire(timeout limit)
{
    auto& s = state();
    const auto until = deadline::after(limit);
    for (;;) {
        if (try_acquire()) {
            return;
        }
        if (!s.wait([&] { return s.header->value.load(std::memory_order_relaxed) > 0; },
                    until)) {
            throw_error(errc::timeout, "semaphore: no permit free at the timeout");
        }
    }
}

void semaphore::release(std::int64_t n)
{
    auto& s = state();
    if (n < 1) {
        throw_error(errc::invalid_argument,
                    "a semaphore releases 1 or more permits, not " + std::to_string(n));
    }
    auto& count = s.header->value;
    const std::int64_t bound = s.header->limit;
    std::int64_t v = count.load(std::memory_order_relaxed);
    do {
        if (v > bound - n) {
            // (v + n may not even be representable: say it without computing it.)
            throw_error(errc::invalid_argument,
                        "releasing " + std::to_string(n) + " permit(s) to a semaphore holding " +
                            std::to_string(v) + " would exceed its bound of " +
                            std::to_string(bound));
        }
    } while (!count.compare_exchange_weak(v, v + n, std::memory_order_release,
                                          std::memory_order_relaxed));
    s.wake();
}

std::int64_t semaphore::value() const
{
    return state().header->value.load(std::memory_order_acquire);
}

bool semaphore::bounded() const
{
    return state().header->limit != std::numeric_limits<std::int64_t>::max();
}

}  // namespace dragonx
