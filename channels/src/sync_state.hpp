// sync_state.hpp - the shared layout of barrier, event and semaphore, and a handle's view of it.
//
//   [ sync_header ] in one pool block; all three kinds use the same header.
//
// Notes:
// - `seq`/`sleepers` follow the protocol of wait.hpp: whoever changes the state calls
//   wake_sleepers() afterwards.
// - event: `value` is 0 or 1. semaphore: `value` is the count, `limit` its bound.
//   barrier: `lock` guards arrived/generation/broken/released; waiters read the atomics
//   without it. Bit g % 64 of `released` tells whether generation g ended by a release
//   (set) or by a reset (clear); see barrier.cpp.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>

#include <dragonx/common/error.hpp>
#include <dragonx/common/wait.hpp>
#include <dragonx/pool/pool.hpp>

namespace dragonx::detail {

inline constexpr std::uint64_t sync_magic = 0x434e59535844584eull;  // "NXDXSYNC"
inline constexpr std::uint32_t sync_layout_version = 1;

enum class sync_kind : std::uint32_t {
    event = 1,
    semaphore = 2,
    barrier = 3,
};

struct sync_header {
    // ---- written once by the creator ----
    std::uint64_t magic;
    std::uint32_t version;
    sync_kind kind;
    std::uint64_t nonce;
    std::atomic<std::uint32_t> ready;
    std::atomic<std::uint32_t> destroyed;

    alignas(64) pthread_mutex_t lock;
    alignas(64) std::atomic<std::uint32_t> seq;
    std::atomic<std::uint32_t> sleepers;

    // ---- event and semaphore ----
    std::atomic<std::int64_t> value;
    std::int64_t limit;

    // ---- barrier ----
    std::uint32_t parties;
    std::atomic<std::uint32_t> arrived;
    std::atomic<std::uint32_t> generation;
    std::atomic<std::uint32_t> broken;
    std::atomic<std::uint64_t> released;
};
static_assert(std::is_standard_layout_v<sync_header>);
static_assert(std::is_trivially_destructible_v<sync_header>);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

std::string_view sync_kind_name(sync_kind kind) noexcept;

struct sync_state {
    std::string descriptor;
    std::string block_descriptor;
    std::uint64_t nonce = 0;
    sync_kind kind{};
    bool owner = false;
    wait_policy policy;
    pool::pool pool;
    sync_header* header = nullptr;

    [[nodiscard]] bool is_gone() const noexcept
    {
        return header->nonce != nonce || header->destroyed.load(std::memory_order_acquire) != 0;
    }
    void check_alive() const
    {
        if (is_gone()) [[unlikely]] {
            throw_error(errc::not_found, std::string(sync_kind_name(kind)) + " was destroyed");
        }
    }
    /// Waits for ready() or destruction; false at the deadline. Throws errc::not_found if
    /// the object was destroyed.
    template <class Ready>
    bool wait(Ready&& ready, const deadline& until) const
    {
        const bool happened = wait_until([&] { return ready() || is_gone(); }, header->seq,
                                         header->sleepers, until, policy);
        check_alive();
        return happened;
    }
    void wake() const noexcept { wake_sleepers(header->seq, header->sleepers); }
};

}  // namespace dragonx::detail
