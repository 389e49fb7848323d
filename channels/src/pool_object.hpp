// pool_object.hpp - finding and mapping an object that lives in one block of a pool (a
// channel, a barrier, ...), named by that block's allocation descriptor.
//
// Notes:
// - The creating handle owns the block; other handles only borrow it: borrow_block() gives
//   ownership back at once, so no attached handle ever frees it.
// - `name` is used in error messages ("channel 00ab...", "barrier").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <dragonx/pool/pool.hpp>

namespace dragonx::channels::detail {

struct object_home {
    std::string pool_descriptor;
    std::uint32_t node = 0;
    bool local = true;  // on this process's node (or this process is not in a run)
};

/// Where the object lives. Throws errc::wrong_run if it belongs to another run than this
/// process, and the descriptor errors of pool::describe().
[[nodiscard]] object_home locate_object(const std::string& block_descriptor,
                                        const std::string& name);

struct borrowed_block {
    pool::pool pool;
    std::byte* data = nullptr;
    std::uint64_t size = 0;
};

/// Attaches the pool and borrows the object's block. Throws errc::not_found if the block has
/// been freed (the object was destroyed).
[[nodiscard]] borrowed_block borrow_block(const object_home& home,
                                          const std::string& block_descriptor,
                                          const std::string& name);

}  // namespace dragonx::channels::detail
