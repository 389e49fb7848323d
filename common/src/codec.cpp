// codec.cpp - the chunk framing of encoder and decoder (LEB128 length, then the bytes).
#include <dragonx/common/codec.hpp>

namespace dragonx {

void encoder::write_to(std::span<std::byte> out) const
{
    if (out.size() != size_) {
        throw_error(errc::internal, "encoder::write_to: " + std::to_string(out.size()) +
                                        " bytes offered for a message of " +
                                        std::to_string(size_));
    }
    std::byte* p = out.data();
    for (const auto& piece : pieces_) {
        const std::byte* data =
            piece.external != nullptr ? piece.external : arena_.data() + piece.offset;
        std::uint64_t n = piece.size;
        while (n >= 0x80) {
            *p++ = static_cast<std::byte>((n & 0x7f) | 0x80);
            n >>= 7;
        }
        *p++ = static_cast<std::byte>(n);
        if (piece.size != 0) {
            std::memcpy(p, data, piece.size);
            p += piece.size;
        }
    }
}

bytes encoder::to_bytes() const
{
    bytes out(size_);
    write_to(out);
    return out;
}

void encoder::clear() noexcept
{
    pieces_.clear();
    arena_.clear();
    size_ = 0;
}

std::span<const std::byte> decoder::chunk()
{
    std::uint64_t n = 0;
    std::size_t used = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (used == rest_.size()) {
            fail(rest_.empty() ? "no chunk left" : "a chunk length is truncated");
        }
        if (shift > 63) {
            fail("a chunk length is longer than 64 bits");
        }
        const auto b = std::to_integer<std::uint64_t>(rest_[used++]);
        n |= (b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            break;
        }
    }
    if (n > rest_.size() - used) {
        fail("a chunk of " + std::to_string(n) + " bytes is truncated to " +
             std::to_string(rest_.size() - used));
    }
    const auto c = rest_.subspan(used, n);
    rest_ = rest_.subspan(used + n);
    return c;
}

void decoder::expect_end() const
{
    if (!rest_.empty()) {
        fail(std::to_string(rest_.size()) + " bytes left over after the value");
    }
}

void decoder::fail(const std::string& why) const
{
    throw_error(errc::malformed_message, std::string(what_) + ": " + why);
}

}  // namespace dragonx
