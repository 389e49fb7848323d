// working_set.cpp - see working_set.hpp.
//
// Notes:
// - The set always holds exactly `size` checkpoints, oldest first in a deque: index i holds id
//   oldest + i (§6.1: a fresh set holds 0..size-1 and every advance adds one and retires one).
// - A checkpoint's map is keyed by views into its entries' own blocks, so key bytes are never
//   copied; a view lives as long as the entry it points into, and moving an entry (retirement,
//   overwrite) moves the handle, never the bytes. `deleted` keeps copies of its keys: the
//   entries it masks may be replaced or freed meanwhile.
// - The spec's `persist` set is a flag on each stored entry: a key is persistent in a
//   checkpoint only while that checkpoint holds it (pop and clear drop the flag with it).
// - Under wait_for_keys a running count of the oldest checkpoint's non-persistent keys not yet
//   rewritten in its successor makes a refused retirement O(1): deferred writes are retried
//   after every write. Ops on the two oldest checkpoints adjust it per key; clear and
//   retirement recount it.
// - Choices where §6 is open or contradicts the [REC] fixes:
//   - A pop at c > oldest always adds the key to c.deleted (REC 4), even when no older
//     checkpoint holds it yet: a later write at an older checkpoint then stays masked at c,
//     as a write at c would stay on top of it (the state at c does not depend on arrival
//     order).
//   - clear at c frees c and masks every key of the older checkpoints at c (the header's
//     "removes every key visible at c"; §6.10 only clears c [QUIRK]). It resets c.writers as
//     §6.10 says.
//   - Retirement under wait_for_keys: a non-persistent key of p counts as rewritten in q when
//     q holds it, persistent or not, or deleted it. (§6.2 literally wants it non-persistent
//     in q, which a pput, pop or clear at q could never satisfy again: a deadlock.)
//   - wait_for (value_is) compares the value visible at c (§6.4 lookup; deferred counts as a
//     mismatch), not only a value stored in c itself.
//   - §6.4 step 2's "or there are already deferred ops for c" is the manager's to apply: it
//     owns the queue of deferred ops.
#include "working_set.hpp"

#include <algorithm>
#include <deque>
#include <limits>
#include <utility>

#include <xxhash.h>

#include <dragonx/common/error.hpp>

namespace dragonx::dict {
namespace {

std::string_view as_chars(byte_view bytes) noexcept
{
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// xxHash3 of the key bytes. Transparent, so that std::string and std::string_view keys hash
// alike and a lookup by view never allocates.
struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept
    {
        return static_cast<std::size_t>(XXH3_64bits(key.data(), key.size()));
    }
};

struct key_equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

struct stored {
    entry value;
    bool persistent = false;  // in the checkpoint's `persist` set (set only with wait_for_keys)
};

// Keys are views into the stored entries' blocks.
using key_map = std::unordered_map<std::string_view, stored, key_hash, key_equal>;
using key_set = std::unordered_set<std::string, key_hash, key_equal>;
using view_set = std::unordered_set<std::string_view, key_hash, key_equal>;

struct checkpoint {
    key_map map;
    key_set deleted;  // keys deleted here that mask older versions; disjoint from map's keys
    std::unordered_set<client_id> writers;
};

}  // namespace

struct working_set::impl {
    using retire_fn = std::function<void(std::uint64_t)>;

    // The result of a lookup: for done, the value and the index of its checkpoint.
    struct lookup {
        outcome result;
        const stored* slot = nullptr;
        std::size_t index = 0;
    };

    explicit impl(const working_set_options& o) : options(o), checkpoints(o.size), next_id(o.size)
    {
    }

    working_set_options options;
    std::deque<checkpoint> checkpoints;  // oldest first
    std::uint64_t next_id;               // the id the next advance adds
    std::uint64_t entries = 0;           // entries in all checkpoints
    std::uint64_t bytes = 0;             // their footprints
    std::uint64_t unwritten = 0;         // see unwritten_key(); wait_for_keys only
    std::vector<entry>* graveyard = nullptr;  // see divert_frees()

    // Frees an entry the set no longer holds, or keeps it in the graveyard.
    void release(entry&& e)
    {
        if (graveyard != nullptr && e) {
            graveyard->push_back(std::move(e));
        }
        // else: e is freed by its owner's destructor at the caller's end of statement
    }

    // Releases (see release()) every value of `map` and empties it.
    void release_all(key_map& map)
    {
        if (graveyard != nullptr) {
            for (auto& kv : map) {
                graveyard->push_back(std::move(kv.second.value));
            }
        }
        map.clear();
    }

    [[nodiscard]] std::uint64_t oldest() const noexcept { return next_id - options.size; }
    [[nodiscard]] std::uint64_t newest() const noexcept { return next_id - 1; }
    [[nodiscard]] std::size_t index_of(std::uint64_t id) const noexcept
    {
        return static_cast<std::size_t>(id - oldest());
    }

    void forget(const entry& e) noexcept
    {
        --entries;
        bytes -= e.footprint();
    }

    // Steps 3 and 4 of §6.4: scans from checkpoint `top` (held) down to the oldest for a reader
    // at id `reader` >= top.
    [[nodiscard]] lookup scan(std::uint64_t top, std::uint64_t reader, std::string_view key) const
    {
        for (std::size_t i = index_of(top) + 1; i-- > 0;) {
            const checkpoint& cp = checkpoints[i];
            if (auto it = cp.map.find(key); it != cp.map.end()) {
                if (options.wait_for_keys && !it->second.persistent && reader > oldest() + i) {
                    return {outcome::deferred};  // non-persistent: not visible at a later id
                }
                return {outcome::done, &it->second, i};
            }
            if (cp.deleted.contains(key)) {
                return {outcome::not_found};
            }
        }
        return {options.wait_for_keys ? outcome::deferred : outcome::not_found};
    }

    // §6.4 locate(key, c).
    [[nodiscard]] lookup locate(std::uint64_t c, std::string_view key) const
    {
        if (c < oldest()) {
            return {outcome::retired};
        }
        if (c > newest() && options.wait_for_keys) {
            const key_map& first = checkpoints.front().map;
            const auto it = first.find(key);
            if (it == first.end() || !it->second.persistent) {
                return {outcome::deferred};
            }
        }
        return scan(std::min(c, newest()), c, key);
    }

    // Whether `key` holds up the oldest checkpoint's retirement under wait_for_keys: it is a
    // non-persistent key there, neither written nor deleted in the successor (size >= 2).
    [[nodiscard]] bool unwritten_key(std::string_view key) const
    {
        const checkpoint& p = checkpoints[0];
        const checkpoint& q = checkpoints[1];
        const auto it = p.map.find(key);
        return it != p.map.end() && !it->second.persistent && !q.map.contains(key) &&
               !q.deleted.contains(key);
    }

    // Whether an op on `key` in the checkpoint at index i must adjust `unwritten`.
    [[nodiscard]] bool tracks(std::size_t i) const noexcept
    {
        return options.wait_for_keys && i < 2;
    }

    // After an op on `key` in one of the two oldest checkpoints: `was` is whether the key
    // held up retirement before it.
    void update_unwritten(bool was, std::string_view key)
    {
        if (was) {
            --unwritten;
        }
        if (unwritten_key(key)) {
            ++unwritten;
        }
    }

    void recount()
    {
        unwritten = 0;
        if (options.wait_for_keys) {
            for (const auto& kv : checkpoints[0].map) {
                if (unwritten_key(kv.first)) {
                    ++unwritten;
                }
            }
        }
    }

    // §6.2's conditions for retiring p into its successor q.
    [[nodiscard]] bool may_retire(const checkpoint& p, const checkpoint& q) const
    {
        if (options.wait_for_keys && unwritten != 0) {
            return false;
        }
        if (options.wait_for_writers) {
            for (const client_id w : p.writers) {
                if (!q.writers.contains(w)) {
                    return false;
                }
            }
        }
        return true;
    }

    // Moves what p still shows into q (handles only), then frees the rest of p. The work is
    // O(|q|) when q is the smaller (and no persist flags need setting), else O(|p|).
    void retire_into(checkpoint& p, checkpoint& q)
    {
        if (q.map.empty() && q.deleted.empty()) {
            std::swap(p.map, q.map);  // nothing to supersede: take the whole map
            if (options.wait_for_keys) {
                for (auto& kv : q.map) {
                    kv.second.persistent = true;
                }
            }
        } else if (!options.wait_for_keys && q.map.size() + q.deleted.size() < p.map.size()) {
            // Apply q to p instead, then give q the result.
            for (const std::string& key : q.deleted) {
                if (auto it = p.map.find(key); it != p.map.end()) {
                    forget(it->second.value);
                    release(std::move(it->second.value));
                    p.map.erase(it);
                }
            }
            for (auto it = q.map.begin(); it != q.map.end();) {
                auto node = q.map.extract(it++);
                if (auto old = p.map.find(node.key()); old != p.map.end()) {
                    forget(old->second.value);
                    release(std::move(old->second.value));
                    p.map.erase(old);
                }
                p.map.insert(std::move(node));
            }
            std::swap(p.map, q.map);
        } else {
            for (auto it = p.map.begin(); it != p.map.end();) {
                if (q.map.contains(it->first) || q.deleted.contains(it->first)) {
                    ++it;
                    continue;
                }
                auto node = p.map.extract(it++);
                if (options.wait_for_keys) {
                    node.mapped().persistent = true;
                }
                q.map.insert(std::move(node));
            }
        }
        q.deleted.clear();  // nothing older is left to mask
        for (const auto& kv : p.map) {
            forget(kv.second.value);
        }
        release_all(p.map);
    }

    // §6.2 advance(): adds checkpoint next_id, retiring the oldest into its successor. False,
    // with nothing changed, if the wait rules refuse the retirement.
    bool advance(const retire_fn& on_retire)
    {
        if (checkpoints.size() >= 2 && !may_retire(checkpoints[0], checkpoints[1])) {
            return false;
        }
        if (on_retire) {
            on_retire(oldest());
        }
        checkpoints.emplace_back();
        retire_into(checkpoints[0], checkpoints[1]);
        checkpoints.pop_front();
        ++next_id;
        recount();
        return true;
    }

    outcome ensure(std::uint64_t c, const retire_fn& on_retire)
    {
        if (c < oldest()) {
            return outcome::retired;
        }
        if (c == std::numeric_limits<std::uint64_t>::max()) {
            throw_error(errc::invalid_argument, "ddict working set: checkpoint id 2^64-1");
        }
        for (std::uint64_t steps = 0; newest() < c; ++steps) {
            if (steps >= options.size && !on_retire) {
                // Every checkpoint held was made by this loop: the oldest holds everything
                // (all persistent, no writers, no deletions) and the others are empty, so each
                // further retirement would only rename it.
                next_id = c + 1;
                recount();
                break;
            }
            if (!advance(on_retire)) {
                return outcome::deferred;
            }
        }
        return outcome::done;
    }

    outcome put(std::uint64_t c, client_id client, entry& e, bool persist,
                const retire_fn& on_retire)
    {
        if (!e) {
            throw_error(errc::invalid_argument, "ddict working set: put of an empty entry");
        }
        if (const outcome r = ensure(c, on_retire); r != outcome::done) {
            return r;
        }
        const std::size_t ci = index_of(c);
        checkpoint& cp = checkpoints[ci];
        const std::string_view key = as_chars(e.key());
        const std::uint64_t footprint = e.footprint();
        const bool mark = persist && options.wait_for_keys;
        const bool was_unwritten = tracks(ci) && unwritten_key(key);
        if (auto it = cp.map.find(key); it != cp.map.end()) {
            // The node's key views the old block: re-key it to the new one (no allocation).
            forget(it->second.value);
            auto node = cp.map.extract(it);
            node.key() = key;
            entry superseded = std::move(node.mapped().value);
            node.mapped().value = std::move(e);
            release(std::move(superseded));
            node.mapped().persistent = node.mapped().persistent || mark;
            cp.map.insert(std::move(node));
        } else {
            cp.map.emplace(key, stored{std::move(e), mark});
        }
        ++entries;
        bytes += footprint;
        if (auto it = cp.deleted.find(key); it != cp.deleted.end()) {
            cp.deleted.erase(it);
        }
        cp.writers.insert(client);
        if (tracks(ci)) {
            update_unwritten(was_unwritten, key);
        }
        return outcome::done;
    }

    outcome pop(std::uint64_t c, client_id client, std::string_view key, entry& removed)
    {
        const lookup found = locate(c, key);
        if (found.result != outcome::done) {
            return found.result;
        }
        if (c > newest()) {
            return outcome::deferred;
        }
        const std::size_t ci = index_of(c);
        checkpoint& cp = checkpoints[ci];
        const bool was_unwritten = tracks(ci) && unwritten_key(key);
        cp.writers.insert(client);
        if (found.index == ci) {
            auto node = cp.map.extract(key);
            forget(node.mapped().value);
            removed = std::move(node.mapped().value);
        } else {
            removed = entry{};  // the older checkpoint keeps it; masked below
        }
        if (ci > 0) {
            cp.deleted.emplace(key);
        }
        if (tracks(ci)) {
            update_unwritten(was_unwritten, key);
        }
        return outcome::done;
    }

    outcome clear(std::uint64_t c, client_id client, const retire_fn& on_retire)
    {
        if (const outcome r = ensure(c, on_retire); r != outcome::done) {
            return r;
        }
        const std::size_t ci = index_of(c);
        checkpoint& cp = checkpoints[ci];
        for (const auto& kv : cp.map) {
            forget(kv.second.value);
        }
        release_all(cp.map);
        cp.deleted.clear();
        cp.writers.clear();
        for (std::size_t i = 0; i < ci; ++i) {
            for (const auto& kv : checkpoints[i].map) {
                cp.deleted.emplace(kv.first);
            }
        }
        if (tracks(ci)) {
            recount();
        }
        note_read(c, client);
        return outcome::done;
    }

    void note_read(std::uint64_t c, client_id client)
    {
        if (!options.wait_for_writers || c <= oldest()) {
            return;
        }
        const std::size_t end = index_of(std::min(c, newest()));  // exclusive
        bool wrote = false;
        for (std::size_t i = 0; i < end && !wrote; ++i) {
            wrote = checkpoints[i].writers.contains(client);
        }
        if (wrote) {
            for (std::size_t i = 0; i < end; ++i) {
                checkpoints[i].writers.insert(client);
            }
        }
    }

    // §6.9: calls fn(stored slot) for each key visible at c and returns their number. Each key is
    // decided by the newest checkpoint <= min(c, newest) that shows or deletes it; a
    // checkpoint shows all its keys, or only its persistent ones under wait_for_keys unless it
    // is c itself. With `each` false, fn is not called and the count may come in O(size).
    template <bool each, typename Fn> std::uint64_t visit(std::uint64_t c, const Fn& fn) const
    {
        if (c < oldest()) {
            return 0;
        }
        const bool held = c <= newest();
        const std::size_t top = index_of(std::min(c, newest()));
        const auto shows_all = [&](std::size_t i) {
            return !options.wait_for_keys || (held && i == top);
        };

        // The common case: one checkpoint holds keys and nothing newer masks them.
        std::size_t holders = 0;
        std::size_t last = 0;
        bool masked = false;
        for (std::size_t i = 0; i <= top; ++i) {
            if (!checkpoints[i].map.empty()) {
                ++holders;
                last = i;
                masked = false;
            } else if (!checkpoints[i].deleted.empty()) {
                masked = true;
            }
        }
        if (holders == 0) {
            return 0;
        }
        if (holders == 1 && !masked) {
            const key_map& map = checkpoints[last].map;
            const bool all = shows_all(last);
            if (!each && all) {
                return map.size();
            }
            std::uint64_t n = 0;
            for (const auto& kv : map) {
                if (all || kv.second.persistent) {
                    if constexpr (each) {
                        fn(kv.second);
                    }
                    ++n;
                }
            }
            return n;
        }

        view_set decided;
        std::uint64_t n = 0;
        for (std::size_t i = top + 1; i-- > 0;) {
            const checkpoint& cp = checkpoints[i];
            const bool all = shows_all(i);
            for (const auto& [key, slot] : cp.map) {
                if ((all || slot.persistent) && decided.insert(key).second) {
                    if constexpr (each) {
                        fn(slot);
                    }
                    ++n;
                }
            }
            for (const std::string& key : cp.deleted) {
                decided.insert(key);
            }
        }
        return n;
    }
};

working_set::working_set(working_set_options options)
{
    if (options.size == 0) {
        throw_error(errc::invalid_argument, "ddict working set: the size must be at least 1");
    }
    if (options.size < 2 && (options.wait_for_keys || options.wait_for_writers)) {
        throw_error(errc::invalid_argument,
                    "ddict working set: wait_for_keys and wait_for_writers need a size of 2 "
                    "or more");
    }
    impl_ = std::make_unique<impl>(options);
}

working_set::~working_set() = default;
working_set::working_set(working_set&&) noexcept = default;
working_set& working_set::operator=(working_set&&) noexcept = default;

const working_set_options& working_set::options() const noexcept
{
    return impl_->options;
}

std::uint64_t working_set::oldest() const noexcept
{
    return impl_->oldest();
}

std::uint64_t working_set::newest() const noexcept
{
    return impl_->newest();
}

outcome working_set::put(std::uint64_t c, client_id client, entry& e, bool persist)
{
    return impl_->put(c, client, e, persist, on_retire);
}

outcome working_set::get(std::uint64_t c, byte_view key, const entry** found) const
{
    const impl::lookup l = impl_->locate(c, as_chars(key));
    if (l.result == outcome::done && found != nullptr) {
        *found = &l.slot->value;
    }
    return l.result;
}

bool working_set::contains(std::uint64_t c, byte_view key) const
{
    if (c < impl_->oldest()) {
        return false;
    }
    const std::uint64_t top = std::min(c, impl_->newest());
    const impl::lookup l = impl_->scan(top, top, as_chars(key));
    if (l.result != outcome::done) {
        return false;
    }
    // Under wait_for_keys a non-persistent value is not visible beyond the newest checkpoint.
    return !(impl_->options.wait_for_keys && c > impl_->newest() && !l.slot->persistent);
}

outcome working_set::pop(std::uint64_t c, client_id client, byte_view key, entry& removed)
{
    return impl_->pop(c, client, as_chars(key), removed);
}

std::uint64_t working_set::size(std::uint64_t c) const
{
    return impl_->visit<false>(c, [](const stored&) {});
}

void working_set::for_each(std::uint64_t c, const std::function<void(const entry&)>& fn) const
{
    impl_->visit<true>(c, [&](const stored& slot) { fn(slot.value); });
}

void working_set::for_each_flagged(std::uint64_t c,
                                   const std::function<void(const entry&, bool)>& fn) const
{
    impl_->visit<true>(c, [&](const stored& slot) { fn(slot.value, slot.persistent); });
}

std::vector<checkpoint_export> working_set::export_all() const
{
    std::vector<checkpoint_export> out;
    out.reserve(impl_->checkpoints.size());
    std::uint64_t id = impl_->oldest();
    for (const checkpoint& cp : impl_->checkpoints) {
        checkpoint_export& x = out.emplace_back();
        x.id = id++;
        x.entries.reserve(cp.map.size());
        for (const auto& kv : cp.map) {
            x.entries.push_back({&kv.second.value, kv.second.persistent});
        }
        x.deleted.assign(cp.deleted.begin(), cp.deleted.end());
        x.writers.assign(cp.writers.begin(), cp.writers.end());
    }
    return out;
}

void working_set::abandon() noexcept
{
    for (checkpoint& cp : impl_->checkpoints) {
        for (auto& kv : cp.map) {
            kv.second.value.block().disown();
        }
        cp.map.clear();
        cp.deleted.clear();
        cp.writers.clear();
    }
    impl_->entries = 0;
    impl_->bytes = 0;
    impl_->unwritten = 0;
}

void working_set::divert_frees(std::vector<entry>* to) noexcept
{
    impl_->graveyard = to;
}

working_set working_set::restore(working_set_options options,
                                 std::vector<checkpoint_state> checkpoints)
{
    working_set set(options);
    if (checkpoints.size() > options.size) {
        throw_error(errc::invalid_argument,
                    "ddict working set: " + std::to_string(checkpoints.size()) +
                        " checkpoints restored into a set of " + std::to_string(options.size));
    }
    if (checkpoints.empty()) {
        return set;
    }
    impl& s = *set.impl_;
    const std::uint64_t first = checkpoints.front().id;
    if (first > std::numeric_limits<std::uint64_t>::max() - options.size) {
        throw_error(errc::invalid_argument, "ddict working set: checkpoint id out of range");
    }
    s.next_id = first + options.size;
    for (std::size_t i = 0; i < checkpoints.size(); ++i) {
        checkpoint_state& from = checkpoints[i];
        if (from.id != first + i) {
            throw_error(errc::invalid_argument,
                        "ddict working set: restored checkpoints are not consecutive (" +
                            std::to_string(from.id) + " after " +
                            std::to_string(first + i - 1) + ")");
        }
        checkpoint& cp = s.checkpoints[i];
        for (auto& [e, persistent] : from.entries) {
            if (!e) {
                throw_error(errc::invalid_argument, "ddict working set: an empty entry");
            }
            const std::string_view key = as_chars(e.key());
            const std::uint64_t footprint = e.footprint();
            if (!cp.map.emplace(key, stored{std::move(e), persistent && options.wait_for_keys})
                     .second) {
                throw_error(errc::invalid_argument,
                            "ddict working set: a key twice in restored checkpoint " +
                                std::to_string(from.id));
            }
            ++s.entries;
            s.bytes += footprint;
        }
        for (std::string& key : from.deleted) {
            if (cp.map.contains(key)) {
                throw_error(errc::invalid_argument,
                            "ddict working set: a key both stored and deleted in restored "
                            "checkpoint " +
                                std::to_string(from.id));
            }
            cp.deleted.insert(std::move(key));
        }
        cp.writers.insert(from.writers.begin(), from.writers.end());
    }
    s.recount();
    return set;
}

outcome working_set::clear(std::uint64_t c, client_id client)
{
    return impl_->clear(c, client, on_retire);
}

void working_set::note_read(std::uint64_t c, client_id client)
{
    impl_->note_read(c, client);
}

outcome working_set::ensure(std::uint64_t c)
{
    return impl_->ensure(c, on_retire);
}

outcome working_set::value_is(std::uint64_t c, byte_view key, byte_view expected)
{
    if (const outcome r = impl_->ensure(c, on_retire); r != outcome::done) {
        return r;
    }
    const impl::lookup l = impl_->locate(c, as_chars(key));
    if (l.result == outcome::done && std::ranges::equal(l.slot->value.value(), expected)) {
        return outcome::done;
    }
    return outcome::deferred;
}

std::uint64_t working_set::entry_count() const noexcept
{
    return impl_->entries;
}

std::uint64_t working_set::stored_bytes() const noexcept
{
    return impl_->bytes;
}

}  // namespace dragonx::dict
