// event.cpp - dragonx::event over sync_header::value (0 clear, 1 set).
#include <dragonx/channels/event.hpp>

#include "sync_state.hpp"

namespace dragonx {

event event::create(const pool::pool& pool)
{
    auto s = create_state(pool, detail::sync_kind::event);
    s->header->ready.store(1, std::memory_order_release);
    return event(std::move(s));
}

event event::attach(std::string_view descriptor)
{
    return event(attach_state(descriptor, detail::sync_kind::event));
}

void event::set()
{
    auto& s = state();
    // release: what the setter wrote before set() is visible to whoever sees the flag.
    s.header->value.store(1, std::memory_order_release);
    s.wake();
}

void event::clear()
{
    state().header->value.store(0, std::memory_order_release);
}

bool event::is_set() const
{
    return state().header->value.load(std::memory_order_acquire) == 1;
}

bool event::wait(timeout limit) const
{
    const auto& s = state();
    const auto until = deadline::after(limit);
    return s.wait([&] { return s.header->value.load(std::memory_order_acquire) == 1; }, until);
}

}  // namespace dragonx
