// client.hpp - the untyped DDict client: keys and values as encoded bytes. ddict<K, V>
// (ddict.hpp) is the API; this is what it is built on.
//
// A client handle talks to the managers directly, over channels: a request into the manager's
// request channel, the response into this client's reply channel (in a small pool of its own
// on this node). Handles made from one another (copies, manager(i)) share that connection
// and each keep their own checkpoint id, chosen manager and default timeout.
//
// Notes:
// - Not thread-safe: one thread uses a connection (and every handle sharing it) at a time.
//   Threads that need the dictionary at once attach a handle each.
// - Every call takes a timeout (dragonx::forever: none). While it waits, the client checks
//   every few hundred milliseconds that the manager it waits for is alive: a dead manager is
//   errc::peer_lost naming it, not a wait until the timeout.
// - Errors carry the manager's reason: errc::key_not_found, ddict_full, checkpoint_retired,
//   invalid_operation (writing a frozen dictionary), timeout, peer_lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/deadline.hpp>
#include <dragonx/policy/policy.hpp>

namespace dragonx {

/// How ddict<K, V>::create() builds a dictionary.
struct ddict_options {
    /// Managers on each of the first n_nodes nodes of the run (managers_per_node * n_nodes
    /// managers in all); ignored when `policies` is given.
    std::uint32_t managers_per_node = 1;
    std::uint32_t n_nodes = 1;
    /// Or: managers_per_policy managers placed by each policy, manager ids in list order.
    std::vector<policy> policies;
    std::uint32_t managers_per_policy = 1;
    /// Bytes for data over all managers, split evenly (each manager's shard is a pool of
    /// total_mem / managers bytes). Pools are sparse: memory is used as data arrives. An
    /// entry (key and value; a large one also keeps its 56-byte request header) takes a
    /// power-of-two block of at least 64 bytes, so a manager's share must be more than
    /// twice the largest entry.
    std::uint64_t total_mem = std::uint64_t{256} << 20;
    /// A put that would take a manager's shard past this fraction fails with errc::ddict_full.
    double full_threshold = 0.9;
    /// Name (for restart and persistence); empty: a random one.
    std::string name;
    /// Checkpoints each manager keeps (spec §6).
    std::uint32_t working_set_size = 1;
    bool wait_for_keys = false;
    bool wait_for_writers = false;
    /// Default timeout of every client operation on this dictionary (attached clients too).
    dragonx::timeout timeout = std::chrono::seconds(30);

    // ---- persistence (spec §8) --------------------------------------------------------------
    /// Where checkpoints are persisted: none, or one file per manager and checkpoint.
    enum class persister_kind : std::uint8_t { none, posix };
    persister_kind persister = persister_kind::none;
    /// Directory of persisted files and of restart records; empty: the creator's working
    /// directory.
    std::string persist_path;
    /// Persist each checkpoint whose id is a multiple of this when it retires (0: never).
    std::uint64_t persist_freq = 0;
    /// Persisted checkpoints kept per manager, oldest deleted first (-1: all; 0: none).
    std::int64_t persist_count = 0;
    /// Bring the dictionary up from persisted checkpoint `restore_from` (needs `name`). The
    /// creator starts at that checkpoint; so do clients that attach later.
    std::optional<std::uint64_t> restore_from;
    /// With restore_from: a frozen replay (working_set_size 1, no wait flags, persist_count
    /// 0); advance() moves to the next persisted checkpoint.
    bool read_only = false;

    // ---- restart (spec §7.1) ----------------------------------------------------------------
    /// Bring back the dictionary `name` that was destroyed with allow_restart, with its data
    /// and checkpoints, each manager on its old node (or, if that node is not in this run,
    /// on another one, empty: see empty_managers()). Placement options are ignored.
    bool restart = false;
};

/// One manager's figures.
struct ddict_stats {
    std::uint32_t manager_id = 0;
    std::uint32_t node = 0;
    std::string hostname;
    std::uint64_t total_bytes = 0;  // the manager's share of total_mem
    std::uint64_t used_bytes = 0;   // held by stored keys and values
    std::uint64_t free_bytes = 0;   // total_bytes - used_bytes
    double utilization = 0;         // used / total, in [0, 1]
    std::uint64_t num_keys = 0;     // entries over the whole working set
    std::uint64_t pool_free_bytes = 0;
    static auto fields(auto& self)
    {
        return std::tie(self.manager_id, self.node, self.hostname, self.total_bytes,
                        self.used_bytes, self.free_bytes, self.utilization, self.num_keys,
                        self.pool_free_bytes);
    }
};

namespace dict {

using byte_view = std::span<const std::byte>;

class session;

/// A value received from a manager. Its bytes stay valid until the next call on any handle
/// of the same connection, or for as long as this object lives when it holds a pool block.
class value_bytes {
public:
    value_bytes();
    ~value_bytes();
    value_bytes(value_bytes&&) noexcept;
    value_bytes& operator=(value_bytes&&) noexcept;
    [[nodiscard]] byte_view bytes() const noexcept { return bytes_; }

private:
    friend class client;
    struct holder;
    std::unique_ptr<holder> holder_;
    byte_view bytes_;
};

/// Streams keys and/or values from every manager (or the chosen one, or this node's), a
/// page at a time. Entries come in no particular order.
class listing {
public:
    /// Next entry: its key and value bytes (a part not asked for is empty); false at the end.
    /// The spans are valid until the next call.
    bool next(byte_view& key, byte_view& value);

    listing(listing&&) noexcept;
    ~listing();

private:
    friend class client;
    struct state;
    explicit listing(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> state_;
};

class client {
public:
    [[nodiscard]] static client create(const ddict_options& options);
    /// Attaches by descriptor (serialize()). Throws errc::malformed_descriptor,
    /// errc::timeout, errc::peer_lost (the dictionary's orchestrator is gone).
    [[nodiscard]] static client attach(std::string_view descriptor, timeout limit);

    client(const client&) = default;
    client& operator=(const client&) = default;
    client(client&&) noexcept = default;
    client& operator=(client&&) noexcept = default;
    ~client();

    [[nodiscard]] std::string descriptor() const;
    [[nodiscard]] const std::string& name() const;
    [[nodiscard]] std::uint32_t managers() const;

    // ---- per handle --------------------------------------------------------------------
    [[nodiscard]] timeout default_timeout() const noexcept { return timeout_; }
    void set_default_timeout(timeout t) noexcept { timeout_ = t; }
    [[nodiscard]] std::uint64_t checkpoint_id() const noexcept { return checkpoint_; }
    void set_checkpoint_id(std::uint64_t id) noexcept { checkpoint_ = id; }
    [[nodiscard]] std::optional<std::uint32_t> chosen_manager() const noexcept
    {
        return chosen_;
    }
    /// A handle on the same connection whose key operations all go to manager `id`.
    [[nodiscard]] client with_manager(std::uint32_t id) const;
    [[nodiscard]] std::uint32_t which_manager(byte_view key) const;
    [[nodiscard]] std::uint32_t main_manager() const;
    [[nodiscard]] std::vector<std::uint32_t> local_managers() const;
    [[nodiscard]] std::vector<std::uint32_t> manager_nodes() const;
    /// The process (puid) of each manager, by manager id.
    [[nodiscard]] std::vector<std::uint64_t> manager_processes() const;

    // ---- key operations ------------------------------------------------------------------
    void put(byte_view key, const encoder& value, bool persist, timeout limit);
    /// The value, or nullopt when the key is missing (errc::key_not_found is not thrown).
    [[nodiscard]] std::optional<value_bytes> get(byte_view key, timeout limit);
    [[nodiscard]] bool contains(byte_view key, timeout limit);
    [[nodiscard]] std::optional<value_bytes> pop(byte_view key, timeout limit);
    /// Adds n to the int64 value of `key` (created as 0, persistent), returning the old value.
    std::int64_t fetch_add(byte_view key, std::int64_t n, timeout limit);
    /// Waits until `key` holds exactly `value` at this handle's checkpoint.
    void wait_for(byte_view key, const encoder& value, timeout limit);
    /// Stores a copy on every manager (bget reads it from the main or chosen manager).
    void bput(byte_view key, const encoder& value, timeout limit);
    [[nodiscard]] std::optional<value_bytes> bget(byte_view key, timeout limit);

    // ---- whole dictionary (every manager, or the chosen one) ----------------------------
    [[nodiscard]] std::uint64_t size(timeout limit);
    [[nodiscard]] std::uint64_t local_size(timeout limit);
    void clear(timeout limit);
    /// flags: which parts (keys, values) the entries carry; local: this node's managers only.
    [[nodiscard]] listing list(bool keys, bool values, bool local_only, timeout limit);
    void freeze(timeout limit);
    void unfreeze(timeout limit);
    [[nodiscard]] bool is_frozen(timeout limit);
    [[nodiscard]] std::vector<ddict_stats> stats(timeout limit);
    /// The newest checkpoint id over the managers.
    [[nodiscard]] std::uint64_t newest_checkpoint(timeout limit);

    // ---- persistence and copies ----------------------------------------------------------
    /// Persists this handle's checkpoint on every manager now (it must be in each manager's
    /// working set: else errc::invalid_operation); returns once the files are written.
    void persist(timeout limit);
    /// Loads persisted checkpoint `id` on every manager, replacing what they hold, and moves
    /// this handle there. errc::checkpoint_unavailable if a manager has no file for it.
    void restore(std::uint64_t id, timeout limit);
    /// Read-only dictionaries: loads the next persisted checkpoint (current + persist_freq)
    /// and moves this handle there; returns its id.
    std::uint64_t advance(timeout limit);
    /// Checkpoint ids persisted by every manager, ascending.
    [[nodiscard]] std::vector<std::uint64_t> persisted_ids(timeout limit);
    /// Managers that came back empty at a restart (their node was gone), or that a clone is
    /// about to overwrite.
    [[nodiscard]] std::vector<std::uint32_t> empty_managers(timeout limit);
    /// Makes every dictionary of `descriptors` a copy of this one, manager by manager, with
    /// all checkpoints (they must have as many managers). What they held is discarded.
    void clone(const std::vector<std::string>& descriptors, timeout limit);
    /// Repairs the empty managers of each dictionary of `descriptors` (parallel copies with
    /// the same number of managers) from a full copy of the same manager id in another.
    static void synchronize(const std::vector<std::string>& descriptors, timeout limit);
    /// The creation options (creating handles only; errc::invalid_operation otherwise).
    [[nodiscard]] const ddict_options& creation_options() const;

    // ---- batches ---------------------------------------------------------------------------
    /// Starts a batch: puts are buffered per manager and streamed without waiting for replies.
    void batch_begin(bool persist);
    void batch_put(byte_view key, const encoder& value, bool persist, timeout limit);
    /// Ends the batch: waits for every manager's count and throws the first error (or
    /// errc::internal if a manager stored fewer records than were sent).
    void batch_end(timeout limit);
    [[nodiscard]] bool in_batch() const noexcept;

    // ---- lifetime ------------------------------------------------------------------------
    /// Leaves the dictionary: this connection's handles can no longer be used.
    void detach();
    /// Stops the managers and the orchestrator; every handle of every client then fails.
    /// With allow_restart, each manager keeps its pool and state for a create() with
    /// `restart` and the same name (in this run or a later one).
    void destroy(timeout limit, bool allow_restart = false);

private:
    explicit client(std::shared_ptr<session> s);
    // A request answered with a value (get, pop): nullopt for key_not_found. `code` is an
    // op of protocol.hpp.
    std::optional<value_bytes> value_request(std::uint16_t code, byte_view key, timeout limit,
                                             std::string_view what);
    std::shared_ptr<session> session_;
    std::uint64_t checkpoint_ = 0;
    std::optional<std::uint32_t> chosen_;
    timeout timeout_ = forever;
};

}  // namespace dict
}  // namespace dragonx
