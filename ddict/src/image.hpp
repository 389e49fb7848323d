// image.hpp - the byte form of a manager's checkpoints: what a persisted file holds and what a
// manager streams to another to make it a copy (synchronize, clone).
//
//   image   = image_header, then per checkpoint: checkpoint_header, its entries, its deleted
//             keys, its writers; then the xxHash3-64 of every byte before it (8 bytes)
//   entry   = entry_header (key size, value size, persistent flag), key bytes, value bytes
//   deleted = u32 size, key bytes
//   writer  = u64 client id
//
// Writing: write_image() hands the bytes to a sink in order: small parts buffered, values of
// 64 KiB or more passed straight from where they lie (no copy), so a file sink can write()
// them from the pool. Loading: image_loader is a push parser that says where the next bytes
// must go (next_destination): into a pool block for an entry's key and value, so a file is
// read() straight into the pool and nothing is copied twice; feed() copies a received chunk
// through the same steps.
//
// Notes:
// - Nothing is trusted: the header's total size bounds every count and length (a corrupt
//   count cannot make the loader allocate more than the image holds), and the checksum is
//   checked before take() hands anything out. A loader destroyed before take() frees every
//   block it allocated.
// - Numbers are in host byte order (persisted files are read back on the same architecture).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <dragonx/pool/pool.hpp>

#include "working_set.hpp"

namespace dragonx::dict {

/// The dictionary settings an image was written under (checked by whoever loads it).
struct image_meta {
    std::uint32_t working_set_size = 1;
    bool wait_for_keys = false;
    bool wait_for_writers = false;
    std::uint32_t manager_id = 0;
    std::uint32_t managers = 1;
};

/// One checkpoint to write: views of the entries (they must stay valid during the write).
struct checkpoint_view {
    struct item {
        byte_view key;
        byte_view value;
        bool persistent = false;
    };
    std::uint64_t id = 0;
    std::vector<item> entries;
    std::vector<std::string> deleted;
    std::vector<client_id> writers;
};

/// One checkpoint loaded: its entries are blocks of the loader's pool (key then value), as a
/// working set is rebuilt from (working_set::restore).
using loaded_checkpoint = checkpoint_state;

struct loaded_image {
    image_meta meta;
    std::vector<loaded_checkpoint> checkpoints;  // in the order written
};

/// Where write_image() puts bytes, in order.
class image_sink {
public:
    virtual ~image_sink() = default;
    virtual void write(byte_view bytes) = 0;
};

/// Total bytes of the image of these checkpoints (header and checksum included).
[[nodiscard]] std::uint64_t image_size(std::span<const checkpoint_view> checkpoints);

/// Writes the image of `checkpoints` (in that order) to `sink`. Throws what the sink throws.
void write_image(const image_meta& meta, std::span<const checkpoint_view> checkpoints,
                 image_sink& sink);

/// Parses an image pushed in pieces, allocating entries in `pool`.
class image_loader {
public:
    /// `limit`: refuse an image whose header claims more bytes (errc::corrupt_file).
    explicit image_loader(pool::pool& pool, std::uint64_t limit = ~std::uint64_t{0});
    ~image_loader();
    image_loader(const image_loader&) = delete;
    image_loader& operator=(const image_loader&) = delete;

    /// Where the next bytes go: a non-empty span until done(). Throws errc::ddict_full if
    /// the pool has no block for the next entry.
    [[nodiscard]] std::span<std::byte> next_destination();
    /// `n` bytes (at most next_destination().size()) were written there. Throws
    /// errc::corrupt_file as soon as the bytes cannot be an image (bad magic, version, a size
    /// beyond the image).
    void commit(std::size_t n);
    /// Copies `bytes` through next_destination()/commit(); bytes past the image's end are
    /// errc::corrupt_file.
    void feed(byte_view bytes);

    /// All bytes of the image have arrived.
    [[nodiscard]] bool done() const noexcept;
    /// Total bytes of the image (known once its header arrived; 0 before).
    [[nodiscard]] std::uint64_t total_size() const noexcept;

    /// The image, once done() and its checksum matches; errc::corrupt_file otherwise (not
    /// done: truncated; checksum: corrupt). Call once.
    [[nodiscard]] loaded_image take();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace dragonx::dict
