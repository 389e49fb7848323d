// working_set.hpp - one manager's shard: the checkpoints of its working set and the key/value
// entries in them, with the checkpoint rules of spec/ddict.md §6.
//
// A manager keeps at most `size` consecutive checkpoints. A write for a newer checkpoint
// advances the set, retiring the oldest checkpoint into its successor when the set is full,
// if the wait_for_keys / wait_for_writers rules allow it. Reads scan from the reader's
// checkpoint down to the oldest. Operations that cannot complete yet report `deferred`: the
// manager queues them and calls them again after every write.
//
// Notes:
// - Pure logic, no I/O and no threads: the manager's loop calls it; tests drive it directly.
// - Entries are move-only handles on pool blocks. The working set owns the entries it stores;
//   an entry superseded in the same checkpoint, popped, cleared or dropped at retirement is
//   freed (its block goes back to the pool) unless handed back to the caller (pop).
// - Fixes of the reference's quirks (spec §12): deletes always mask older versions (REC 4);
//   the expected bytes of wait_for are kept (REC of §6.12).
// - Where §6 leaves a choice (see working_set.cpp's Notes): a delete or clear at c masks
//   every older version at c; a non-persistent key of p counts as rewritten in p+1 when p+1
//   holds it (put or pput) or deleted it; wait_for compares the value visible at c.
// - Ops that may advance (put, clear, ensure, value_is) throw errc::invalid_argument
//   for checkpoint id 2^64-1 (the next id after it would not exist).
// - Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <dragonx/pool/pool.hpp>

namespace dragonx::dict {

using byte_view = std::span<const std::byte>;

/// A stored key/value pair: one pool block holding the key bytes, then the value bytes right
/// after them. (A put's block is the request message itself, so the key starts after the
/// request header: key_offset says where.)
class entry {
public:
    entry() = default;
    entry(pool::allocation block, std::uint32_t key_offset, std::uint32_t key_size,
          std::uint64_t value_size) noexcept
        : block_(std::move(block)), key_offset_(key_offset), key_size_(key_size),
          value_size_(value_size)
    {
    }
    [[nodiscard]] byte_view key() const noexcept
    {
        return {block_.data() + key_offset_, key_size_};
    }
    [[nodiscard]] byte_view value() const noexcept
    {
        return {block_.data() + key_offset_ + key_size_, value_size_};
    }
    /// Pool bytes this entry holds (the block's capacity).
    [[nodiscard]] std::uint64_t footprint() const noexcept
    {
        return block_ ? block_.capacity() : 0;
    }
    [[nodiscard]] pool::allocation& block() noexcept { return block_; }
    [[nodiscard]] const pool::allocation& block() const noexcept { return block_; }
    [[nodiscard]] explicit operator bool() const noexcept { return static_cast<bool>(block_); }

private:
    pool::allocation block_;
    std::uint32_t key_offset_ = 0;
    std::uint32_t key_size_ = 0;
    std::uint64_t value_size_ = 0;
};

struct working_set_options {
    std::uint32_t size = 1;         // checkpoints kept, >= 1 (working_set_size)
    bool wait_for_keys = false;     // needs size >= 2
    bool wait_for_writers = false;  // needs size >= 2
};

/// How an operation ended.
enum class outcome : std::uint8_t {
    done,       // performed (for get: found)
    not_found,  // get/pop: no visible value (and the rules say not to wait)
    retired,    // the checkpoint is older than the oldest kept (errc::checkpoint_retired)
    deferred,   // cannot complete yet: call again later (manager queues it)
};

using client_id = std::uint64_t;

/// One checkpoint's contents as plain data: what a set is rebuilt from (a restart, a restore
/// from a persisted file, a copy from another manager).
struct checkpoint_state {
    std::uint64_t id = 0;
    std::vector<std::pair<entry, bool>> entries;  // (entry, persistent)
    std::vector<std::string> deleted;             // keys deleted here, masking older versions
    std::vector<client_id> writers;
};

/// One checkpoint's contents as views into the set, for saving it. Valid until the set
/// changes (or, with divert_frees, until the diverted entries are dropped).
struct checkpoint_export {
    struct item {
        const entry* value = nullptr;
        bool persistent = false;
    };
    std::uint64_t id = 0;
    std::vector<item> entries;
    std::vector<std::string_view> deleted;
    std::vector<client_id> writers;
};

class working_set {
public:
    /// Throws errc::invalid_argument for size 0, or a wait flag with size 1.
    explicit working_set(working_set_options options);

    /// A set holding `checkpoints` (consecutive ids, ascending, at most options.size of
    /// them; the first is the oldest), followed by empty checkpoints up to options.size.
    /// Persistent flags count only with wait_for_keys. Throws errc::invalid_argument for ids
    /// that are not consecutive, too many checkpoints, a key twice in one checkpoint, or a key
    /// both stored and deleted in one.
    [[nodiscard]] static working_set restore(working_set_options options,
                                             std::vector<checkpoint_state> checkpoints);
    ~working_set();
    working_set(working_set&&) noexcept;
    working_set& operator=(working_set&&) noexcept;

    [[nodiscard]] const working_set_options& options() const noexcept;
    /// Ids of the oldest and newest checkpoints held (a fresh set: 0 and size-1).
    [[nodiscard]] std::uint64_t oldest() const noexcept;
    [[nodiscard]] std::uint64_t newest() const noexcept;

    /// Stores `e` under its key at checkpoint `c` for `client` (§6.3): retired if c is too
    /// old; deferred if c does not exist and the set cannot advance to it yet (e is then
    /// left untouched in the caller's hands); done otherwise (e moved in; an older value of
    /// the key in c is freed). `persist` marks the key persistent (only meaningful with
    /// wait_for_keys, as pput). Throws errc::invalid_argument if `e` holds no block.
    outcome put(std::uint64_t c, client_id client, entry& e, bool persist);

    /// The value visible at checkpoint `c` (§6.4). `found` is set when the outcome is done;
    /// it stays valid until the next call that changes the set.
    outcome get(std::uint64_t c, byte_view key, const entry** found) const;

    /// Whether a value is visible at c without waiting (§6.5): never deferred.
    [[nodiscard]] bool contains(std::uint64_t c, byte_view key) const;

    /// Removes the key at checkpoint c for `client` (§6.8): done with `removed` holding the
    /// entry it took out of c (or an empty entry when the visible value lives in an older
    /// checkpoint and is only masked), not_found, retired or deferred. Masks older versions
    /// whatever the mode.
    outcome pop(std::uint64_t c, client_id client, byte_view key, entry& removed);

    /// Number of keys visible at checkpoint c (§6.9: min(c, newest) when c is ahead); 0 when
    /// c is retired.
    [[nodiscard]] std::uint64_t size(std::uint64_t c) const;

    /// Calls fn(entry) for every key visible at c (deferred-only values skipped), in no
    /// particular order; nothing when c is retired. fn must not change the set.
    void for_each(std::uint64_t c, const std::function<void(const entry&)>& fn) const;

    /// Calls fn(entry, persistent) for every key visible at c, as for_each does, with
    /// whether the key is persistent there (always false without wait_for_keys).
    void for_each_flagged(std::uint64_t c,
                          const std::function<void(const entry&, bool)>& fn) const;

    /// Every checkpoint held, oldest first, with all it stores, deletes and who wrote there.
    [[nodiscard]] std::vector<checkpoint_export> export_all() const;

    /// From now on, entries the set would free (superseded, cleared, dropped at retirement)
    /// are moved into `*to` instead, so that views of them taken earlier stay valid (a
    /// persistence write in progress); nullptr frees them again. `*to` must outlive the
    /// diversion.
    void divert_frees(std::vector<entry>* to) noexcept;

    /// Forgets every entry without freeing its block (the blocks stay allocated in their
    /// pool, for a restart to take back) and empties the set.
    void abandon() noexcept;

    /// Removes every key visible at c for `client` (§6.10): done, retired or deferred. Frees
    /// what checkpoint c holds and masks the keys of older checkpoints at c (REC 4 applied to
    /// clear), so nothing is visible at c afterwards. Counts as a read for note_read().
    outcome clear(std::uint64_t c, client_id client);

    /// A read-type op (get, contains, size, for_each) by `client` at c, for wait_for_writers
    /// (§6.7; no effect otherwise): a client that wrote in one of the checkpoints
    /// oldest..min(c, newest)-1 becomes a writer of all of them, having moved on. The const
    /// reads cannot do this themselves (they have no client): the manager calls it with each.
    void note_read(std::uint64_t c, client_id client);

    /// Makes checkpoint c exist if the rules allow (as a write at c would), for ops such as
    /// fetch_add that must advance: done, retired or deferred.
    outcome ensure(std::uint64_t c);

    /// wait_for (§6.12): done if the key's value at c is exactly `expected`, else deferred
    /// (retired if c is too old).
    outcome value_is(std::uint64_t c, byte_view key, byte_view expected);

    /// Entries stored in all checkpoints (a key held by two checkpoints counts twice), and
    /// the pool bytes they hold.
    [[nodiscard]] std::uint64_t entry_count() const noexcept;
    [[nodiscard]] std::uint64_t stored_bytes() const noexcept;

    /// Called with each checkpoint id as it retires, once the rules allowed it and before
    /// anything moves: the set still holds it unchanged (readable with for_each at that id)
    /// and its superseded entries are freed only after the call. For persistence. Optional;
    /// fn must not change the set. If it throws, that retirement does not happen and the
    /// exception propagates out of the op (advances it made before stay). Without it, a jump
    /// of more than `size` checkpoints skips the retirements in between at once (they only
    /// rename the carried-forward state); with it, every id is retired in turn.
    std::function<void(std::uint64_t retired_id)> on_retire;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace dragonx::dict
