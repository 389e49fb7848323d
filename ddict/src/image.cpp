// image.cpp - see image.hpp.
//
// Notes:
// - Layout (version 1): image_header (48 bytes); per checkpoint a checkpoint_header (32),
//   then per entry an entry_header (16), the key and the value; per deleted key a u32 size and
//   the bytes; per writer a u64; then the XXH3-64 of every byte before it (8). The headers are
//   structs without implicit padding (explicit reserved bytes, which must be zero), copied
//   with memcpy.
// - The loader keeps `owed`: the bytes that the parts announced so far still need at least
//   (a header announces its sub-parts at their minimum sizes; an entry or deleted-key header
//   announces its payload exactly). Every announcement must fit in what the image's claimed
//   total leaves, so no count or length can exceed the image, and nothing is allocated before
//   the bytes that justify it are announced. Vectors are never reserved from a count and a
//   deleted key's string grows with the bytes received, so an image whose claimed total is
//   itself a lie (and that the caller gave no limit) allocates only what actually arrives;
//   an entry's pool block is the one exception, bounded by the claimed total and the pool.
// - The checksum is checked only by take(): a flipped byte in a payload is found there, a
//   flipped byte in a header usually earlier (by the structural checks).
#include "image.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <type_traits>

#include <fmt/format.h>
#include <xxhash.h>

#include <dragonx/common/error.hpp>

namespace dragonx::dict {
namespace {

constexpr std::array<char, 8> image_magic = {'D', 'X', 'D', 'D', 'I', 'C', 'T', '\n'};
constexpr std::uint32_t image_version = 1;

struct image_header {
    char magic[8];
    std::uint32_t version;
    std::uint32_t working_set_size;
    std::uint64_t total_size;  // every byte of the image, checksum included
    std::uint32_t manager_id;
    std::uint32_t managers;
    std::uint64_t checkpoint_count;
    std::uint8_t wait_for_keys;  // 0 or 1
    std::uint8_t wait_for_writers;
    std::uint8_t reserved[6];
};

struct checkpoint_header {
    std::uint64_t id;
    std::uint64_t entry_count;
    std::uint64_t deleted_count;
    std::uint64_t writer_count;
};

struct entry_header {
    std::uint32_t key_size;
    std::uint8_t persistent;  // 0 or 1
    std::uint8_t reserved[3];
    std::uint64_t value_size;
};

using deleted_size = std::uint32_t;
using checksum = std::uint64_t;

// No implicit padding: every byte of a header is a field, so memcpy gives a defined image.
static_assert(std::is_trivially_copyable_v<image_header> &&
              std::has_unique_object_representations_v<image_header> &&
              sizeof(image_header) == 48);
static_assert(std::is_trivially_copyable_v<checkpoint_header> &&
              std::has_unique_object_representations_v<checkpoint_header> &&
              sizeof(checkpoint_header) == 32);
static_assert(std::is_trivially_copyable_v<entry_header> &&
              std::has_unique_object_representations_v<entry_header> &&
              sizeof(entry_header) == 16);

// Keys and values at least this large go to the sink from where they lie.
constexpr std::size_t direct_min = 64 * 1024;
// write_image's buffer for everything smaller.
constexpr std::size_t write_buffer_size = 1024 * 1024;
// A deleted key's string grows by at most this much per destination handed out.
constexpr std::size_t deleted_chunk = 64 * 1024;

struct xxh3_state_deleter {
    void operator()(XXH3_state_t* state) const noexcept { XXH3_freeState(state); }
};
using xxh3_state = std::unique_ptr<XXH3_state_t, xxh3_state_deleter>;

xxh3_state make_hash_state()
{
    xxh3_state state(XXH3_createState());
    if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) {
        throw std::bad_alloc();
    }
    return state;
}

template <typename T>
byte_view bytes_of(const T& value) noexcept
{
    return {reinterpret_cast<const std::byte*>(&value), sizeof(T)};
}

std::uint32_t checked_u32(std::size_t size, const char* what)
{
    if (size > std::numeric_limits<std::uint32_t>::max()) {
        throw_error(errc::invalid_argument,
                    fmt::format("ddict image: a {} of {} bytes (at most 4 GiB - 1)", what, size));
    }
    return static_cast<std::uint32_t>(size);
}

// Writes the image in order: small parts through a buffer, large ones straight to the sink;
// hashes every byte on its way out.
class image_writer {
public:
    explicit image_writer(image_sink& sink) : sink_(sink), hash_(make_hash_state())
    {
        buffer_.reserve(write_buffer_size);
    }

    template <typename T>
    void put(const T& value)
    {
        put_bytes(bytes_of(value));
    }

    void put_bytes(byte_view bytes)
    {
        if (bytes.size() >= direct_min) {
            flush();
            XXH3_64bits_update(hash_.get(), bytes.data(), bytes.size());
            sink_.write(bytes);
            return;
        }
        if (buffer_.size() + bytes.size() > write_buffer_size) {
            flush();
        }
        buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    }

    // Ends the image: its checksum, unhashed.
    void finish()
    {
        flush();
        const checksum sum = XXH3_64bits_digest(hash_.get());
        sink_.write(bytes_of(sum));
    }

private:
    void flush()
    {
        if (buffer_.empty()) {
            return;
        }
        XXH3_64bits_update(hash_.get(), buffer_.data(), buffer_.size());
        sink_.write(buffer_);
        buffer_.clear();
    }

    image_sink& sink_;
    xxh3_state hash_;
    std::vector<std::byte> buffer_;
};

[[noreturn]] void corrupt(const std::string& what)
{
    throw_error(errc::corrupt_file, "corrupt ddict image: " + what);
}

}  // namespace

std::uint64_t image_size(std::span<const checkpoint_view> checkpoints)
{
    std::uint64_t total = sizeof(image_header) + sizeof(checksum);
    for (const auto& cp : checkpoints) {
        total += sizeof(checkpoint_header);
        for (const auto& e : cp.entries) {
            total += sizeof(entry_header) + e.key.size() + e.value.size();
        }
        for (const auto& key : cp.deleted) {
            total += sizeof(deleted_size) + key.size();
        }
        total += cp.writers.size() * sizeof(client_id);
    }
    return total;
}

void write_image(const image_meta& meta, std::span<const checkpoint_view> checkpoints,
                 image_sink& sink)
{
    image_header header{};
    std::memcpy(header.magic, image_magic.data(), sizeof(header.magic));
    header.version = image_version;
    header.working_set_size = meta.working_set_size;
    header.total_size = image_size(checkpoints);
    header.manager_id = meta.manager_id;
    header.managers = meta.managers;
    header.checkpoint_count = checkpoints.size();
    header.wait_for_keys = meta.wait_for_keys ? 1 : 0;
    header.wait_for_writers = meta.wait_for_writers ? 1 : 0;

    image_writer out(sink);
    out.put(header);
    for (const auto& cp : checkpoints) {
        const checkpoint_header ch{
            .id = cp.id,
            .entry_count = cp.entries.size(),
            .deleted_count = cp.deleted.size(),
            .writer_count = cp.writers.size(),
        };
        out.put(ch);
        for (const auto& e : cp.entries) {
            entry_header eh{};
            eh.key_size = checked_u32(e.key.size(), "key");
            eh.persistent = e.persistent ? 1 : 0;
            eh.value_size = e.value.size();
            out.put(eh);
            out.put_bytes(e.key);
            out.put_bytes(e.value);
        }
        for (const auto& key : cp.deleted) {
            out.put(checked_u32(key.size(), "deleted key"));
            out.put_bytes(std::as_bytes(std::span(key.data(), key.size())));
        }
        for (const client_id writer : cp.writers) {
            out.put(writer);
        }
    }
    out.finish();
}

// ---------------------------------------------------------------------------------------------

struct image_loader::impl {
    // The part of the image the next bytes belong to.
    enum class part : std::uint8_t {
        image_header,
        checkpoint_header,
        entry_header,
        entry_data,  // key and value, into `block`
        deleted_size,
        deleted_data,  // into the last deleted key's string
        writer,
        checksum,
        done,
    };

    impl(pool::pool& p, std::uint64_t l) : pool(p), limit(l), hash(make_hash_state())
    {
        expect_small(part::image_header, sizeof(image_header));
    }

    pool::pool& pool;
    const std::uint64_t limit;
    xxh3_state hash;

    part at = part::image_header;
    std::uint64_t received = 0;  // bytes committed
    std::uint64_t total = 0;     // claimed by the image header (0 until it arrived)
    std::uint64_t owed = 0;      // bytes that the parts announced so far still need, at least

    // Headers, sizes, writers and the checksum arrive here, exactly `small_need` bytes.
    alignas(8) std::array<std::byte, sizeof(image_header)> small{};
    std::size_t small_need = 0;
    std::size_t small_have = 0;

    // Counts of parts not yet arrived.
    std::uint64_t checkpoints_left = 0;
    std::uint64_t entries_left = 0;
    std::uint64_t deleted_left = 0;
    std::uint64_t writers_left = 0;

    // The entry being received.
    entry_header current{};
    pool::allocation block;
    std::uint64_t block_need = 0;
    std::uint64_t block_have = 0;

    // The deleted key being received: its size, and the bytes of it arrived (its string
    // grows by chunks as they arrive).
    std::uint64_t deleted_need = 0;
    std::uint64_t deleted_have = 0;

    checksum expected_sum = 0;
    bool taken = false;
    loaded_image image;

    void expect_small(part p, std::size_t n)
    {
        at = p;
        small_need = n;
        small_have = 0;
    }

    // Bytes the claimed total leaves for announcements not yet made.
    [[nodiscard]] std::uint64_t unclaimed() const noexcept
    {
        return total - sizeof(checksum) - received - owed;
    }

    // Announces `count` parts of at least `unit` (> 0) bytes each; corrupt if they cannot
    // fit.
    void announce(std::uint64_t count, std::uint64_t unit, const char* what)
    {
        if (count > unclaimed() / unit) {
            corrupt(fmt::format("{} {} need at least {} bytes each, but the image has only {} "
                                "bytes left for them (at byte {})",
                                count, what, unit, unclaimed(), received));
        }
        owed += count * unit;
    }

    // Announces a payload of exactly `n` bytes; corrupt if it cannot fit.
    void announce_bytes(std::uint64_t n, const char* what)
    {
        if (n > unclaimed()) {
            corrupt(fmt::format("{} of {} bytes, but the image has only {} bytes left for it "
                                "(at byte {})",
                                what, n, unclaimed(), received));
        }
        owed += n;
    }

    // Moves on to whatever comes after a completed part.
    void next_part()
    {
        loaded_checkpoint* cp = image.checkpoints.empty() ? nullptr : &image.checkpoints.back();
        if (cp != nullptr && entries_left > 0) {
            expect_small(part::entry_header, sizeof(entry_header));
        } else if (cp != nullptr && deleted_left > 0) {
            expect_small(part::deleted_size, sizeof(deleted_size));
        } else if (cp != nullptr && writers_left > 0) {
            expect_small(part::writer, sizeof(client_id));
        } else if (checkpoints_left > 0) {
            expect_small(part::checkpoint_header, sizeof(checkpoint_header));
        } else {
            if (owed != 0 || received + sizeof(checksum) != total) {
                corrupt(fmt::format("size mismatch: its parts end at byte {}, its header says "
                                    "{} bytes with the checksum",
                                    received, total));
            }
            expect_small(part::checksum, sizeof(checksum));
        }
    }

    void on_image_header()
    {
        image_header h;
        std::memcpy(&h, small.data(), sizeof(h));
        if (std::memcmp(h.magic, image_magic.data(), sizeof(h.magic)) != 0) {
            corrupt("bad magic (not a ddict image)");
        }
        if (h.version != image_version) {
            corrupt(fmt::format("format version {}, this build reads version {}", h.version,
                                image_version));
        }
        if (h.wait_for_keys > 1 || h.wait_for_writers > 1 ||
            std::any_of(std::begin(h.reserved), std::end(h.reserved),
                        [](std::uint8_t b) { return b != 0; })) {
            corrupt("bad flags in the image header");
        }
        if (h.total_size > limit) {
            corrupt(fmt::format("the header claims {} bytes, more than the {} available "
                                "(truncated?)",
                                h.total_size, limit));
        }
        if (h.total_size < sizeof(image_header) + sizeof(checksum)) {
            corrupt(fmt::format("the header claims {} bytes, less than a header", h.total_size));
        }
        total = h.total_size;
        image.meta = image_meta{
            .working_set_size = h.working_set_size,
            .wait_for_keys = h.wait_for_keys != 0,
            .wait_for_writers = h.wait_for_writers != 0,
            .manager_id = h.manager_id,
            .managers = h.managers,
        };
        announce(h.checkpoint_count, sizeof(checkpoint_header), "checkpoints");
        checkpoints_left = h.checkpoint_count;
        next_part();
    }

    void on_checkpoint_header()
    {
        checkpoint_header h;
        std::memcpy(&h, small.data(), sizeof(h));
        announce(h.entry_count, sizeof(entry_header), "entries");
        announce(h.deleted_count, sizeof(deleted_size), "deleted keys");
        announce(h.writer_count, sizeof(client_id), "writers");
        --checkpoints_left;
        entries_left = h.entry_count;
        deleted_left = h.deleted_count;
        writers_left = h.writer_count;
        image.checkpoints.emplace_back().id = h.id;
        next_part();
    }

    void on_entry_header()
    {
        std::memcpy(&current, small.data(), sizeof(current));
        if (current.persistent > 1 ||
            std::any_of(std::begin(current.reserved), std::end(current.reserved),
                        [](std::uint8_t b) { return b != 0; })) {
            corrupt(fmt::format("bad flags in the entry header at byte {}",
                                received - sizeof(entry_header)));
        }
        announce_bytes(current.key_size, "a key");
        announce_bytes(current.value_size, "a value");
        at = part::entry_data;  // the block is allocated by next_destination()
        block_need = std::uint64_t{current.key_size} + current.value_size;
        block_have = 0;
    }

    // Allocates the current entry's block; a zero-length entry is then complete.
    void allocate_block()
    {
        const std::uint64_t n = std::max<std::uint64_t>(block_need, 1);
        std::optional<pool::allocation> b;
        if (n <= pool.size()) {
            b = pool.try_allocate(n);
        }
        if (!b) {
            throw_error(errc::ddict_full,
                        fmt::format("ddict image: no free block of {} bytes (key {} + value {}) "
                                    "in pool {} for entry {} of checkpoint {}",
                                    n, current.key_size, current.value_size, pool.name(),
                                    image.checkpoints.back().entries.size(),
                                    image.checkpoints.back().id));
        }
        block = std::move(*b);
        populate(block.data(), block_need);
        if (block_need == 0) {
            finish_entry();
        }
    }

    // Maps the pages a large entry will fill in one call, instead of one fault per page as
    // they are written (a fresh pool's pages are not mapped yet). Best effort.
    static void populate(std::byte* data, std::uint64_t n)
    {
        constexpr std::uint64_t worth_it = 256 << 10;
        if (n < worth_it) {
            return;
        }
        const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
        const auto start = (reinterpret_cast<std::uintptr_t>(data) + page - 1) & ~(page - 1);
        const auto end = (reinterpret_cast<std::uintptr_t>(data) + n) & ~(page - 1);
        if (end > start) {
            (void)::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
        }
    }

    void finish_entry()
    {
        image.checkpoints.back().entries.emplace_back(
            entry(std::move(block), 0, current.key_size, current.value_size),
            current.persistent != 0);
        block = {};
        --entries_left;
        next_part();
    }

    void on_deleted_size()
    {
        deleted_size n;
        std::memcpy(&n, small.data(), sizeof(n));
        announce_bytes(n, "a deleted key");
        image.checkpoints.back().deleted.emplace_back();
        deleted_need = n;
        deleted_have = 0;
        if (n == 0) {
            finish_deleted();
        } else {
            at = part::deleted_data;
        }
    }

    void finish_deleted()
    {
        --deleted_left;
        next_part();
    }

    void on_writer()
    {
        client_id w;
        std::memcpy(&w, small.data(), sizeof(w));
        image.checkpoints.back().writers.push_back(w);
        --writers_left;
        next_part();
    }

    std::span<std::byte> destination()
    {
        // An entry's block is allocated here; a zero-length entry completes at once, and the
        // part after it may be another entry.
        while (at == part::entry_data && !block) {
            allocate_block();
        }
        switch (at) {
        case part::entry_data:
            return {block.data() + block_have, block_need - block_have};
        case part::deleted_data: {
            // The string grows by a chunk once the bytes offered before have arrived.
            std::string& key = image.checkpoints.back().deleted.back();
            if (key.size() == deleted_have) {
                key.resize(std::min<std::uint64_t>(deleted_need, deleted_have + deleted_chunk));
            }
            return {reinterpret_cast<std::byte*>(key.data()) + deleted_have,
                    key.size() - deleted_have};
        }
        case part::done:
            return {};
        default:
            return {small.data() + small_have, small_need - small_have};
        }
    }

    // How many bytes the destination last handed out still takes.
    [[nodiscard]] std::uint64_t room() const noexcept
    {
        switch (at) {
        case part::entry_data:
            return block ? block_need - block_have : 0;
        case part::deleted_data:
            return image.checkpoints.back().deleted.back().size() - deleted_have;
        case part::done:
            return 0;
        default:
            return small_need - small_have;
        }
    }

    void commit(std::size_t n)
    {
        if (n == 0) {
            return;
        }
        if (n > room()) {
            throw_error(errc::invalid_argument,
                        fmt::format("ddict image: commit of {} bytes, more than the {} the "
                                    "destination offered",
                                    n, room()));
        }
        if (at != part::checksum) {
            const std::byte* start = at == part::entry_data ? block.data() + block_have
                                     : at == part::deleted_data
                                         ? reinterpret_cast<const std::byte*>(
                                               image.checkpoints.back().deleted.back().data()) +
                                               deleted_have
                                         : small.data() + small_have;
            XXH3_64bits_update(hash.get(), start, n);
        }
        if (at != part::image_header && at != part::checksum) {
            owed -= n;  // every byte after the image header was announced
        }
        received += n;

        switch (at) {
        case part::entry_data:
            block_have += n;
            if (block_have == block_need) {
                finish_entry();
            }
            return;
        case part::deleted_data:
            deleted_have += n;
            if (deleted_have == deleted_need) {
                finish_deleted();
            }
            return;
        default:
            small_have += n;
            if (small_have < small_need) {
                return;
            }
            break;
        }
        switch (at) {
        case part::image_header:
            on_image_header();
            break;
        case part::checkpoint_header:
            on_checkpoint_header();
            break;
        case part::entry_header:
            on_entry_header();
            break;
        case part::deleted_size:
            on_deleted_size();
            break;
        case part::writer:
            on_writer();
            break;
        case part::checksum:
            std::memcpy(&expected_sum, small.data(), sizeof(expected_sum));
            at = part::done;
            break;
        default:
            break;
        }
    }
};

image_loader::image_loader(pool::pool& pool, std::uint64_t limit)
    : impl_(std::make_unique<impl>(pool, limit))
{
}

image_loader::~image_loader() = default;

std::span<std::byte> image_loader::next_destination()
{
    return impl_->destination();
}

void image_loader::commit(std::size_t n)
{
    impl_->commit(n);
}

void image_loader::feed(byte_view bytes)
{
    while (!bytes.empty()) {
        if (impl_->at == impl::part::done) {
            corrupt(fmt::format("{} bytes past the end of the image ({} bytes)", bytes.size(),
                                impl_->total));
        }
        const std::span<std::byte> to = impl_->destination();
        const std::size_t n = std::min(to.size(), bytes.size());
        std::memcpy(to.data(), bytes.data(), n);
        impl_->commit(n);
        bytes = bytes.subspan(n);
    }
}

bool image_loader::done() const noexcept
{
    return impl_->at == impl::part::done;
}

std::uint64_t image_loader::total_size() const noexcept
{
    return impl_->total;
}

loaded_image image_loader::take()
{
    impl& d = *impl_;
    if (d.taken) {
        throw_error(errc::invalid_operation, "ddict image: take() called twice");
    }
    if (d.at != impl::part::done) {
        corrupt(fmt::format("truncated: {} of {} bytes", d.received,
                            d.total == 0 ? std::string("?") : std::to_string(d.total)));
    }
    const checksum sum = XXH3_64bits_digest(d.hash.get());
    if (sum != d.expected_sum) {
        corrupt(fmt::format("checksum mismatch (computed {:016x}, stored {:016x})", sum,
                            d.expected_sum));
    }
    d.taken = true;
    return std::move(d.image);
}

}  // namespace dragonx::dict
