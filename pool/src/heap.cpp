// heap.cpp - buddy heap, robust lock, lock-free caches, blocking allocation.
#include "heap.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>
#include <dragonx/common/robust_mutex.hpp>
#include <dragonx/common/wait.hpp>

namespace dragonx::pool::detail {
namespace {

constexpr std::uint64_t one = 1;

}  // namespace

// Holds the heap lock; rebuilds the heap when the previous holder died with it.
class heap::lock_guard {
public:
    explicit lock_guard(heap& h)
        : lock_(&h.header_->lock, [&h] {
              h.rebuild();
              ++h.header_->recoveries;
              log::get("pool").warn("pool {:016x}: a process died holding the heap lock; heap "
                                    "rebuilt from the block table",
                                    h.header_->pool_id);
          })
    {
    }

private:
    robust_lock lock_;
};

void heap::format(std::byte* base, const segment_layout& layout)
{
    auto* h = reinterpret_cast<pool_header*>(base);
    h->usable_size = layout.usable_size;
    h->segment_size = layout.segment_size;
    h->state_offset = layout.state_offset;
    h->bits_offset = layout.bits_offset;
    h->data_offset = layout.data_offset;
    h->top_order = layout.top_order;
    std::copy(std::begin(layout.bit_base), std::end(layout.bit_base), std::begin(h->bit_base));

    init_robust_mutex(&h->lock);

    heap view(base);
    // The tail past usable_size is reserved: cover it with maximal aligned blocks.
    const std::uint64_t usable_blocks = layout.usable_size >> min_order;
    const std::uint64_t all_blocks = one << (layout.top_order - min_order);
    for (std::uint64_t i = usable_blocks; i < all_blocks;) {
        unsigned k = std::min<unsigned>(std::countr_zero(i), layout.top_order - min_order);
        while (i + (one << k) > all_blocks) {
            --k;
        }
        view.state(i).store(make_state(block_kind::reserved, k + min_order),
                            std::memory_order_relaxed);
        i += one << k;
    }
    view.add_free_range(0, usable_blocks);
}

heap::heap(std::byte* base) noexcept
    : header_(reinterpret_cast<pool_header*>(base)),
      state_(reinterpret_cast<std::atomic<std::uint8_t>*>(base + header_->state_offset)),
      bits_(reinterpret_cast<std::uint64_t*>(base + header_->bits_offset)),
      data_(base + header_->data_offset)
{
}

// ---- lock-free caches -----------------------------------------------------------------------

std::optional<std::uint32_t> heap::cache_pop(unsigned order) noexcept
{
    cache_class& c = header_->cache[order];
    std::uint64_t head = c.head.load(std::memory_order_acquire);
    for (;;) {
        const auto top = static_cast<std::uint32_t>(head);
        if (top == 0) {
            return std::nullopt;
        }
        // The link may be overwritten at any moment if another process pops this block first;
        // then the tag has moved and the CAS below fails, so a torn read is harmless.
        const std::uint32_t next = link(top - 1).load(std::memory_order_relaxed);
        const std::uint64_t tag = (head >> 32) + 1;
        // acquire: pairs with the release of the push that parked `top`.
        if (c.head.compare_exchange_weak(head, (tag << 32) | next, std::memory_order_acquire,
                                         std::memory_order_acquire)) {
            return top - 1;
        }
    }
}

void heap::cache_push(unsigned order, std::uint32_t index) noexcept
{
    cache_class& c = header_->cache[order];
    std::uint64_t head = c.head.load(std::memory_order_relaxed);
    for (;;) {
        link(index).store(static_cast<std::uint32_t>(head), std::memory_order_relaxed);
        const std::uint64_t tag = (head >> 32) + 1;
        // release: publishes the link (and the state byte) to the popper's acquire.
        if (c.head.compare_exchange_weak(head, (tag << 32) | (index + 1),
                                         std::memory_order_release, std::memory_order_relaxed)) {
            return;
        }
    }
}

std::uint64_t heap::cache_size(unsigned order) const noexcept
{
    // Follow the links from the head, trusting a block only while its state byte says it is
    // parked in this cache. Exact when nobody pushes or pops meanwhile; otherwise a snapshot
    // that may stop early. Bounded by the number of blocks of this order, so it always ends.
    const std::uint64_t limit = std::uint64_t{1} << (header_->top_order - order);
    const std::uint8_t parked = make_state(block_kind::cached, order);
    std::uint64_t n = 0;
    auto top = static_cast<std::uint32_t>(header_->cache[order].head.load(std::memory_order_acquire));
    while (top != 0 && n < limit) {
        const std::uint64_t index = top - 1;
        if ((index << min_order) >= header_->usable_size ||
            state(index).load(std::memory_order_relaxed) != parked) {
            break;
        }
        ++n;
        top = link(index).load(std::memory_order_relaxed);
    }
    return n;
}

// ---- public operations ----------------------------------------------------------------------

std::optional<std::uint64_t> heap::try_allocate(unsigned order)
{
    if (order <= max_cached_order) {
        if (auto index = cache_pop(order)) {
            state(*index).store(make_state(block_kind::owned, order), std::memory_order_relaxed);
            return std::uint64_t{*index} << min_order;
        }
    }
    lock_guard guard(*this);
    auto index = heap_take(order);
    if (!index) {
        drain_caches();
        index = heap_take(order);
    }
    if (!index) {
        return std::nullopt;
    }
    return *index << min_order;
}

std::uint64_t heap::allocate(unsigned order, timeout limit)
{
    const auto until = deadline::after(limit);
    std::optional<std::uint64_t> offset;
    // No busy spin: a full pool rarely frees within microseconds, and every look may take
    // the heap lock. Frees wake us through free_seq.
    const wait_policy policy{.spin = std::chrono::nanoseconds(0),
                             .yield = std::chrono::microseconds(20)};
    const bool got = wait_until(
        [&] {
            offset = try_allocate(order);
            return offset.has_value();
        },
        header_->free_seq, header_->waiters, until, policy);
    if (!got) {
        throw_error(errc::timeout, "pool " + std::string(header_->run) + ": no free block of " +
                                       std::to_string(one << order) + " bytes in time");
    }
    return *offset;
}

void heap::free(std::uint64_t offset, unsigned order)
{
    const std::uint64_t index = offset >> min_order;
    std::uint8_t expected = make_state(block_kind::owned, order);
    if (order <= max_cached_order) {
        // The state CAS is what makes a second free of the same block fail cleanly.
        if (!in_heap(offset, order) ||
            !state(index).compare_exchange_strong(expected,
                                                  make_state(block_kind::cached, order),
                                                  std::memory_order_relaxed)) {
            throw_error(errc::invalid_allocation,
                        "free of offset " + std::to_string(offset) + " (" +
                            std::to_string(one << order) + " B): not a live allocation");
        }
        cache_push(order, static_cast<std::uint32_t>(index));
    } else {
        lock_guard guard(*this);
        if (!is_owned(offset, order)) {
            throw_error(errc::invalid_allocation,
                        "free of offset " + std::to_string(offset) + " (" +
                            std::to_string(one << order) + " B): not a live allocation");
        }
        heap_give(index, order);
    }
    wake_sleepers(header_->free_seq, header_->waiters);
}

bool heap::in_heap(std::uint64_t offset, unsigned order) const noexcept
{
    return order <= header_->top_order && (offset & ((one << order) - 1)) == 0 &&
           offset < header_->usable_size;
}

bool heap::is_owned(std::uint64_t offset, unsigned order) const noexcept
{
    return in_heap(offset, order) && state(offset >> min_order).load(std::memory_order_relaxed) ==
                                         make_state(block_kind::owned, order);
}

heap_stats heap::stats()
{
    lock_guard guard(*this);
    heap_stats s{};
    s.usable_bytes = header_->usable_size;
    s.free_bytes = header_->heap_free_bytes;
    s.recoveries = header_->recoveries;
    s.free_blocks.resize(header_->top_order - min_order + 1);
    for (unsigned o = min_order; o <= header_->top_order; ++o) {
        std::uint64_t n = header_->free_count[o];
        if (o <= max_cached_order) {
            const std::uint64_t parked = cache_size(o);
            n += parked;
            s.free_bytes += parked << o;
        }
        s.free_blocks[o - min_order] = n;
    }
    return s;
}

void heap::lock_forever_for_test()
{
    const int rc = pthread_mutex_lock(&header_->lock);
    if (rc != 0 && rc != EOWNERDEAD) {
        throw error(std::error_code(rc, std::system_category()), "pool heap lock");
    }
}

// ---- under the lock -------------------------------------------------------------------------

std::optional<std::uint64_t> heap::heap_take(unsigned order) noexcept
{
    unsigned j = order;
    while (j <= header_->top_order && header_->free_count[j] == 0) {
        ++j;
    }
    if (j > header_->top_order) {
        return std::nullopt;
    }
    auto i = find_free(j);
    if (!i) {
        return std::nullopt;  // counts and bits disagree: cannot happen after a rebuild
    }
    clear_free(j, *i);
    std::uint64_t block = *i;
    while (j > order) {  // split, keeping the lower half
        --j;
        block <<= 1;
        set_free(j, block + 1);
    }
    const std::uint64_t index = block << (order - min_order);
    // The commit point: from this store on, the block is out of the heap.
    state(index).store(make_state(block_kind::owned, order), std::memory_order_release);
    return index;
}

void heap::heap_give(std::uint64_t index, unsigned order) noexcept
{
    // The commit point: from this store on, the block belongs to the heap again.
    state(index).store(0, std::memory_order_release);
    std::uint64_t i = index >> (order - min_order);
    while (order < header_->top_order && is_free(order, i ^ 1)) {
        clear_free(order, i ^ 1);
        i >>= 1;
        ++order;
    }
    set_free(order, i);
}

void heap::drain_caches() noexcept
{
    const unsigned top = std::min<unsigned>(max_cached_order, header_->top_order);
    for (unsigned o = min_order; o <= top; ++o) {
        while (auto index = cache_pop(o)) {
            heap_give(*index, o);
        }
    }
}

void heap::rebuild() noexcept
{
    const unsigned top = header_->top_order;
    std::memset(bits_, 0, (header_->data_offset - header_->bits_offset) & ~std::uint64_t{7});
    header_->heap_free_bytes = 0;
    std::fill(std::begin(header_->free_count), std::end(header_->free_count), 0);
    std::fill(std::begin(header_->hint), std::end(header_->hint), 0);

    // Walk the state table: out-of-heap blocks are skipped whole, the gaps between them are
    // free. Gaps are found eight state bytes at a time.
    const std::uint64_t n = one << (top - min_order);
    const auto* raw = reinterpret_cast<const unsigned char*>(state_);
    std::uint64_t i = 0;
    while (i < n) {
        const std::uint8_t s = state(i).load(std::memory_order_relaxed);
        if (s != 0) {
            i += one << (state_order(s) - min_order);
            continue;
        }
        std::uint64_t end = i + 1;
        while (end < n && end % 8 != 0 && state(end).load(std::memory_order_relaxed) == 0) {
            ++end;
        }
        while (end + 8 <= n && end % 8 == 0) {
            std::uint64_t word;
            std::memcpy(&word, raw + end, 8);
            if (word != 0) {
                break;
            }
            end += 8;
        }
        while (end < n && state(end).load(std::memory_order_relaxed) == 0) {
            ++end;
        }
        add_free_range(i, end);
        i = end;
    }
}

void heap::add_free_range(std::uint64_t begin, std::uint64_t end) noexcept
{
    // Cover [begin, end) (in minimum blocks) with maximal aligned blocks: the canonical buddy
    // decomposition, in which no two free buddies are left unmerged.
    const unsigned levels = header_->top_order - min_order;
    while (begin < end) {
        unsigned k = begin == 0 ? levels : std::min<unsigned>(std::countr_zero(begin), levels);
        while (begin + (one << k) > end) {
            --k;
        }
        set_free(k + min_order, begin >> k);
        begin += one << k;
    }
}

void heap::set_free(unsigned order, std::uint64_t i) noexcept
{
    const std::uint64_t word = i / 64;
    bits_[header_->bit_base[order] + word] |= one << (i % 64);
    ++header_->free_count[order];
    header_->heap_free_bytes += one << order;
    header_->hint[order] = std::min(header_->hint[order], word);
}

void heap::clear_free(unsigned order, std::uint64_t i) noexcept
{
    bits_[header_->bit_base[order] + i / 64] &= ~(one << (i % 64));
    --header_->free_count[order];
    header_->heap_free_bytes -= one << order;
}

bool heap::is_free(unsigned order, std::uint64_t i) const noexcept
{
    return (bits_[header_->bit_base[order] + i / 64] >> (i % 64)) & 1;
}

std::optional<std::uint64_t> heap::find_free(unsigned order) noexcept
{
    const std::uint64_t base = header_->bit_base[order];
    const std::uint64_t words = bitset_words(header_->top_order, order);
    for (std::uint64_t w = header_->hint[order]; w < words; ++w) {
        if (const std::uint64_t bits = bits_[base + w]; bits != 0) {
            header_->hint[order] = w;
            return w * 64 + static_cast<std::uint64_t>(std::countr_zero(bits));
        }
    }
    header_->hint[order] = words;
    return std::nullopt;
}

}  // namespace dragonx::pool::detail
