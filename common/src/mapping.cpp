// mapping.cpp - mmap/munmap behind dragonx::mapping.
#include <dragonx/common/mapping.hpp>

#include <sys/mman.h>

#include <string>

#include <dragonx/common/error.hpp>

namespace dragonx {

mapping mapping::map_shared(int fd, std::size_t size, const char* what)
{
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    throw_system_error_on(p == MAP_FAILED, std::string("mmap ") + what);
    return mapping(static_cast<std::byte*>(p), size);
}

void mapping::reset() noexcept
{
    if (data_ != nullptr) {
        ::munmap(data_, size_);
        data_ = nullptr;
        size_ = 0;
    }
}

}  // namespace dragonx
