// error.hpp - dragonx::errc, its std::error_category, and the dragonx::error exception.
//
// Notes:
// - errc values cross process boundaries inside responses (status{code, info}), so every
//   enumerator has a fixed number: append new ones, never renumber.
// - Expected outcomes on hot paths are values (optional, bool); everything else throws
//   dragonx::error. OS failures go through throw_system_error_on(), which keeps errno.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace dragonx {

enum class errc : int {
    ok = 0,
    invalid_argument = 1,      // a caller passed a value outside the documented range
    timeout = 2,               // a blocking call ran out of time
    already_exists = 3,        // a named object (pool, channel, ...) exists already
    not_found = 4,             // a named object does not exist (destroyed, or never created)
    no_space = 5,              // the system is out of room (/dev/shm full, ...)
    pool_full = 6,             // a pool has no free block of the requested size
    malformed_descriptor = 7,  // a descriptor string is truncated, corrupt or not ours
    version_mismatch = 8,      // a descriptor or object was written by another format version
    wrong_run = 9,             // a descriptor belongs to another dragonx run
    not_local = 10,            // the object lives on another node and cannot be mapped here
    invalid_allocation = 11,   // a descriptor names no live allocation (double free, stale)
    corrupt_object = 12,       // a shared object's header fails its checks
    no_transport = 13,         // the operation needs a cross-node transport that is missing
    key_not_found = 14,
    ddict_full = 15,
    checkpoint_retired = 16,
    internal = 17,             // a broken invariant inside dragonx (a bug: please report)
    message_too_large = 18,    // a message does not fit the buffer or slot offered for it
    malformed_message = 19,    // encoded bytes do not decode as the expected value
    broken_barrier = 20,       // a barrier was aborted, reset or timed out under its waiters
    no_runtime = 21,           // not running under `dragonx run`, or the runtime is gone
    peer_lost = 22,            // a daemon, launcher or connection died or stopped answering
    process_failed = 23,       // a managed process could not start, or exited with an error
    invalid_operation = 24,    // not allowed in the object's state (writing a frozen ddict)
    checkpoint_unavailable = 25,  // no persisted copy of the requested ddict checkpoint
    corrupt_file = 26,         // a file fails its checks (torn, truncated, wrong checksum)
    task_failed = 27,          // a task of a task_pool threw; the message is the exception's
    worker_lost = 28,          // a task_pool worker died while it held the task
};

const std::error_category& dragonx_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept
{
    return {static_cast<int>(e), dragonx_category()};
}

/// The exception every dragonx API throws. code() is either a dragonx::errc (category
/// dragonx_category()) or, for OS failures, an errno value in std::system_category().
class error : public std::system_error {
public:
    error(errc code, const std::string& what) : std::system_error(make_error_code(code), what) {}
    error(std::error_code code, const std::string& what) : std::system_error(code, what) {}

    /// True if this error carries the given dragonx::errc.
    [[nodiscard]] bool is(errc e) const noexcept { return code() == make_error_code(e); }
};

/// Throws dragonx::error(e, what). Kept out of line so hot callers stay small.
[[noreturn]] void throw_error(errc e, const std::string& what);

/// Throws dragonx::error with the current errno (system_category) when `failed` is true.
/// `what` names the call and, ideally, the object: "shm_open /dragonx-r1-2".
inline void throw_system_error_on(bool failed, const char* what)
{
    if (failed) [[unlikely]] {
        throw error(std::error_code(errno, std::system_category()), what);
    }
}
void throw_system_error_on(bool failed, const std::string& what);

}  // namespace dragonx

template <>
struct std::is_error_code_enum<dragonx::errc> : std::true_type {};
