// ddict.hpp - dragonx::ddict<K, V>: the distributed dictionary.
//
// Shards of the dictionary are held by manager processes spread over the run's nodes; any
// process of the run creates one, passes its descriptor along (a short string: argv, a
// queue, a file), and any C++ program of the run attaches to it and uses it like a map.
//
//   dragonx::ddict_options opt;
//   opt.managers_per_node = 2;
//   opt.n_nodes = dragonx::runtime::current().nnodes();
//   auto d = dragonx::ddict<std::string, std::vector<double>>::create(opt);
//   d["weights"] = {0.5, 1.5};
//   std::string desc = d.serialize();           // give it to other processes
//   ...
//   auto e = dragonx::ddict<std::string, std::vector<double>>::attach(desc);
//   std::vector<double> w = e["weights"];       // or e.get("weights"), e.find("weights")
//   d.destroy();
//
// Keys and values go through dragonx::codec<T> (codec.hpp); ddict<> stores raw bytes. A key
// goes to the manager chosen by xxHash3 of its encoded bytes, so every process of every
// program agrees where a key lives.
//
// Notes:
// - Every operation has a timeout: the dictionary's (ddict_options::timeout, 30 s by default)
//   or the one passed to the call. A dead manager is errc::peer_lost naming it.
// - Errors: get() of a missing key throws errc::key_not_found (find() returns nullopt); a full
//   manager errc::ddict_full (the dictionary stays usable); writes to a frozen dictionary
//   errc::invalid_operation; a checkpoint older than the working set errc::checkpoint_retired.
// - A handle is not thread-safe (see client.hpp); copies and manager(i) share a connection.
// - keys(), values() and items() stream pages from each manager; they see the dictionary as
//   it is while they run (no snapshot across managers), in no particular order.
// - The creator must destroy() the dictionary; attached handles detach() (or are destroyed).
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/ddict/client.hpp>

namespace dragonx {

template <class K = bytes, class V = bytes>
    requires encodable<K> && encodable<V> && decodable<V>
class ddict;

/// A lazily streamed sequence of a dictionary's entries (keys, values or items). Input
/// iteration only, once.
template <class T>
class ddict_range {
public:
    using decode_fn = T (*)(dict::byte_view key, dict::byte_view value);

    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = const T*;
        using reference = const T&;

        iterator() = default;
        const T& operator*() const { return *current_; }
        const T* operator->() const { return &*current_; }
        iterator& operator++()
        {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        bool operator==(const iterator& o) const { return range_ == o.range_; }

    private:
        friend class ddict_range;
        explicit iterator(ddict_range* r) : range_(r) { advance(); }
        void advance()
        {
            dict::byte_view k;
            dict::byte_view v;
            if (range_ != nullptr && range_->listing_.next(k, v)) {
                current_.emplace(range_->decode_(k, v));
            } else {
                range_ = nullptr;
            }
        }
        ddict_range* range_ = nullptr;
        std::optional<T> current_;
    };

    ddict_range(dict::listing l, decode_fn decode) : listing_(std::move(l)), decode_(decode) {}
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }
    /// Everything left, in a vector.
    std::vector<T> to_vector()
    {
        std::vector<T> out;
        for (auto it = begin(); it != end(); ++it) {
            out.push_back(*it);
        }
        return out;
    }

private:
    dict::listing listing_;
    decode_fn decode_;
};

template <class K, class V>
    requires encodable<K> && encodable<V> && decodable<V>
class ddict {
public:
    using key_type = K;
    using mapped_type = V;

    /// Starts the orchestrator and the managers, waits until every manager serves. Throws
    /// errc::invalid_argument for bad options, errc::process_failed (naming the manager)
    /// if a manager cannot start; nothing is left running then.
    [[nodiscard]] static ddict create(const ddict_options& options)
    {
        return ddict(dict::client::create(options));
    }
    /// Attaches to the dictionary `descriptor` names (see serialize()).
    [[nodiscard]] static ddict attach(std::string_view descriptor,
                                      timeout limit = std::chrono::seconds(30))
    {
        return ddict(dict::client::attach(descriptor, limit));
    }

    /// The descriptor: a printable string under 512 bytes, whatever the number of managers.
    [[nodiscard]] std::string serialize() const { return c_.descriptor(); }
    [[nodiscard]] const std::string& name() const { return c_.name(); }

    // ---- timeouts ------------------------------------------------------------------------
    [[nodiscard]] timeout default_timeout() const noexcept { return c_.default_timeout(); }
    void set_default_timeout(timeout t) noexcept { c_.set_default_timeout(t); }

    // ---- keys and values ---------------------------------------------------------------
    void put(const K& k, const V& v) { put(k, v, c_.default_timeout()); }
    void put(const K& k, const V& v, timeout limit)
    {
        c_.put(key_bytes(k), value_encoder(v), false, limit);
    }
    /// A persistent put: the key survives checkpoints when the dictionary waits for keys.
    void pput(const K& k, const V& v) { pput(k, v, c_.default_timeout()); }
    void pput(const K& k, const V& v, timeout limit)
    {
        c_.put(key_bytes(k), value_encoder(v), true, limit);
    }
    /// The value of k; errc::key_not_found if missing.
    [[nodiscard]] V get(const K& k) { return get(k, c_.default_timeout()); }
    [[nodiscard]] V get(const K& k, timeout limit)
    {
        auto v = find(k, limit);
        if (!v) {
            throw_error(errc::key_not_found, "ddict " + name() + ": key not found");
        }
        return std::move(*v);
    }
    [[nodiscard]] std::optional<V> find(const K& k) { return find(k, c_.default_timeout()); }
    [[nodiscard]] std::optional<V> find(const K& k, timeout limit)
    {
        auto v = c_.get(key_bytes(k), limit);
        if (!v) {
            return std::nullopt;
        }
        return decode<V>(v->bytes(), "ddict value");
    }
    [[nodiscard]] bool contains(const K& k)
    {
        return c_.contains(key_bytes(k), c_.default_timeout());
    }
    /// Removes k and returns its value; errc::key_not_found if missing.
    V pop(const K& k) { return pop(k, c_.default_timeout()); }
    V pop(const K& k, timeout limit)
    {
        auto v = c_.pop(key_bytes(k), limit);
        if (!v) {
            throw_error(errc::key_not_found, "ddict " + name() + ": key not found");
        }
        return decode<V>(v->bytes(), "ddict value");
    }
    /// Atomically adds n to k's value (an int64, created as 0 and persistent if missing) and
    /// returns the value before. Read it back with a ddict<K, std::int64_t>.
    std::int64_t fetch_add(const K& k, std::int64_t n = 1)
    {
        return c_.fetch_add(key_bytes(k), n, c_.default_timeout());
    }
    /// Waits until k holds exactly v (at this handle's checkpoint); errc::timeout.
    void wait_for(const K& k, const V& v, timeout limit)
    {
        c_.wait_for(key_bytes(k), value_encoder(v), limit);
    }
    /// Broadcast put: a copy on every manager, read back cheaply by bget from the nearest.
    void bput(const K& k, const V& v)
    {
        c_.bput(key_bytes(k), value_encoder(v), c_.default_timeout());
    }
    [[nodiscard]] V bget(const K& k)
    {
        auto v = c_.bget(key_bytes(k), c_.default_timeout());
        if (!v) {
            throw_error(errc::key_not_found, "ddict " + name() + ": key not found");
        }
        return decode<V>(v->bytes(), "ddict value");
    }

    /// d[k] = v puts; V v = d[k] gets.
    class reference {
    public:
        reference& operator=(const V& v)
        {
            d_.put(k_, v);
            return *this;
        }
        operator V() const { return d_.get(k_); }  // NOLINT: a map's reference converts

    private:
        friend class ddict;
        reference(ddict& d, const K& k) : d_(d), k_(k) {}
        ddict& d_;
        const K& k_;
    };
    reference operator[](const K& k) { return reference(*this, k); }

    // ---- whole dictionary -------------------------------------------------------------
    [[nodiscard]] std::uint64_t size() { return c_.size(c_.default_timeout()); }
    [[nodiscard]] std::uint64_t local_size() { return c_.local_size(c_.default_timeout()); }
    void clear() { c_.clear(c_.default_timeout()); }
    [[nodiscard]] ddict_range<K> keys()
    {
        return {c_.list(true, false, false, c_.default_timeout()), &decode_key};
    }
    [[nodiscard]] ddict_range<V> values()
    {
        return {c_.list(false, true, false, c_.default_timeout()), &decode_value};
    }
    [[nodiscard]] ddict_range<std::pair<K, V>> items()
    {
        return {c_.list(true, true, false, c_.default_timeout()), &decode_item};
    }
    /// Keys held by managers on this node.
    [[nodiscard]] ddict_range<K> local_keys()
    {
        return {c_.list(true, false, true, c_.default_timeout()), &decode_key};
    }
    [[nodiscard]] std::vector<ddict_stats> stats() { return c_.stats(c_.default_timeout()); }

    void freeze() { c_.freeze(c_.default_timeout()); }
    void unfreeze() { c_.unfreeze(c_.default_timeout()); }
    [[nodiscard]] bool is_frozen() { return c_.is_frozen(c_.default_timeout()); }

    // ---- managers ------------------------------------------------------------------------
    /// A handle whose every operation targets manager `id` only.
    [[nodiscard]] ddict manager(std::uint32_t id) const { return ddict(c_.with_manager(id)); }
    [[nodiscard]] std::uint32_t which_manager(const K& k) const
    {
        return c_.which_manager(key_bytes(k));
    }
    /// A manager on this node if there is one (the chosen one for manager(i) handles).
    [[nodiscard]] std::uint32_t main_manager() const { return c_.main_manager(); }
    [[nodiscard]] std::vector<std::uint32_t> local_managers() const { return c_.local_managers(); }
    /// The node of each manager, by manager id.
    [[nodiscard]] std::vector<std::uint32_t> manager_nodes() const { return c_.manager_nodes(); }
    [[nodiscard]] std::uint32_t managers() const { return c_.managers(); }
    /// The process of each manager, by manager id (dragonx::process::attach(puid)).
    [[nodiscard]] std::vector<std::uint64_t> manager_processes() const
    {
        return c_.manager_processes();
    }

    // ---- checkpoints (this handle's id; see spec §6) ----------------------------------
    /// Moves this handle to the next checkpoint (no message). errc::invalid_operation
    /// during a batch, as rollback() and restore().
    void checkpoint()
    {
        no_batch("checkpoint");
        c_.set_checkpoint_id(c_.checkpoint_id() + 1);
    }
    void rollback()
    {
        no_batch("rollback");
        if (c_.checkpoint_id() > 0) {
            c_.set_checkpoint_id(c_.checkpoint_id() - 1);
        }
    }
    [[nodiscard]] std::uint64_t checkpoint_id() const noexcept { return c_.checkpoint_id(); }
    void set_checkpoint_id(std::uint64_t id) noexcept { c_.set_checkpoint_id(id); }
    void sync_to_newest_checkpoint()
    {
        c_.set_checkpoint_id(c_.newest_checkpoint(c_.default_timeout()));
    }

    // ---- persistence, restart and copies (spec §7, §8) ----------------------------------
    /// Writes this handle's checkpoint to disk on every manager (see ddict_options).
    void persist() { c_.persist(c_.default_timeout()); }
    /// Loads persisted checkpoint `id` everywhere and moves this handle there.
    void restore(std::uint64_t id)
    {
        no_batch("restore");
        c_.restore(id, c_.default_timeout());
    }
    /// Read-only replay: the next persisted checkpoint; returns its id.
    std::uint64_t advance() { return c_.advance(c_.default_timeout()); }
    [[nodiscard]] std::vector<std::uint64_t> persisted_ids()
    {
        return c_.persisted_ids(c_.default_timeout());
    }
    [[nodiscard]] std::vector<std::uint32_t> empty_managers()
    {
        return c_.empty_managers(c_.default_timeout());
    }
    /// Makes each dictionary of `descriptors` an exact copy of this one (all checkpoints).
    void clone(const std::vector<std::string>& descriptors)
    {
        c_.clone(descriptors, c_.default_timeout());
    }
    /// A new dictionary with this one's options, named `name` (empty: a random name), holding
    /// a copy of this one. Creating handles only (errc::invalid_operation otherwise).
    [[nodiscard]] ddict copy(const std::string& name = {}) const
    {
        auto options = c_.creation_options();
        options.name = name;
        options.restart = false;
        options.restore_from.reset();
        options.read_only = false;
        auto copied = create(options);
        auto source = c_;
        source.clone({copied.serialize()}, c_.default_timeout());
        return copied;
    }

    // ---- batches ---------------------------------------------------------------------------
    /// Puts streamed to the managers without waiting for each reply; commit() waits for all
    /// of them and checks every manager's count. Until commit, the handle's puts (and pputs
    /// of a persistent batch) join the batch.
    class batch {
    public:
        void put(const K& k, const V& v) { d_->put(k, v); }
        void pput(const K& k, const V& v) { d_->pput(k, v); }
        void commit()
        {
            if (d_ != nullptr) {
                auto* d = std::exchange(d_, nullptr);
                d->c_.batch_end(d->c_.default_timeout());
            }
        }
        batch(batch&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
        batch& operator=(batch&&) = delete;
        /// An uncommitted batch is committed; errors are lost then: call commit().
        ~batch()
        {
            try {
                commit();
            } catch (...) {
            }
        }

    private:
        friend class ddict;
        explicit batch(ddict* d) : d_(d) {}
        ddict* d_;
    };
    [[nodiscard]] batch start_batch(bool persist = false)
    {
        c_.batch_begin(persist);
        return batch(this);
    }

    // ---- lifetime ------------------------------------------------------------------------
    void detach() { c_.detach(); }
    /// Stops every manager and the orchestrator; the dictionary is gone for every client.
    /// With allow_restart the managers keep their data in memory (pools outside the run)
    /// for a create() with `restart` and the same name, in this run or a later one.
    void destroy(bool allow_restart = false)
    {
        c_.destroy(c_.default_timeout(), allow_restart);
    }

    /// The untyped client underneath.
    [[nodiscard]] dict::client& raw() noexcept { return c_; }

private:
    explicit ddict(dict::client c) : c_(std::move(c)) {}

    void no_batch(const char* what) const
    {
        if (c_.in_batch()) {
            throw_error(errc::invalid_operation,
                        std::string("ddict ") + what + " during a batch (commit it first)");
        }
    }

    static bytes key_bytes(const K& k) { return encode(k); }
    static encoder value_encoder(const V& v)
    {
        encoder out;
        codec<V>::encode(v, out);
        return out;
    }
    static K decode_key(dict::byte_view k, dict::byte_view) { return decode<K>(k, "ddict key"); }
    static V decode_value(dict::byte_view, dict::byte_view v)
    {
        return decode<V>(v, "ddict value");
    }
    static std::pair<K, V> decode_item(dict::byte_view k, dict::byte_view v)
    {
        return {decode<K>(k, "ddict key"), decode<V>(v, "ddict value")};
    }

    dict::client c_;
};

/// Repairs the empty managers of parallel dictionaries (same number of managers, e.g. one
/// restarted with a node missing) from a full copy of the same manager id in another of them.
/// errc::invalid_argument if a manager id is empty everywhere or the manager counts differ.
inline void ddict_synchronize(const std::vector<std::string>& descriptors,
                              timeout limit = std::chrono::seconds(60))
{
    dict::client::synchronize(descriptors, limit);
}

}  // namespace dragonx
