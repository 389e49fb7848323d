// codec.hpp - dragonx::codec<T>: how a value becomes bytes and back, for queues and DDicts.
//
// A codec writes a value as one or more chunks of bytes and reads it back chunk by chunk;
// the chunk boundaries survive the round trip, so a value can be made of several parts (a
// header and a payload, the fields of a struct) without inventing a format for each.
//
//   template <> struct dragonx::codec<point> {            // a user type
//       static void encode(const point& p, dragonx::encoder& out) {
//           out.value(p.x); out.value(p.y); out.chunk(dragonx::as_bytes(p.label));
//       }
//       static point decode(dragonx::decoder& in) {
//           return {in.value<double>(), in.value<double>(), in.string()};
//       }
//   };
//
// Provided: arithmetic types and enums, std::string, std::vector and std::array of trivially
// copyable types, dragonx::bytes (std::vector<std::byte>), and std::span<const std::byte> for
// encoding only.
//
// Notes:
// - Encoded form: the chunks back to back, each as a LEB128 length and its bytes. Numbers are
//   in host byte order: every node of a run has the same architecture.
// - encoder::chunk() refers to the caller's bytes without copying them; they must stay valid
//   and unchanged until the encoder has been written out (a value being encoded always is).
//   chunk_copy() and value() copy, for bytes made up on the spot.
// - decoder never reads past its input: truncated, malformed or leftover input throws
//   dragonx::error(errc::malformed_message), naming what was being decoded.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <dragonx/common/error.hpp>

namespace dragonx {

/// Raw bytes owned by the caller.
using bytes = std::vector<std::byte>;

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept
{
    return std::as_bytes(std::span(s.data(), s.size()));
}

/// Collects the chunks of one or more values, then writes them out as one message.
class encoder {
public:
    /// Appends a chunk that refers to `data` (no copy; see the notes above).
    void chunk(std::span<const std::byte> data)
    {
        pieces_.push_back({data.data(), 0, data.size()});
        size_ += varint_size(data.size()) + data.size();
    }
    /// Appends a chunk holding a copy of `data`.
    void chunk_copy(std::span<const std::byte> data)
    {
        const std::size_t at = arena_.size();
        arena_.resize(at + data.size());
        if (!data.empty()) {
            std::memcpy(arena_.data() + at, data.data(), data.size());
        }
        pieces_.push_back({nullptr, at, data.size()});
        size_ += varint_size(data.size()) + data.size();
    }
    /// Appends a copy of a trivially copyable value as one chunk of its bytes.
    template <class T>
        requires std::is_trivially_copyable_v<T>
    void value(const T& v)
    {
        chunk_copy(std::as_bytes(std::span(&v, 1)));
    }

    /// Bytes the encoded message takes.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t chunk_count() const noexcept { return pieces_.size(); }
    /// Writes the message into `out`, which must hold exactly size() bytes.
    void write_to(std::span<std::byte> out) const;
    [[nodiscard]] bytes to_bytes() const;
    /// Forgets every chunk, keeping capacity for reuse.
    void clear() noexcept;

    [[nodiscard]] static std::size_t varint_size(std::uint64_t v) noexcept
    {
        std::size_t n = 1;
        while (v >= 0x80) {
            v >>= 7;
            ++n;
        }
        return n;
    }

private:
    // A chunk: the caller's bytes at `external`, or (external == nullptr) arena_ bytes at
    // `offset` (an offset, since the arena may move as it grows).
    struct piece {
        const std::byte* external;
        std::size_t offset;
        std::size_t size;
    };
    std::vector<piece> pieces_;
    bytes arena_;
    std::size_t size_ = 0;
};

/// Reads the chunks of a message in order. The spans it returns point into the input.
class decoder {
public:
    /// `what` names the value in error messages ("queue<int> message").
    explicit decoder(std::span<const std::byte> message, std::string_view what = "message")
        : rest_(message), what_(what)
    {
    }

    /// The next chunk. Throws errc::malformed_message if there is none or it is truncated.
    [[nodiscard]] std::span<const std::byte> chunk();
    /// The next chunk, which must be exactly sizeof(T) bytes, as a T.
    template <class T>
        requires std::is_trivially_copyable_v<T>
    [[nodiscard]] T value()
    {
        const auto c = chunk();
        if (c.size() != sizeof(T)) {
            fail("a chunk of " + std::to_string(c.size()) + " bytes where a value of " +
                 std::to_string(sizeof(T)) + " was expected");
        }
        T v;
        std::memcpy(&v, c.data(), sizeof(T));
        return v;
    }
    [[nodiscard]] std::string string()
    {
        const auto c = chunk();
        return {reinterpret_cast<const char*>(c.data()), c.size()};
    }

    [[nodiscard]] bool at_end() const noexcept { return rest_.empty(); }
    /// Throws errc::malformed_message unless every chunk has been read.
    void expect_end() const;
    [[noreturn]] void fail(const std::string& why) const;

private:
    std::span<const std::byte> rest_;
    std::string_view what_;
};

/// The codec of T: specialise it for your own types (see the example above).
template <class T>
struct codec;

template <class T>
concept encodable = requires(const T& v, encoder& out) { codec<T>::encode(v, out); };

template <class T>
concept decodable = requires(decoder& in) {
    { codec<T>::decode(in) } -> std::convertible_to<T>;
};

template <class T>
    requires(std::is_arithmetic_v<T> || std::is_enum_v<T>)
struct codec<T> {
    static void encode(const T& v, encoder& out) { out.value(v); }
    static T decode(decoder& in) { return in.value<T>(); }
};

template <>
struct codec<std::string> {
    static void encode(const std::string& v, encoder& out) { out.chunk(as_bytes(v)); }
    static std::string decode(decoder& in) { return in.string(); }
};

template <class T>
    requires(std::is_trivially_copyable_v<T> && !std::is_same_v<T, bool>)
struct codec<std::vector<T>> {
    static void encode(const std::vector<T>& v, encoder& out)
    {
        out.chunk(std::as_bytes(std::span(v.data(), v.size())));
    }
    static std::vector<T> decode(decoder& in)
    {
        const auto c = in.chunk();
        if (c.size() % sizeof(T) != 0) {
            in.fail("a chunk of " + std::to_string(c.size()) +
                    " bytes is not a whole number of elements of " + std::to_string(sizeof(T)));
        }
        std::vector<T> v(c.size() / sizeof(T));
        if (!c.empty()) {
            std::memcpy(v.data(), c.data(), c.size());
        }
        return v;
    }
};

template <class T, std::size_t N>
    requires std::is_trivially_copyable_v<T>
struct codec<std::array<T, N>> {
    static void encode(const std::array<T, N>& v, encoder& out)
    {
        out.chunk(std::as_bytes(std::span(v)));
    }
    static std::array<T, N> decode(decoder& in) { return in.value<std::array<T, N>>(); }
};

template <>
struct codec<std::span<const std::byte>> {
    static void encode(std::span<const std::byte> v, encoder& out) { out.chunk(v); }
};

/// Encodes `v` as a message of its own.
template <encodable T>
[[nodiscard]] bytes encode(const T& v)
{
    encoder out;
    codec<T>::encode(v, out);
    return out.to_bytes();
}

/// Decodes a whole message as one T; throws errc::malformed_message.
template <decodable T>
[[nodiscard]] T decode(std::span<const std::byte> message, std::string_view what = "message")
{
    decoder in(message, what);
    T v = codec<T>::decode(in);
    in.expect_end();
    return v;
}

}  // namespace dragonx
