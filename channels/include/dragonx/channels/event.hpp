// event.hpp - dragonx::event: a flag processes wait on, set and cleared by any of them.
//
//   auto ready = dragonx::event::create(pool);
//   // another process: dragonx::event::attach(desc).wait(5s)
//   ready.set();
//
// Notes:
// - set() wakes every waiter; waiting on a set event returns at once. clear() does not wake.
// - Lifetime and locality as in sync_object.hpp.
#pragma once

#include <string_view>

#include <dragonx/channels/sync_object.hpp>
#include <dragonx/common/deadline.hpp>

namespace dragonx {

class event : public sync_object {
public:
    /// A new, cleared event in `pool`. Throws errc::pool_full.
    [[nodiscard]] static event create(const pool::pool& pool);
    /// Throws errc::malformed_descriptor, not_found (destroyed), invalid_argument (the
    /// descriptor names another kind of object), not_local, wrong_run.
    [[nodiscard]] static event attach(std::string_view descriptor);

    event() noexcept = default;

    void set();
    void clear();
    [[nodiscard]] bool is_set() const;
    /// Waits up to `limit` for the event to be set; false if it was still clear then.
    /// Throws errc::invalid_argument (negative limit), errc::not_found (destroyed).
    [[nodiscard]] bool wait(timeout limit) const;

private:
    using sync_object::sync_object;
};

}  // namespace dragonx
