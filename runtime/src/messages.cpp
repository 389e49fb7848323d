// messages.cpp - framing of control messages, and their names.
#include <dragonx/runtime/messages.hpp>

#include <cstring>

namespace dragonx::rt {

void status::throw_if_error() const
{
    if (code != errc::ok) {
        throw_error(code, message);
    }
}

bytes encode_frame(const envelope& e)
{
    encoder out;
    codec<envelope>::encode(e, out);
    if (out.size() > max_frame_bytes) {
        throw_error(errc::message_too_large,
                    std::string(message_name(e.body)) + " message of " +
                        std::to_string(out.size()) + " bytes exceeds the frame limit of " +
                        std::to_string(max_frame_bytes));
    }
    bytes frame(4 + out.size());
    const auto n = static_cast<std::uint32_t>(out.size());
    for (int i = 0; i < 4; ++i) {
        frame[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
    }
    out.write_to(std::span(frame).subspan(4));
    return frame;
}

envelope decode_envelope(std::span<const std::byte> encoded)
{
    decoder in(encoded, "control message");
    // The version comes first, so a peer of another version is told so, not "malformed".
    const auto version = in.value<std::uint16_t>();
    if (version != protocol_version) {
        throw_error(errc::version_mismatch,
                    "control message of protocol version " + std::to_string(version) +
                        ", this dragonx speaks version " + std::to_string(protocol_version));
    }
    decoder whole(encoded, "control message");
    envelope e = codec<envelope>::decode(whole);
    whole.expect_end();
    return e;
}

void frame_reader::feed(std::span<const std::byte> data)
{
    if (start_ > 0 && start_ == buffer_.size()) {
        buffer_.clear();
        start_ = 0;
    } else if (start_ > (1u << 16) && start_ * 2 > buffer_.size()) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
        start_ = 0;
    }
    buffer_.insert(buffer_.end(), data.begin(), data.end());
}

std::optional<envelope> frame_reader::next()
{
    const std::size_t available = buffer_.size() - start_;
    if (available < 4) {
        return std::nullopt;
    }
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i) {
        n |= std::to_integer<std::uint32_t>(buffer_[start_ + static_cast<std::size_t>(i)])
             << (8 * i);
    }
    if (n > max_frame_bytes) {
        throw_error(errc::malformed_message, "control frame of " + std::to_string(n) +
                                                 " bytes exceeds the limit of " +
                                                 std::to_string(max_frame_bytes));
    }
    if (available - 4 < n) {
        return std::nullopt;
    }
    const auto encoded = std::span<const std::byte>(buffer_).subspan(start_ + 4, n);
    start_ += 4 + n;
    return decode_envelope(encoded);
}

std::string_view message_name(const message& m) noexcept
{
    return std::visit([](const auto& body) { return std::decay_t<decltype(body)>::name; }, m);
}

}  // namespace dragonx::rt
