// layout.hpp - the bytes of a pool segment: header, block-state table, free bitsets, data.
//
// A pool is one POSIX shm object, mapped by every process at its own address:
//
//   [ pool_header | state table | free bitsets | pad to page | data (usable_size bytes) ]
//
// Notes:
// - Everything in the segment is addressed by offsets; nothing holds a pointer.
// - The heap spans 2^top_order bytes from the start of the data; the part past usable_size
//   is marked "reserved" at creation and never handed out (pool sizes need not be powers of 2).
// - The state table has one byte per 64-byte minimum block. It is the heap's source of truth:
//   a non-zero byte marks the first minimum block of a block that is out of the heap (owned by a
//   user, parked in a free cache, or reserved). Each change is one single-byte store, so a
//   process killed at any instruction leaves it consistent, and the free bitsets (a derived
//   index) can be rebuilt from it.
// - Fields under "guarded by lock" are only touched with header.lock held.
#pragma once

#include <pthread.h>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace dragonx::pool::detail {

inline constexpr unsigned min_order = 6;          // 64-byte minimum block
inline constexpr unsigned max_order = 38;         // 256 GiB: block indices fit 32 bits
inline constexpr unsigned max_cached_order = 20;  // blocks ≤ 1 MiB go through lock-free caches
inline constexpr std::size_t page_size = 4096;
inline constexpr std::uint64_t header_magic = 0x50584e4f47415244;  // "DRAGONXP", little-endian
inline constexpr std::uint32_t layout_version = 1;

// State byte: kind in the top two bits, (order - min_order) in the low six.
enum class block_kind : std::uint8_t { none = 0, owned = 1, cached = 2, reserved = 3 };

constexpr std::uint8_t make_state(block_kind kind, unsigned order) noexcept
{
    return static_cast<std::uint8_t>((static_cast<unsigned>(kind) << 6) | (order - min_order));
}
constexpr block_kind state_kind(std::uint8_t s) noexcept { return static_cast<block_kind>(s >> 6); }
constexpr unsigned state_order(std::uint8_t s) noexcept { return (s & 63u) + min_order; }

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint8_t>::is_always_lock_free);

// A lock-free stack (Treiber) of free blocks of one order, linked through the first four bytes
// of each parked block. head = (tag << 32) | (block index + 1); 0 in the low half = empty.
// The tag changes on every push and pop, so a stale head never compares equal (no ABA).
// There is deliberately no counter beside it: a process killed between the CAS and a counter
// update would skew it for good. Statistics walk the stack instead.
struct alignas(64) cache_class {
    std::atomic<std::uint64_t> head;
};

struct pool_header {
    // ---- written once by the creator, read-only afterwards ----
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t node;
    char run[32];  // NUL-padded run id
    std::uint64_t pool_id;
    std::uint64_t nonce;  // random per creation: tells a recreated pool from the old one
    std::uint64_t usable_size;
    std::uint64_t segment_size;
    std::uint64_t state_offset;
    std::uint64_t bits_offset;
    std::uint64_t data_offset;
    std::uint32_t top_order;
    std::uint32_t creator_pid;
    std::uint64_t bit_base[max_order + 1];  // first bitset word of each order
    std::atomic<std::uint32_t> ready;       // set (release) once the segment is formatted

    // ---- guarded by lock (robust, process-shared) ----
    alignas(64) pthread_mutex_t lock;
    std::uint64_t heap_free_bytes;
    std::uint64_t recoveries;  // times a holder died inside the heap and it was rebuilt
    std::uint64_t free_count[max_order + 1];
    std::uint64_t hint[max_order + 1];  // no free bit below this word, per order

    // ---- lock-free ----
    cache_class cache[max_cached_order + 1];
    alignas(64) std::atomic<std::uint32_t> free_seq;  // futex word: bumped on frees with waiters
    std::atomic<std::uint32_t> waiters;               // processes sleeping in allocate()
};

// Shared memory holds no pointers and runs no destructors; it must keep its layout across
// processes built from the same sources.
static_assert(std::is_standard_layout_v<pool_header>);
static_assert(std::is_trivially_destructible_v<pool_header>);

/// Where each part of a segment lives, for a pool of `usable` bytes.
struct segment_layout {
    std::uint64_t usable_size;
    std::uint32_t top_order;
    std::uint64_t state_offset;
    std::uint64_t bits_offset;
    std::uint64_t bit_base[max_order + 1];
    std::uint64_t data_offset;
    std::uint64_t segment_size;
};

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t to) noexcept
{
    return (v + to - 1) / to * to;
}

/// Smallest order whose block holds `bytes` (at least min_order).
constexpr unsigned order_for(std::uint64_t bytes) noexcept
{
    // bit_width(bytes - 1) is the exponent of the smallest power of two >= bytes (bytes > 1).
    return bytes <= (std::uint64_t{1} << min_order)
               ? min_order
               : static_cast<unsigned>(std::bit_width(bytes - 1));
}
static_assert(order_for(0) == min_order && order_for(64) == min_order);
static_assert(order_for(65) == 7 && order_for(4096) == 12 && order_for(4097) == 13);

/// Words in the free bitset of `order` in a heap of 2^top bytes.
constexpr std::uint64_t bitset_words(unsigned top, unsigned order) noexcept
{
    const std::uint64_t bits = std::uint64_t{1} << (top - order);
    return (bits + 63) / 64;
}

/// `usable` must already be a positive multiple of page_size and ≤ 2^max_order.
constexpr segment_layout compute_layout(std::uint64_t usable) noexcept
{
    segment_layout l{};
    l.usable_size = usable;
    l.top_order = order_for(usable);
    l.state_offset = round_up(sizeof(pool_header), 64);
    const std::uint64_t state_bytes = std::uint64_t{1} << (l.top_order - min_order);
    l.bits_offset = round_up(l.state_offset + state_bytes, 64);
    std::uint64_t words = 0;
    for (unsigned o = min_order; o <= l.top_order; ++o) {
        l.bit_base[o] = words;
        words += bitset_words(l.top_order, o);
    }
    l.data_offset = round_up(l.bits_offset + words * 8, page_size);
    l.segment_size = l.data_offset + usable;
    return l;
}

}  // namespace dragonx::pool::detail
