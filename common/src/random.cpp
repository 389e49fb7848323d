// random.cpp - getrandom(2).
#include <dragonx/common/random.hpp>

#include <sys/random.h>

#include <dragonx/common/error.hpp>

namespace dragonx {

std::uint64_t random_u64()
{
    std::uint64_t value = 0;
    ssize_t got = 0;
    do {
        got = ::getrandom(&value, sizeof value, 0);
    } while (got < 0 && errno == EINTR);
    throw_system_error_on(got != static_cast<ssize_t>(sizeof value), "getrandom");
    return value;
}

}  // namespace dragonx
