// segment.cpp - shm_open, ftruncate, fallocate, mmap.
#include "segment.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <dragonx/common/error.hpp>

namespace dragonx::pool::detail {
namespace {

std::string human_bytes(std::uint64_t n)
{
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    double v = static_cast<double>(n);
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

}  // namespace

shm_segment::shm_segment(std::string name, unique_fd fd, mapping map) noexcept
    : name_(std::move(name)), fd_(std::move(fd)), map_(std::move(map))
{
}

shm_segment shm_segment::create(const std::string& name, std::uint64_t size, bool reserve)
{
    struct statvfs fs {};
    if (::statvfs("/dev/shm", &fs) == 0) {
        const std::uint64_t avail = std::uint64_t{fs.f_bavail} * fs.f_frsize;
        if (avail < size) {
            throw_error(errc::no_space, "cannot create pool " + name + ": it needs " +
                                            human_bytes(size) + " and /dev/shm has " +
                                            human_bytes(avail) + " free");
        }
    }
    unique_fd fd(::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) {
        if (errno == EEXIST) {
            throw_error(errc::already_exists, "cannot create pool " + name + ": it already exists");
        }
        throw_system_error_on(true, "shm_open " + name);
    }
    struct remove_on_failure {
        const std::string& name;
        bool armed = true;
        ~remove_on_failure()
        {
            if (armed) {
                ::shm_unlink(name.c_str());
            }
        }
    } guard{name};

    ::fchmod(fd.get(), 0600);  // independent of the umask
    throw_system_error_on(::ftruncate(fd.get(), static_cast<off_t>(size)) != 0,
                          "ftruncate " + name);
    if (reserve) {
        const int rc = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(size));
        if (rc == ENOSPC) {
            throw_error(errc::no_space, "cannot create pool " + name + ": /dev/shm has no room for " +
                                            human_bytes(size));
        }
        if (rc != 0) {
            throw error(std::error_code(rc, std::system_category()), "posix_fallocate " + name);
        }
    }
    auto map = mapping::map_shared(fd.get(), size, name.c_str());
    guard.armed = false;
    return shm_segment(name, std::move(fd), std::move(map));
}

shm_segment shm_segment::open(const std::string& name)
{
    unique_fd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
    if (!fd) {
        if (errno == ENOENT) {
            throw_error(errc::not_found,
                        "pool " + name + " does not exist (destroyed, or never created on this node)");
        }
        throw_system_error_on(true, "shm_open " + name);
    }
    struct stat st {};
    throw_system_error_on(::fstat(fd.get(), &st) != 0, "fstat " + name);
    if (st.st_size <= 0) {
        throw_error(errc::corrupt_object, "pool " + name + " is empty");
    }
    auto map = mapping::map_shared(fd.get(), static_cast<std::uint64_t>(st.st_size), name.c_str());
    return shm_segment(name, std::move(fd), std::move(map));
}

void shm_segment::unlink() const noexcept
{
    ::shm_unlink(name_.c_str());
}

}  // namespace dragonx::pool::detail
