// pool.cpp - pool and allocation handles, descriptors, creation and attachment checks.
#include <dragonx/pool/pool.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include <dragonx/common/descriptor.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/identity.hpp>
#include <dragonx/common/log.hpp>
#include <dragonx/common/random.hpp>
#include <dragonx/common/wire.hpp>

#include "heap.hpp"
#include "layout.hpp"
#include "segment.hpp"

namespace dragonx::pool {
namespace detail {

inline constexpr std::uint8_t descriptor_version = 1;

// What a pool descriptor says: enough to find the shm object and to check it is the same
// creation of it.
struct pool_identity {
    std::string run;
    std::uint32_t node = 0;
    std::uint64_t id = 0;
    std::uint64_t nonce = 0;
    std::uint64_t usable_size = 0;

    void write(byte_writer& w) const
    {
        w.put_string(run);
        w.put(node);
        w.put(id);
        w.put(nonce);
        w.put(usable_size);
    }

    static pool_identity read(byte_reader& r)
    {
        pool_identity p;
        p.run = r.get_string();
        p.node = r.get<std::uint32_t>();
        p.id = r.get<std::uint64_t>();
        p.nonce = r.get<std::uint64_t>();
        p.usable_size = r.get<std::uint64_t>();
        if (!is_valid_run_id(p.run)) {
            r.fail("invalid run id");
        }
        return p;
    }

    [[nodiscard]] std::string shm_name() const
    {
        char id_hex[17];
        std::snprintf(id_hex, sizeof id_hex, "%016llx", static_cast<unsigned long long>(id));
        // Each node of a run has its own namespace: "-n<node>-" (virtual nodes share a host).
        return "/dragonx-" + run + "-n" + std::to_string(node) + "-" + id_hex;
    }

    bool operator==(const pool_identity&) const = default;
};

struct pool_state {
    pool_state(shm_segment seg, pool_identity ident, bool owns)
        : segment(std::move(seg)), heap(segment.data()), identity(std::move(ident)), owner(owns)
    {
    }

    shm_segment segment;
    detail::heap heap;
    pool_identity identity;
    bool owner;
};

namespace {

pool_identity decode_pool(std::string_view text)
{
    const auto payload = open_descriptor(text, descriptor_kind::pool, descriptor_version);
    byte_reader r(payload, errc::malformed_descriptor, "pool descriptor");
    auto ident = pool_identity::read(r);
    r.expect_end();
    return ident;
}

struct allocation_ref {
    pool_identity pool;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
};

allocation_ref decode_allocation(std::string_view text)
{
    const auto payload = open_descriptor(text, descriptor_kind::allocation, descriptor_version);
    byte_reader r(payload, errc::malformed_descriptor, "allocation descriptor");
    allocation_ref a;
    a.pool = pool_identity::read(r);
    a.offset = r.get<std::uint64_t>();
    a.size = r.get<std::uint64_t>();
    r.expect_end();
    return a;
}

std::string encode_pool(const pool_identity& ident)
{
    byte_writer w;
    ident.write(w);
    return seal_descriptor(descriptor_kind::pool, descriptor_version, w.bytes());
}

// Checks an attached segment's header against the descriptor that led to it. Everything the
// heap later trusts (offsets, sizes) is recomputed and compared, so a corrupt or foreign
// object is refused here instead of being dereferenced.
void validate_header(const shm_segment& seg, const pool_identity& want)
{
    const std::string& name = seg.name();
    if (seg.size() < sizeof(pool_header)) {
        throw_error(errc::corrupt_object, "pool " + name + " is too small to be a dragonx pool");
    }
    const auto& h = *reinterpret_cast<const pool_header*>(seg.data());
    if (h.magic != header_magic) {
        throw_error(errc::corrupt_object, "pool " + name + " is not a dragonx pool");
    }
    if (h.version != layout_version) {
        throw_error(errc::version_mismatch, "pool " + name + " has layout version " +
                                                std::to_string(h.version) + ", this build uses " +
                                                std::to_string(layout_version));
    }
    if (h.ready.load(std::memory_order_acquire) != 1) {
        throw_error(errc::corrupt_object, "pool " + name + " was never completely created");
    }
    if (h.nonce != want.nonce || h.pool_id != want.id || h.node != want.node ||
        std::strncmp(h.run, want.run.c_str(), sizeof h.run) != 0) {
        throw_error(errc::not_found, "pool " + name +
                                         " was destroyed and recreated since this descriptor "
                                         "was made");
    }
    if (want.usable_size % min_pool_size != 0 || want.usable_size < min_pool_size ||
        want.usable_size > max_pool_size) {
        throw_error(errc::corrupt_object, "pool " + name + ": impossible size");
    }
    const auto l = compute_layout(want.usable_size);
    if (h.usable_size != l.usable_size || h.top_order != l.top_order ||
        h.segment_size != l.segment_size || h.data_offset != l.data_offset ||
        h.state_offset != l.state_offset || h.bits_offset != l.bits_offset ||
        !std::equal(std::begin(l.bit_base), std::end(l.bit_base), std::begin(h.bit_base)) ||
        seg.size() != l.segment_size) {
        throw_error(errc::corrupt_object, "pool " + name + ": header does not match its size");
    }
}

[[noreturn]] void throw_too_big(std::uint64_t bytes, const pool_identity& p)
{
    throw_error(errc::invalid_argument,
                "allocation of " + std::to_string(bytes) + " bytes can never fit pool " +
                    p.shm_name() + " of " + std::to_string(p.usable_size) + " bytes");
}

}  // namespace
}  // namespace detail

using detail::pool_state;

// ---- allocation ---------------------------------------------------------------------------

allocation::allocation(allocation&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      offset_(std::exchange(other.offset_, 0)),
      size_(std::exchange(other.size_, 0))
{
}

allocation& allocation::operator=(allocation&& other) noexcept
{
    if (this != &other) {
        drop();
        pool_ = std::exchange(other.pool_, nullptr);
        data_ = std::exchange(other.data_, nullptr);
        offset_ = std::exchange(other.offset_, 0);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

allocation::~allocation()
{
    drop();
}

void allocation::drop() noexcept
{
    if (pool_ == nullptr) {
        return;
    }
    try {
        free();
    } catch (const std::exception& e) {
        // Someone freed our block through a copy of its descriptor: the heap refused the
        // second free, so nothing is corrupted. Report the caller's bug and go on.
        log::get("pool").error("dropping an allocation: {}", e.what());
    }
}

std::uint64_t allocation::capacity() const noexcept
{
    return pool_ == nullptr ? 0 : std::uint64_t{1} << detail::order_for(size_);
}

std::string allocation::descriptor() const
{
    if (pool_ == nullptr) {
        throw_error(errc::invalid_argument, "descriptor of an empty allocation handle");
    }
    byte_writer w;
    pool_->identity.write(w);
    w.put(offset_);
    w.put(size_);
    return seal_descriptor(descriptor_kind::allocation, detail::descriptor_version, w.bytes());
}

std::string allocation::release()
{
    std::string d = descriptor();
    pool_ = nullptr;
    data_ = nullptr;
    return d;
}

void allocation::free()
{
    if (pool_ == nullptr) {
        throw_error(errc::invalid_argument, "free of an empty allocation handle");
    }
    auto* p = std::exchange(pool_, nullptr);
    data_ = nullptr;
    p->heap.free(offset_, detail::order_for(size_));
}

// ---- pool ---------------------------------------------------------------------------------

pool::pool() noexcept = default;
pool::pool(std::unique_ptr<pool_state> state) noexcept : state_(std::move(state)) {}
pool::pool(pool&&) noexcept = default;

pool& pool::operator=(pool&& other) noexcept
{
    if (this != &other) {
        if (state_ && state_->owner) {
            state_->segment.unlink();
        }
        state_ = std::move(other.state_);
    }
    return *this;
}

pool::~pool()
{
    if (state_ && state_->owner) {
        state_->segment.unlink();
    }
}

namespace {

// The identity of a pool made now (create, reclaim): `options`' run, node and id, or this
// process's run and node and a random id; a fresh nonce. `what` starts the error message.
detail::pool_identity new_identity(const pool_options& options, const std::string& what)
{
    const auto me = run_identity::from_environment();
    detail::pool_identity ident;
    ident.run = options.run.value_or(me.run);
    ident.node = options.node.value_or(me.node);
    ident.id = options.id ? *options.id : random_u64();
    ident.nonce = random_u64();
    if (!is_valid_run_id(ident.run)) {
        throw_error(errc::invalid_argument,
                    what + ": '" + ident.run + "' is not a valid run id (1-24 of A-Z a-z 0-9 _)");
    }
    return ident;
}

}  // namespace

pool pool::create(const pool_options& options)
{
    using namespace detail;
    auto ident = new_identity(options, "cannot create pool");
    if (options.size < min_pool_size) {
        throw_error(errc::invalid_argument,
                    "cannot create pool " + ident.shm_name() + ": size " +
                        std::to_string(options.size) + " is below the minimum of " +
                        std::to_string(min_pool_size) + " bytes");
    }
    if (options.size > max_pool_size) {
        throw_error(errc::invalid_argument,
                    "cannot create pool " + ident.shm_name() + ": size " +
                        std::to_string(options.size) + " is above the maximum of " +
                        std::to_string(max_pool_size) + " bytes");
    }
    ident.usable_size = round_up(options.size, min_pool_size);
    const auto layout = compute_layout(ident.usable_size);

    auto seg = shm_segment::create(ident.shm_name(), layout.segment_size, options.reserve);
    try {
        heap::format(seg.data(), layout);
        auto& h = *reinterpret_cast<pool_header*>(seg.data());
        h.magic = header_magic;
        h.version = layout_version;
        h.node = ident.node;
        std::strncpy(h.run, ident.run.c_str(), sizeof h.run - 1);
        h.pool_id = ident.id;
        h.nonce = ident.nonce;
        h.creator_pid = static_cast<std::uint32_t>(::getpid());
        h.ready.store(1, std::memory_order_release);  // pairs with validate_header's acquire
    } catch (...) {
        seg.unlink();
        throw;
    }
    log::get("pool").debug("created pool {} ({} bytes)", ident.shm_name(), ident.usable_size);
    return pool(std::make_unique<pool_state>(std::move(seg), std::move(ident), true));
}

namespace {

// A kept pool's name: "/dragonx-kept-" then [A-Za-z0-9._-], at most NAME_MAX in all.
void check_kept_name(std::string_view name)
{
    constexpr std::string_view prefix = "/dragonx-kept-";
    const auto ok_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    };
    if (!name.starts_with(prefix) || name.size() == prefix.size() || name.size() > 250 ||
        !std::all_of(name.begin() + 1, name.end(), ok_char)) {
        throw_error(errc::invalid_argument,
                    "'" + std::string(name) + "' is not a kept pool name (/dragonx-kept-<name>)");
    }
}

std::string shm_path(std::string_view name)
{
    return "/dev/shm" + std::string(name);
}

// Renames shm object `from` to `to`, failing if `to` exists (link, then unlink).
void rename_shm(std::string_view from, std::string_view to)
{
    if (::link(shm_path(from).c_str(), shm_path(to).c_str()) != 0) {
        if (errno == EEXIST) {
            throw_error(errc::already_exists, "cannot rename pool " + std::string(from) +
                                                  ": " + std::string(to) + " exists");
        }
        if (errno == ENOENT) {
            throw_error(errc::not_found, "no pool " + std::string(from));
        }
        throw_system_error_on(true, ("link " + shm_path(from) + " " + shm_path(to)).c_str());
    }
    ::unlink(shm_path(from).c_str());
}

}  // namespace

void pool::keep(std::string_view kept_name)
{
    using namespace detail;
    check_kept_name(kept_name);
    auto& s = state();
    rename_shm(s.identity.shm_name(), kept_name);
    log::get("pool").debug("kept pool {} as {}", s.identity.shm_name(), kept_name);
    s.owner = false;
    detach();
}

pool pool::reclaim(std::string_view kept_name, const pool_options& identity)
{
    using namespace detail;
    check_kept_name(kept_name);
    auto ident = new_identity(identity, "cannot reclaim pool " + std::string(kept_name));
    // Check it is a pool of this build before renaming anything.
    {
        auto seg = shm_segment::open(std::string(kept_name));
        if (seg.size() < sizeof(pool_header)) {
            throw_error(errc::corrupt_object,
                        "kept pool " + std::string(kept_name) + " is not a dragonx pool");
        }
        const auto& h = *reinterpret_cast<const pool_header*>(seg.data());
        pool_identity old;
        old.run = std::string(h.run, strnlen(h.run, sizeof h.run));
        old.node = h.node;
        old.id = h.pool_id;
        old.nonce = h.nonce;
        old.usable_size = h.usable_size;
        if (h.magic != header_magic || !is_valid_run_id(old.run)) {
            throw_error(errc::corrupt_object,
                        "kept pool " + std::string(kept_name) + " is not a dragonx pool");
        }
        validate_header(seg, old);
        ident.usable_size = old.usable_size;
    }
    rename_shm(kept_name, ident.shm_name());
    auto seg = shm_segment::open(ident.shm_name());
    auto& h = *reinterpret_cast<pool_header*>(seg.data());
    h.node = ident.node;
    std::memset(h.run, 0, sizeof h.run);
    std::strncpy(h.run, ident.run.c_str(), sizeof h.run - 1);
    h.pool_id = ident.id;
    h.nonce = ident.nonce;
    h.creator_pid = static_cast<std::uint32_t>(::getpid());
    log::get("pool").debug("reclaimed kept pool {} as {}", kept_name, ident.shm_name());
    return pool(std::make_unique<pool_state>(std::move(seg), std::move(ident), true));
}

pool pool::attach(std::string_view descriptor)
{
    using namespace detail;
    auto ident = decode_pool(descriptor);
    const auto me = run_identity::from_environment();
    if (me.in_run && ident.run != me.run) {
        throw_error(errc::wrong_run, "pool " + ident.shm_name() + " belongs to run " + ident.run +
                                         ", this process to run " + me.run);
    }
    if (me.in_run && ident.node != me.node) {
        throw_error(errc::not_local, "pool " + ident.shm_name() + " lives on node " +
                                         std::to_string(ident.node) + ", this process on node " +
                                         std::to_string(me.node));
    }
    auto seg = shm_segment::open(ident.shm_name());
    validate_header(seg, ident);
    return pool(std::make_unique<pool_state>(std::move(seg), std::move(ident), false));
}

pool_state& pool::state() const
{
    if (!state_) {
        throw_error(errc::invalid_argument, "use of an empty pool handle");
    }
    return *state_;
}

std::string pool::descriptor() const { return detail::encode_pool(state().identity); }
std::string pool::name() const { return state().identity.shm_name(); }
std::uint64_t pool::id() const { return state().identity.id; }
std::string pool::run() const { return state().identity.run; }
std::uint32_t pool::node() const { return state().identity.node; }
std::uint64_t pool::size() const { return state().identity.usable_size; }
bool pool::owner() const { return state().owner; }
void pool::disown() { state().owner = false; }

std::optional<allocation> pool::try_allocate(std::uint64_t bytes)
{
    auto& s = state();
    if (bytes > s.identity.usable_size) [[unlikely]] {
        detail::throw_too_big(bytes, s.identity);
    }
    auto offset = s.heap.try_allocate(detail::order_for(bytes));
    if (!offset) {
        return std::nullopt;
    }
    return allocation(&s, s.heap.data() + *offset, *offset, bytes);
}

allocation pool::allocate(std::uint64_t bytes, timeout limit)
{
    auto& s = state();
    if (bytes > s.identity.usable_size) [[unlikely]] {
        detail::throw_too_big(bytes, s.identity);
    }
    const auto offset = s.heap.allocate(detail::order_for(bytes), limit);
    return allocation(&s, s.heap.data() + offset, offset, bytes);
}

allocation pool::attach_allocation(std::string_view descriptor)
{
    auto& s = state();
    const auto ref = detail::decode_allocation(descriptor);
    if (!(ref.pool == s.identity)) {
        throw_error(errc::invalid_argument, "allocation descriptor belongs to pool " +
                                                ref.pool.shm_name() + ", not to " +
                                                s.identity.shm_name());
    }
    return attach_allocation(ref.offset, ref.size);
}

allocation pool::attach_allocation(std::uint64_t offset, std::uint64_t size)
{
    auto& s = state();
    if (size > s.identity.usable_size || !s.heap.is_owned(offset, detail::order_for(size))) {
        throw_error(errc::invalid_allocation,
                    "no live block at offset " + std::to_string(offset) + " of " +
                        std::to_string(size) + " bytes in pool " + s.identity.shm_name());
    }
    return allocation(&s, s.heap.data() + offset, offset, size);
}

bool pool::contains(const allocation& block) const noexcept
{
    return state_ != nullptr && block.pool_ != nullptr &&
           (block.pool_ == state_.get() || block.pool_->identity == state_->identity);
}

pool_stats pool::stats() const
{
    auto raw = state().heap.stats();
    pool_stats s{};
    s.total_bytes = raw.usable_bytes;
    s.free_bytes = raw.free_bytes;
    s.utilization =
        1.0 - static_cast<double>(raw.free_bytes) / static_cast<double>(raw.usable_bytes);
    s.recoveries = raw.recoveries;
    for (std::size_t i = 0; i < raw.free_blocks.size(); ++i) {
        s.free_blocks.push_back({min_block_size << i, raw.free_blocks[i]});
    }
    return s;
}

void pool::detach() noexcept
{
    state_.reset();
}

void pool::destroy()
{
    state().segment.unlink();
    log::get("pool").debug("destroyed pool {}", state_->identity.shm_name());
    state_.reset();
}

void detail::lock_forever_for_test(pool& p)
{
    p.state().heap.lock_forever_for_test();
}

pool_info describe(std::string_view pool_descriptor)
{
    auto ident = detail::decode_pool(pool_descriptor);
    return {ident.run, ident.node, ident.id, ident.usable_size, ident.shm_name()};
}

std::string pool_of(std::string_view allocation_descriptor)
{
    return detail::encode_pool(detail::decode_allocation(allocation_descriptor).pool);
}

}  // namespace dragonx::pool
