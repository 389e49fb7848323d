// frame_buffer.hpp - bytes read from a stream socket, cut into whole frames.
//
//   frame_buffer in;
//   socket.async_read_some(in.space(), [&](auto ec, std::size_t n) {
//       in.feed(n, length_of, [](std::span<const std::byte> frame) { ... });
//   });
//
// `length_of(bytes)` looks at the front of the bytes buffered so far and returns the whole
// frame's length, or nullopt while too few bytes have come to tell; it throws (a malformed or
// oversized frame) to refuse the stream. Frames are delivered in order, each valid only during
// its call. The buffer grows to the largest frame seen and never shrinks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include <asio/buffer.hpp>

namespace dragonx::rt::detail {

class frame_buffer {
public:
    explicit frame_buffer(std::size_t initial = 64 * 1024) : bytes_(initial) {}

    /// Where the next read goes: at least a quarter of the initial size.
    asio::mutable_buffer space()
    {
        if (bytes_.size() - used_ < min_space_) {
            bytes_.resize(std::max(bytes_.size() * 2, used_ + 4 * min_space_));
        }
        return asio::buffer(bytes_.data() + used_, bytes_.size() - used_);
    }

    /// Takes `n` more bytes written into space(); delivers every whole frame.
    template <class LengthOf, class Deliver>
    void feed(std::size_t n, LengthOf&& length_of, Deliver&& deliver)
    {
        used_ += n;
        std::size_t pos = 0;
        while (pos < used_) {
            const auto at = std::span<const std::byte>(bytes_).subspan(pos, used_ - pos);
            const std::optional<std::size_t> whole = length_of(at);
            if (!whole || *whole > at.size()) {
                if (whole && *whole > bytes_.size()) {
                    bytes_.resize(*whole);  // room for the whole frame once compacted
                }
                break;
            }
            deliver(at.first(*whole));
            pos += *whole;
        }
        if (pos != 0) {
            std::memmove(bytes_.data(), bytes_.data() + pos, used_ - pos);
            used_ -= pos;
        }
    }

private:
    std::vector<std::byte> bytes_;
    std::size_t used_ = 0;
    std::size_t min_space_ = bytes_.size() / 4;
};

}  // namespace dragonx::rt::detail
