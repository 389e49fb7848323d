// sync_object.cpp - create, attach and destroy the pool-resident barrier, event and semaphore.
#include <dragonx/channels/sync_object.hpp>

#include <cstring>

#include <spdlog/spdlog.h>

#include <dragonx/common/descriptor.hpp>
#include <dragonx/common/log.hpp>
#include <dragonx/common/random.hpp>
#include <dragonx/common/robust_mutex.hpp>
#include <dragonx/common/wire.hpp>

#include "pool_object.hpp"
#include "sync_state.hpp"

namespace dragonx {
namespace detail {

std::string_view sync_kind_name(sync_kind kind) noexcept
{
    switch (kind) {
    case sync_kind::event: return "event";
    case sync_kind::semaphore: return "semaphore";
    case sync_kind::barrier: return "barrier";
    }
    return "synchronisation object";
}

namespace {
inline constexpr std::uint8_t descriptor_version = 1;
}

}  // namespace detail

using detail::sync_header;
using detail::sync_kind;
using detail::sync_state;

sync_object::sync_object() noexcept = default;
sync_object::sync_object(std::unique_ptr<sync_state> state) noexcept : state_(std::move(state)) {}
sync_object::sync_object(sync_object&&) noexcept = default;

sync_object& sync_object::operator=(sync_object&& other) noexcept
{
    if (this != &other) {
        destroy_if_owner();
        state_ = std::move(other.state_);
    }
    return *this;
}

sync_object::~sync_object()
{
    destroy_if_owner();
}

void sync_object::destroy_if_owner() noexcept
{
    if (state_ && state_->owner && !state_->is_gone()) {
        try {
            destroy();
        } catch (const std::exception& e) {
            log::get("channels").error("destroying a {}: {}", sync_kind_name(state_->kind),
                                       e.what());
        }
    }
}

std::unique_ptr<sync_state> sync_object::create_state(const pool::pool& pool, sync_kind kind)
{
    auto s = std::make_unique<sync_state>();
    s->pool = pool::pool::attach(pool.descriptor());
    s->nonce = random_u64() | 1;  // never 0: 0 marks a destroyed object
    s->kind = kind;
    s->owner = true;
    auto block = s->pool.try_allocate(sizeof(sync_header));
    if (!block) {
        throw_error(errc::pool_full, "cannot create a " + std::string(sync_kind_name(kind)) +
                                         ": no room in pool " + pool.name());
    }
    std::memset(block->data(), 0, sizeof(sync_header));
    auto* h = reinterpret_cast<sync_header*>(block->data());
    h->magic = detail::sync_magic;
    h->version = detail::sync_layout_version;
    h->kind = kind;
    h->nonce = s->nonce;
    init_robust_mutex(&h->lock);
    s->header = h;
    s->block_descriptor = block->release();

    byte_writer w;
    w.put_string(s->block_descriptor);
    w.put(s->nonce);
    w.put(static_cast<std::uint32_t>(kind));
    s->descriptor = seal_descriptor(descriptor_kind::sync, detail::descriptor_version, w.bytes());
    return s;
}

std::unique_ptr<sync_state> sync_object::attach_state(std::string_view descriptor,
                                                      sync_kind kind)
{
    const auto payload =
        open_descriptor(descriptor, descriptor_kind::sync, detail::descriptor_version);
    byte_reader r(payload, errc::malformed_descriptor, "barrier/event/semaphore descriptor");
    auto s = std::make_unique<sync_state>();
    s->block_descriptor = r.get_string();
    s->nonce = r.get<std::uint64_t>();
    const auto got_kind = static_cast<sync_kind>(r.get<std::uint32_t>());
    r.expect_end();
    s->kind = kind;
    s->descriptor = std::string(descriptor);
    const std::string name(sync_kind_name(kind));
    if (got_kind != kind) {
        throw_error(errc::invalid_argument, "this descriptor names a " +
                                                std::string(sync_kind_name(got_kind)) +
                                                ", not a " + name);
    }
    const auto home = channels::detail::locate_object(s->block_descriptor, name);
    if (!home.local) {
        throw_error(errc::not_local, name + " lives on node " + std::to_string(home.node) +
                                         "; barriers, events and semaphores work within a node");
    }
    auto borrowed = channels::detail::borrow_block(home, s->block_descriptor, name);
    s->pool = std::move(borrowed.pool);
    auto* h = reinterpret_cast<sync_header*>(borrowed.data);
    const bool size_matches = borrowed.size >= sizeof(sync_header);
    if (!size_matches || h->magic != detail::sync_magic ||
        h->version != detail::sync_layout_version || h->kind != kind ||
        h->ready.load(std::memory_order_acquire) != 1 || h->nonce != s->nonce) {
        throw_error(errc::not_found,
                    name + " was destroyed (its memory now holds something else)");
    }
    s->header = h;
    return s;
}

sync_state& sync_object::state() const
{
    if (!state_) {
        throw_error(errc::invalid_argument, "use of an empty barrier/event/semaphore handle");
    }
    state_->check_alive();
    return *state_;
}

std::string sync_object::descriptor() const { return state().descriptor; }
bool sync_object::owner() const { return state().owner; }
void sync_object::disown() { state().owner = false; }
void sync_object::set_wait_policy(const wait_policy& policy) { state().policy = policy; }

void sync_object::destroy()
{
    auto& s = state();
    s.header->destroyed.store(1, std::memory_order_release);
    s.header->nonce = 0;
    s.wake();
    s.pool.attach_allocation(s.block_descriptor).free();
    state_.reset();
}

}  // namespace dragonx
