// segment.hpp - a POSIX shared-memory object, opened and mapped (RAII).
//
// Notes:
// - create() uses O_CREAT|O_EXCL and mode 0600; it removes the object again if anything after
//   shm_open fails, so a failed create leaves nothing in /dev/shm.
// - Destroying the handle unmaps and closes; it never unlinks. unlink() is explicit: only the
//   pool's owner (or destroy()) calls it.
#pragma once

#include <cstdint>
#include <string>

#include <dragonx/common/mapping.hpp>
#include <dragonx/common/unique_fd.hpp>

namespace dragonx::pool::detail {

class shm_segment {
public:
    /// Creates and maps `name` with `size` bytes (zero-filled). With `reserve`, commits the
    /// space with posix_fallocate. Throws errc::already_exists, errc::no_space, system errors.
    static shm_segment create(const std::string& name, std::uint64_t size, bool reserve);

    /// Opens and maps an existing object. Throws errc::not_found or a system error.
    static shm_segment open(const std::string& name);

    [[nodiscard]] std::byte* data() const noexcept { return map_.data(); }
    [[nodiscard]] std::uint64_t size() const noexcept { return map_.size(); }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    /// Removes the name from /dev/shm; the mapping stays valid. Errors are ignored (the
    /// object may already be gone).
    void unlink() const noexcept;

private:
    shm_segment(std::string name, unique_fd fd, mapping map) noexcept;

    std::string name_;
    unique_fd fd_;
    mapping map_;
};

}  // namespace dragonx::pool::detail
