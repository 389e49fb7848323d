// layout.hpp - the bytes of a channel inside its pool allocation: header, then a ring of slots.
//
//   [ channel_header | slot 0 | slot 1 | ... | slot capacity-1 ]
//   slot = [ slot_header | block_size payload bytes ], padded to 64 bytes
//
// Notes:
// - head and tail count messages ever received and sent (they never wrap in practice: 2^64);
//   message i lives in slot i % capacity. The channel holds tail - head messages.
// - Senders serialise on send_lock and publish a message by storing tail + 1 (release);
//   receivers serialise on recv_lock and consume by storing head + 1 (release). Those stores
//   are the commit points: a process killed before them leaves no trace, after them the
//   operation is complete. The robust mutexes hand the lock on when a holder dies.
// - Readiness (tail != head, tail - head < capacity) is read without the locks, so waiting
//   never takes a lock.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace dragonx::channels::detail {

inline constexpr std::uint64_t channel_magic = 0x4c4e4e414843584e;  // "NXCHANNL"
inline constexpr std::uint32_t channel_layout_version = 1;
inline constexpr std::uint32_t min_block_size = 8;
inline constexpr std::uint32_t max_block_size = 64u << 20;
inline constexpr std::uint32_t max_capacity = 1u << 24;

enum class slot_kind : std::uint32_t {
    inline_bytes = 1,  // the payload is in the slot
    pool_block = 2,    // the payload is a block of the channel's pool; the receiver owns it
};

struct slot_header {
    slot_kind kind;
    std::uint32_t reserved;
    std::uint64_t length;  // payload bytes
    std::uint64_t offset;  // pool_block: the block's offset in the pool
    std::uint64_t unused;
};
static_assert(sizeof(slot_header) == 32);
static_assert(std::is_trivially_copyable_v<slot_header>);

struct channel_header {
    // ---- written once by the creator ----
    std::uint64_t magic;
    std::uint32_t version;
    std::atomic<std::uint32_t> ready;  // set (release) once formatted
    std::uint64_t channel_id;
    std::uint64_t nonce;
    std::uint32_t capacity;
    std::uint32_t block_size;
    std::uint64_t slot_stride;
    std::atomic<std::uint32_t> destroyed;  // set when the channel is destroyed

    // ---- senders ----
    alignas(64) pthread_mutex_t send_lock;
    alignas(64) std::atomic<std::uint64_t> tail;

    // ---- receivers ----
    alignas(64) pthread_mutex_t recv_lock;
    alignas(64) std::atomic<std::uint64_t> head;

    // ---- waiting: receivers wait for messages, senders for space ----
    alignas(64) std::atomic<std::uint32_t> recv_seq;
    std::atomic<std::uint32_t> recv_sleepers;
    alignas(64) std::atomic<std::uint32_t> send_seq;
    std::atomic<std::uint32_t> send_sleepers;
};
static_assert(std::is_standard_layout_v<channel_header>);
static_assert(std::is_trivially_destructible_v<channel_header>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

inline constexpr std::uint64_t slots_offset = (sizeof(channel_header) + 63) / 64 * 64;

constexpr std::uint64_t slot_stride_for(std::uint32_t block_size) noexcept
{
    return (sizeof(slot_header) + block_size + 63) / 64 * 64;
}

constexpr std::uint64_t channel_bytes(std::uint32_t capacity, std::uint32_t block_size) noexcept
{
    return slots_offset + std::uint64_t{capacity} * slot_stride_for(block_size);
}

}  // namespace dragonx::channels::detail
