// random.hpp - unpredictable 64-bit values (ids, nonces, secrets) from the kernel.
#pragma once

#include <cstdint>

namespace dragonx {

/// A random 64-bit value from getrandom(2). Throws dragonx::error if the kernel refuses.
std::uint64_t random_u64();

}  // namespace dragonx
