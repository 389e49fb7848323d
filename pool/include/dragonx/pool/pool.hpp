// pool.hpp - managed-memory pools: shared memory that any process on the node can allocate
// from, free to, and pass around by short descriptor strings.
//
// A pool is one POSIX shared-memory object, /dev/shm/dragonx-<run>-n<node>-<pool id>, mode
// 0600. The
// process that creates it owns it (destroys it when its handle goes away, unless it disowns
// it); any process on the node attaches with the pool's descriptor. Allocations are blocks of
// power-of-two sizes from 64 bytes up; an allocation descriptor names one block so that
// another process can attach it, use it and free it.
//
//   auto p = dragonx::pool::pool::create({.size = 64 << 20});
//   auto a = p.allocate(1000, std::chrono::seconds(1));   // blocks up to 1 s, then throws
//   std::string d = a.release();                          // hand over ownership...
//   auto q = dragonx::pool::pool::attach(p.descriptor()); // ...to another process,
//   auto b = q.attach_allocation(d);                      // which frees it when b goes
//
// Notes:
// - Thread- and process-safe: any number of processes and threads may allocate and free at
//   once. Allocation and free are lock-free in the common case; see pool/src/heap.hpp.
// - A process killed at any point, even inside the allocator, loses at most the blocks it
//   held; everyone else carries on.
// - A pool handle must outlive the allocation handles made from it.
// - Errors: dragonx::error with errc::invalid_argument, already_exists, not_found, no_space,
//   malformed_descriptor, version_mismatch, wrong_run, not_local, invalid_allocation, timeout
//   or corrupt_object, each with a message naming the pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/deadline.hpp>

namespace dragonx::pool {

class pool;

namespace detail {
struct pool_state;
/// Takes the pool's heap lock and never releases it: for tests of a holder that dies.
void lock_forever_for_test(pool& p);
}  // namespace detail

/// The smallest pool, and the unit pool sizes are rounded up to.
inline constexpr std::uint64_t min_pool_size = 4096;
/// The largest pool (256 GiB).
inline constexpr std::uint64_t max_pool_size = std::uint64_t{1} << 38;
/// The smallest block; every allocation takes a power-of-two block at least this large.
inline constexpr std::uint64_t min_block_size = 64;

struct pool_options {
    /// Bytes users can allocate; rounded up to a multiple of 4 KiB, in [4 KiB, 256 GiB].
    std::uint64_t size = 0;
    /// Pool id, unique within the run; default: a random 64-bit id.
    std::optional<std::uint64_t> id;
    /// Run the pool belongs to; default: this process's run (run_identity).
    std::optional<std::string> run;
    /// Node index recorded in descriptors; default: this process's node.
    std::optional<std::uint32_t> node;
    /// Commit the /dev/shm space now (posix_fallocate), so that a too-small /dev/shm fails
    /// here with errc::no_space rather than with SIGBUS on first touch. Costs time for big
    /// pools; off by default (the space is then taken as pages are touched).
    bool reserve = false;
};

struct size_class_stats {
    std::uint64_t block_size;
    std::uint64_t free_blocks;
};

struct pool_stats {
    std::uint64_t total_bytes;  // usable bytes
    std::uint64_t free_bytes;
    double utilization;         // 1 - free/total, in [0, 1]
    std::vector<size_class_stats> free_blocks;  // one entry per block size, smallest first
    std::uint64_t recoveries;   // times the heap was rebuilt after a process died inside it
};

/// One block of a pool, owned by this handle: freed when the handle is destroyed, unless
/// ownership was handed on with release(). Move-only. Not thread-safe (one owner at a time).
class allocation {
public:
    allocation() noexcept = default;
    allocation(allocation&& other) noexcept;
    allocation& operator=(allocation&& other) noexcept;
    allocation(const allocation&) = delete;
    allocation& operator=(const allocation&) = delete;
    ~allocation();

    [[nodiscard]] std::byte* data() const noexcept { return data_; }
    /// Bytes requested (may be 0).
    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
    /// Bytes usable: the block size, a power of two ≥ max(size(), 64).
    [[nodiscard]] std::uint64_t capacity() const noexcept;
    /// Offset of the block from the start of the pool's data.
    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
    [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
    [[nodiscard]] explicit operator bool() const noexcept { return pool_ != nullptr; }

    /// Descriptor of this block; this handle keeps ownership.
    [[nodiscard]] std::string descriptor() const;

    /// Gives up ownership and returns the descriptor; whoever attaches it must free it.
    [[nodiscard]] std::string release();

    /// Stops owning the block without freeing it or making a descriptor: for code that
    /// records the block (offset and size) elsewhere, such as a channel slot.
    void disown() noexcept
    {
        pool_ = nullptr;
        data_ = nullptr;
    }

    /// Frees the block now. Throws errc::invalid_allocation if it was already freed
    /// elsewhere (e.g. through a copy of its descriptor).
    void free();

private:
    friend class pool;
    allocation(detail::pool_state* pool, std::byte* data, std::uint64_t offset,
               std::uint64_t size) noexcept
        : pool_(pool), data_(data), offset_(offset), size_(size)
    {
    }
    // Frees the block if this handle owns one; a refused free is logged, not thrown.
    void drop() noexcept;

    detail::pool_state* pool_ = nullptr;
    std::byte* data_ = nullptr;
    std::uint64_t offset_ = 0;
    std::uint64_t size_ = 0;
};

/// A handle on a pool, created here or attached by descriptor. Move-only.
class pool {
public:
    /// Creates a pool. Throws errc::invalid_argument (size out of range, bad run id),
    /// errc::already_exists (a pool with this run and id exists), errc::no_space (/dev/shm
    /// too small), or a system error.
    [[nodiscard]] static pool create(const pool_options& options);

    /// Takes a pool kept by keep() as its owner, under a new identity (`identity`'s run, node
    /// and id as for create(); its size and reserve are ignored): the shm object is renamed
    /// to the new identity's name and stamped with it, its blocks and their contents as they
    /// were. Throws errc::invalid_argument (a bad kept name or run id), not_found (no pool
    /// kept under that name), already_exists (the new identity's name is taken),
    /// corrupt_object or version_mismatch (not a pool this build can use; left as it was).
    [[nodiscard]] static pool reclaim(std::string_view kept_name, const pool_options& identity);

    /// Attaches the pool named by `descriptor`. Throws errc::malformed_descriptor,
    /// version_mismatch, wrong_run / not_local (descriptor of another run / node),
    /// not_found (destroyed or recreated since) or corrupt_object.
    [[nodiscard]] static pool attach(std::string_view descriptor);

    pool() noexcept;  // an empty handle; assign a created or attached pool to it
    pool(pool&&) noexcept;
    pool& operator=(pool&&) noexcept;
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;
    /// Detaches; the owner also destroys the pool (see disown()).
    ~pool();

    [[nodiscard]] explicit operator bool() const noexcept { return state_ != nullptr; }
    [[nodiscard]] std::string descriptor() const;
    [[nodiscard]] std::string name() const;  // shm object name, "/dragonx-<run>-n<node>-<id>"
    [[nodiscard]] std::uint64_t id() const;
    [[nodiscard]] std::string run() const;
    [[nodiscard]] std::uint32_t node() const;
    [[nodiscard]] std::uint64_t size() const;  // usable bytes

    /// True if this handle destroys the pool when it goes away (the creating handle).
    [[nodiscard]] bool owner() const;
    /// This handle will no longer destroy the pool; someone else (the runtime) will.
    void disown();

    /// A block of at least `bytes`, or nullopt if none is free right now. Never sleeps.
    /// Throws errc::invalid_argument if `bytes` exceeds the pool's size.
    [[nodiscard]] std::optional<allocation> try_allocate(std::uint64_t bytes);

    /// A block of at least `bytes`, waiting up to `limit` for one to be freed
    /// (dragonx::forever: no limit; 0: try once). Throws errc::timeout.
    [[nodiscard]] allocation allocate(std::uint64_t bytes, timeout limit);

    /// Takes ownership of the block named by an allocation descriptor of this pool.
    /// Throws errc::malformed_descriptor, errc::invalid_argument (another pool's block) or
    /// errc::invalid_allocation (freed already).
    [[nodiscard]] allocation attach_allocation(std::string_view descriptor);

    /// Takes ownership of the live block of this pool at `offset` holding `size` bytes, as
    /// recorded by whoever disowned it. Throws errc::invalid_allocation if there is none.
    [[nodiscard]] allocation attach_allocation(std::uint64_t offset, std::uint64_t size);

    [[nodiscard]] pool_stats stats() const;

    /// True if `block` is a block of this pool (through whichever handle it was made).
    [[nodiscard]] bool contains(const allocation& block) const noexcept;

    /// Unmaps the pool from this process (does not destroy it, even for the owner).
    void detach() noexcept;

    /// Keeps the pool after this process and its run: renames its shm object to `kept_name`
    /// ("/dragonx-kept-..." is outside every run's namespace, so no teardown or cleanup
    /// removes it) and detaches this handle. Blocks stay allocated, for reclaim() to give
    /// back. The pool's descriptors no longer attach. Throws errc::invalid_argument (a name
    /// not of the form "/dragonx-kept-<[A-Za-z0-9._-]+>"), already_exists, or a system error
    /// (the pool then stays as it was).
    void keep(std::string_view kept_name);

    /// Removes the pool's shm object now and detaches. Processes still attached keep their
    /// mapping until they detach; nobody can attach any more.
    void destroy();

private:
    friend void detail::lock_forever_for_test(pool& p);
    explicit pool(std::unique_ptr<detail::pool_state> state) noexcept;
    detail::pool_state& state() const;

    std::unique_ptr<detail::pool_state> state_;
};

/// What a pool descriptor names, read without attaching (and so usable on any node).
struct pool_info {
    std::string run;
    std::uint32_t node;
    std::uint64_t id;
    std::uint64_t size;  // usable bytes
    std::string name;    // shm object name
};

/// Decodes a pool descriptor without attaching. Throws errc::malformed_descriptor or
/// errc::version_mismatch.
[[nodiscard]] pool_info describe(std::string_view pool_descriptor);

/// The pool descriptor contained in an allocation descriptor (to attach the pool first).
/// Throws errc::malformed_descriptor.
[[nodiscard]] std::string pool_of(std::string_view allocation_descriptor);

}  // namespace dragonx::pool
