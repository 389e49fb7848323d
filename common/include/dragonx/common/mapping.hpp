// mapping.hpp - move-only owner of an mmap()ed region.
//
// Notes:
// - Unmaps in the destructor. map_shared() throws dragonx::error (errno) on failure.
// - The region's contents are not owned: other processes may map the same object.
#pragma once

#include <cstddef>
#include <utility>

namespace dragonx {

class mapping {
public:
    mapping() noexcept = default;
    mapping(mapping&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0))
    {
    }
    mapping& operator=(mapping&& other) noexcept
    {
        if (this != &other) {
            reset();
            data_ = std::exchange(other.data_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    mapping(const mapping&) = delete;
    mapping& operator=(const mapping&) = delete;
    ~mapping() { reset(); }

    /// Maps `size` bytes of `fd` from offset 0, shared, read-write. `what` names the object
    /// for the error message.
    static mapping map_shared(int fd, std::size_t size, const char* what);

    [[nodiscard]] std::byte* data() const noexcept { return data_; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] explicit operator bool() const noexcept { return data_ != nullptr; }

    /// Unmaps now (no-op when empty).
    void reset() noexcept;

private:
    mapping(std::byte* data, std::size_t size) noexcept : data_(data), size_(size) {}

    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace dragonx
