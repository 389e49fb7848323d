// sync_object.hpp - what barrier, event and semaphore share: a small shared-memory object in a
// block of a pool, named by a descriptor string, with the channels' way of waiting.
//
// Notes:
// - Lifetime as for channels: create() in a pool; attach(descriptor) from any process of the
//   node; the creating handle destroys the object when it goes away unless it disowned it;
//   destroy() wakes every waiter, which then gets errc::not_found.
// - These objects hold their state in atomics (and a robust mutex for the barrier), so a
//   process killed at any point leaves them usable by the others.
// - Node-local: attaching one from another node throws errc::not_local.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <dragonx/common/wait.hpp>

namespace dragonx {

namespace pool {
class pool;
}

namespace detail {
struct sync_state;
enum class sync_kind : std::uint32_t;
}  // namespace detail

class sync_object {
public:
    [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }
    /// The string other processes attach with.
    [[nodiscard]] std::string descriptor() const;
    [[nodiscard]] bool owner() const;
    void disown();
    /// Frees the object now; waiters wake with errc::not_found.
    void destroy();
    /// How this handle waits (spin, yield, sleep); see wait.hpp.
    void set_wait_policy(const wait_policy& policy);

protected:
    sync_object() noexcept;
    explicit sync_object(std::unique_ptr<detail::sync_state> state) noexcept;
    sync_object(sync_object&&) noexcept;
    sync_object& operator=(sync_object&&) noexcept;
    ~sync_object();

    static std::unique_ptr<detail::sync_state> create_state(const pool::pool& pool,
                                                            detail::sync_kind kind);
    static std::unique_ptr<detail::sync_state> attach_state(std::string_view descriptor,
                                                            detail::sync_kind kind);
    /// The state, checked alive; throws errc::invalid_argument (empty handle), not_found.
    detail::sync_state& state() const;

private:
    void destroy_if_owner() noexcept;

    std::unique_ptr<detail::sync_state> state_;
};

}  // namespace dragonx
