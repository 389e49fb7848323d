// semaphore.hpp - dragonx::semaphore: a counter of permits shared by the processes of a node.
//
//   auto slots = dragonx::semaphore::create(pool, {.value = 4});
//   slots.acquire(10s);   // takes a permit, waiting up to 10 s for one
//   ...
//   slots.release();
//
// Notes:
// - A bounded semaphore never holds more permits than it started with: a release beyond
//   that throws errc::invalid_argument and changes nothing.
// - The count is one atomic word: a process killed at any point takes its permits with it
//   (they are not returned) but cannot corrupt the count.
// - Lifetime and locality as in sync_object.hpp.
#pragma once

#include <cstdint>
#include <string_view>

#include <dragonx/channels/sync_object.hpp>
#include <dragonx/common/deadline.hpp>

namespace dragonx {

struct semaphore_options {
    /// Permits at the start, >= 0.
    std::int64_t value = 1;
    /// If true, releases can never raise the count above `value`.
    bool bounded = false;
};

class semaphore : public sync_object {
public:
    /// Throws errc::invalid_argument (negative value), errc::pool_full.
    [[nodiscard]] static semaphore create(const pool::pool& pool,
                                          const semaphore_options& options = {});
    /// Throws as event::attach does.
    [[nodiscard]] static semaphore attach(std::string_view descriptor);

    semaphore() noexcept = default;

    /// Takes a permit if one is free; never waits.
    [[nodiscard]] bool try_acquire();
    /// Takes a permit, waiting up to `limit` for one. Throws errc::timeout.
    void acquire(timeout limit);
    /// Returns `n` >= 1 permits, waking waiters. Throws errc::invalid_argument for n < 1 or
    /// for a bounded semaphore that would exceed its bound.
    void release(std::int64_t n = 1);
    /// Free permits now (a snapshot).
    [[nodiscard]] std::int64_t value() const;
    [[nodiscard]] bool bounded() const;

private:
    using sync_object::sync_object;
};

}  // namespace dragonx
