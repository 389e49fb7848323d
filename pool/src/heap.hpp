// heap.hpp - the allocator of a pool segment: a buddy heap behind a robust lock, with
// lock-free per-order caches in front of it.
//
// Algorithm: power-of-two buddy heap over 2^top_order bytes (64-byte minimum block). A
// request takes the smallest order that holds it. Blocks of ≤ 1 MiB that users free are
// parked in a lock-free stack per order and handed out again without the lock; only when the
// heap cannot serve a request are the stacks drained back into the heap, where buddies merge.
// Larger blocks, and every cache miss, go through the heap under its lock.
//
// Notes:
// - Any process that maps the segment may call anything here, from any thread.
// - Crash safety: the per-block state table (layout.hpp) is the truth and changes by single
//   byte stores; the lock is a robust process-shared mutex. If a holder dies, the next locker
//   rebuilds the free bitsets from the state table and carries on. A process killed in the
//   middle of an operation loses at most the block it was allocating or freeing.
// - try_allocate never blocks beyond the heap lock; allocate waits with wait_until (wait.hpp),
//   woken by frees.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <dragonx/common/deadline.hpp>

#include "layout.hpp"

namespace dragonx::pool::detail {

struct heap_stats {
    std::uint64_t usable_bytes;
    std::uint64_t free_bytes;
    std::uint64_t recoveries;
    std::vector<std::uint64_t> free_blocks;  // index = order - min_order, up to top_order
};

class heap {
public:
    /// Formats the zero-filled memory at `base` (layout.segment_size bytes): lock, free
    /// bitsets and the reserved tail. Identity fields and `ready` are the caller's.
    static void format(std::byte* base, const segment_layout& layout);

    /// A view of a formatted segment mapped at `base`.
    explicit heap(std::byte* base) noexcept;

    /// A block of `order` (offset from the data start), or nullopt if none is free.
    [[nodiscard]] std::optional<std::uint64_t> try_allocate(unsigned order);

    /// Like try_allocate, but waits up to `limit` for a free. Throws errc::timeout.
    [[nodiscard]] std::uint64_t allocate(unsigned order, timeout limit);

    /// Returns the block at `offset` of `order`. Throws errc::invalid_allocation unless it is
    /// a live allocation of that order (double free, forged or stale descriptor).
    void free(std::uint64_t offset, unsigned order);

    /// True if a block of `order` at `offset` lies within the usable heap and is aligned.
    [[nodiscard]] bool in_heap(std::uint64_t offset, unsigned order) const noexcept;

    /// True if `offset` starts a live allocation of `order`.
    [[nodiscard]] bool is_owned(std::uint64_t offset, unsigned order) const noexcept;

    [[nodiscard]] heap_stats stats();

    [[nodiscard]] std::byte* data() const noexcept { return data_; }
    [[nodiscard]] const pool_header& header() const noexcept { return *header_; }

    /// Takes the heap lock and never gives it back: for tests of a holder that dies.
    void lock_forever_for_test();

private:
    class lock_guard;

    std::optional<std::uint32_t> cache_pop(unsigned order) noexcept;
    void cache_push(unsigned order, std::uint32_t index) noexcept;
    [[nodiscard]] std::uint64_t cache_size(unsigned order) const noexcept;

    // Under the lock:
    std::optional<std::uint64_t> heap_take(unsigned order) noexcept;
    void heap_give(std::uint64_t index, unsigned order) noexcept;
    void drain_caches() noexcept;
    void rebuild() noexcept;
    void add_free_range(std::uint64_t begin, std::uint64_t end) noexcept;
    void set_free(unsigned order, std::uint64_t i) noexcept;
    void clear_free(unsigned order, std::uint64_t i) noexcept;
    [[nodiscard]] bool is_free(unsigned order, std::uint64_t i) const noexcept;
    [[nodiscard]] std::optional<std::uint64_t> find_free(unsigned order) noexcept;

    std::atomic<std::uint8_t>& state(std::uint64_t index) const noexcept
    {
        return state_[index];
    }
    std::atomic<std::uint32_t>& link(std::uint64_t index) const noexcept
    {
        return *reinterpret_cast<std::atomic<std::uint32_t>*>(data_ + (index << min_order));
    }

    pool_header* header_;
    std::atomic<std::uint8_t>* state_;
    std::uint64_t* bits_;
    std::byte* data_;
};

}  // namespace dragonx::pool::detail
