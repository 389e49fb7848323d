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
// copyable types (one chunk), dragonx::bytes (std::vector<std::byte>), std::span<const
// std::byte> for encoding only; and, part by part: std::optional, std::pair, std::vector of
// other types, std::map, std::variant, and structs that list their fields (`described`).
//
// Notes:
// - Encoded form: the chunks back to back, each as a LEB128 length and its bytes. Numbers are
//   in host byte order: every node of a run has the same architecture.
// - encoder::chunk() and value() copy the bytes they are given. chunk_view() refers to them
//   instead: they must stay valid and unchanged until the encoder has been written out, so
//   use it only for bytes inside the value being encoded, never for a temporary. The codecs
//   of strings, vectors and arrays use it, so large values are copied once, into the message.
// - decoder never reads past its input: truncated, malformed or leftover input throws
//   dragonx::error(errc::malformed_message), naming what was being decoded.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
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
    /// Appends a chunk that refers to `data` without copying it (see the notes above).
    void chunk_view(std::span<const std::byte> data)
    {
        pieces_.push_back({data.data(), 0, data.size()});
        size_ += varint_size(data.size()) + data.size();
    }
    /// Appends a chunk holding a copy of `data`.
    void chunk(std::span<const std::byte> data)
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
        chunk(std::as_bytes(std::span(&v, 1)));
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
    [[nodiscard]] std::size_t remaining_bytes() const noexcept { return rest_.size(); }
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
    static void encode(const std::string& v, encoder& out) { out.chunk_view(as_bytes(v)); }
    static std::string decode(decoder& in) { return in.string(); }
};

template <class T>
    requires(std::is_trivially_copyable_v<T> && !std::is_same_v<T, bool>)
struct codec<std::vector<T>> {
    static void encode(const std::vector<T>& v, encoder& out)
    {
        out.chunk_view(std::as_bytes(std::span(v.data(), v.size())));
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
        out.chunk_view(std::as_bytes(std::span(v)));
    }
    static std::array<T, N> decode(decoder& in) { return in.value<std::array<T, N>>(); }
};

template <>
struct codec<std::span<const std::byte>> {
    static void encode(std::span<const std::byte> v, encoder& out) { out.chunk_view(v); }
};

// ---- composites: each part through its own codec ----------------------------------------

template <class T>
    requires encodable<T> && decodable<T>
struct codec<std::optional<T>> {
    static void encode(const std::optional<T>& v, encoder& out)
    {
        out.value(static_cast<std::uint8_t>(v.has_value()));
        if (v) {
            codec<T>::encode(*v, out);
        }
    }
    static std::optional<T> decode(decoder& in)
    {
        const auto present = in.value<std::uint8_t>();
        if (present > 1) {
            in.fail("an optional's presence flag is " + std::to_string(present));
        }
        if (present == 0) {
            return std::nullopt;
        }
        return codec<T>::decode(in);
    }
};

template <class A, class B>
    requires encodable<A> && decodable<A> && encodable<B> && decodable<B>
struct codec<std::pair<A, B>> {
    static void encode(const std::pair<A, B>& v, encoder& out)
    {
        codec<A>::encode(v.first, out);
        codec<B>::encode(v.second, out);
    }
    static std::pair<A, B> decode(decoder& in)
    {
        A a = codec<A>::decode(in);
        return {std::move(a), codec<B>::decode(in)};
    }
};

namespace detail {

// A sequence of values: a count, then each element through its codec. Map entries go as
// key then value (encoding them as a std::pair would copy them into temporaries).
template <class Container, class Element>
struct sequence_codec {
    static void encode(const Container& v, encoder& out)
    {
        out.value(static_cast<std::uint64_t>(v.size()));
        for (const auto& e : v) {
            if constexpr (requires { e.first; e.second; }) {
                codec<std::remove_cvref_t<decltype(e.first)>>::encode(e.first, out);
                codec<std::remove_cvref_t<decltype(e.second)>>::encode(e.second, out);
            } else {
                codec<Element>::encode(e, out);
            }
        }
    }
    static Container decode(decoder& in)
    {
        const auto n = in.value<std::uint64_t>();
        if (n > in.remaining_bytes()) {  // every element takes at least one byte
            in.fail("a count of " + std::to_string(n) + " elements in " +
                    std::to_string(in.remaining_bytes()) + " bytes");
        }
        Container v;
        for (std::uint64_t i = 0; i < n; ++i) {
            if constexpr (requires { v.push_back(codec<Element>::decode(in)); }) {
                v.push_back(codec<Element>::decode(in));
            } else {
                v.insert(codec<Element>::decode(in));
            }
        }
        return v;
    }
};

}  // namespace detail

template <class T>
    requires(!std::is_trivially_copyable_v<T> && encodable<T> && decodable<T>)
struct codec<std::vector<T>> : detail::sequence_codec<std::vector<T>, T> {};

template <class K, class V>
    requires encodable<K> && decodable<K> && encodable<V> && decodable<V>
struct codec<std::map<K, V>> : detail::sequence_codec<std::map<K, V>, std::pair<K, V>> {};

template <class... T>
    requires((encodable<T> && decodable<T>) && ...)
struct codec<std::variant<T...>> {
    static void encode(const std::variant<T...>& v, encoder& out)
    {
        out.value(static_cast<std::uint32_t>(v.index()));
        std::visit([&](const auto& alt) { codec<std::remove_cvref_t<decltype(alt)>>::encode(alt, out); },
                   v);
    }
    static std::variant<T...> decode(decoder& in)
    {
        const auto index = in.value<std::uint32_t>();
        if (index >= sizeof...(T)) {
            in.fail("alternative " + std::to_string(index) + " of a variant of " +
                    std::to_string(sizeof...(T)));
        }
        return decode_alternative(in, index, std::index_sequence_for<T...>{});
    }

private:
    template <std::size_t... I>
    static std::variant<T...> decode_alternative(decoder& in, std::uint32_t index,
                                                 std::index_sequence<I...>)
    {
        std::optional<std::variant<T...>> out;
        ((I == index ? (void)out.emplace(std::in_place_index<I>, codec<T>::decode(in)) : (void)0),
         ...);
        return std::move(*out);
    }
};

/// A struct whose fields are listed once, for its codec:
///   struct job { std::string name; int rank;
///                static auto fields(auto& self) { return std::tie(self.name, self.rank); } };
/// encodes as its fields in that order. Appending a field changes the encoding: version
/// messages that cross versions.
template <class T>
concept described = std::is_default_constructible_v<T> && requires(T& t, const T& ct) {
    T::fields(t);
    T::fields(ct);
};

template <described T>
struct codec<T> {
    static void encode(const T& v, encoder& out)
    {
        std::apply([&](const auto&... f) { (codec<std::remove_cvref_t<decltype(f)>>::encode(f, out), ...); },
                   T::fields(v));
    }
    static T decode(decoder& in)
    {
        T v{};
        // Braced pack expansion: the fields are decoded in order.
        std::apply([&](auto&... f) { ((f = codec<std::remove_cvref_t<decltype(f)>>::decode(in)), ...); },
                   T::fields(v));
        return v;
    }
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
