// wire.hpp - bounds-checked little-endian byte writer and reader for descriptors and messages.
//
// Notes:
// - byte_reader never reads past its span: any short read throws dragonx::error with the errc
//   and the context given at construction ("pool descriptor: truncated ...").
// - Integers are written little-endian whatever the host; strings as u16 length + bytes.
#pragma once

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

class byte_writer {
public:
    template <class Int>
        requires std::is_integral_v<Int>
    void put(Int value)
    {
        using U = std::make_unsigned_t<Int>;
        auto v = static_cast<U>(value);
        for (std::size_t i = 0; i < sizeof(Int); ++i) {
            bytes_.push_back(static_cast<std::byte>(v & 0xffu));
            if constexpr (sizeof(Int) > 1) {
                v = static_cast<U>(v >> 8);
            }
        }
    }

    void put_string(std::string_view s)
    {
        if (s.size() > 0xffff) {
            throw_error(errc::invalid_argument, "string too long for the wire format");
        }
        put(static_cast<std::uint16_t>(s.size()));
        put_bytes(std::as_bytes(std::span(s.data(), s.size())));
    }

    void put_bytes(std::span<const std::byte> b)
    {
        // resize + memcpy rather than insert: GCC 12 reports a false -Wstringop-overflow there.
        const std::size_t old = bytes_.size();
        bytes_.resize(old + b.size());
        if (!b.empty()) {
            std::memcpy(bytes_.data() + old, b.data(), b.size());
        }
    }

    [[nodiscard]] const std::vector<std::byte>& bytes() const noexcept { return bytes_; }
    [[nodiscard]] std::vector<std::byte> take() noexcept { return std::move(bytes_); }

private:
    std::vector<std::byte> bytes_;
};

class byte_reader {
public:
    byte_reader(std::span<const std::byte> bytes, errc on_error, std::string_view context)
        : bytes_(bytes), on_error_(on_error), context_(context)
    {
    }

    template <class Int>
        requires std::is_integral_v<Int>
    Int get()
    {
        need(sizeof(Int), "integer");
        using U = std::make_unsigned_t<Int>;
        U v = 0;
        for (std::size_t i = 0; i < sizeof(Int); ++i) {
            v = static_cast<U>(v | (static_cast<U>(std::to_integer<unsigned>(bytes_[pos_ + i]))
                                    << (8 * i)));
        }
        pos_ += sizeof(Int);
        return static_cast<Int>(v);
    }

    std::string get_string()
    {
        const auto n = get<std::uint16_t>();
        need(n, "string");
        std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
        pos_ += n;
        return s;
    }

    std::span<const std::byte> get_bytes(std::size_t n)
    {
        need(n, "bytes");
        auto s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

    [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

    /// Throws unless every byte was consumed (trailing garbage is malformed input too).
    void expect_end() const
    {
        if (remaining() != 0) {
            fail(std::to_string(remaining()) + " unexpected trailing bytes");
        }
    }

    [[noreturn]] void fail(const std::string& why) const
    {
        throw_error(on_error_, std::string(context_) + ": " + why);
    }

private:
    void need(std::size_t n, const char* what) const
    {
        if (remaining() < n) {
            fail(std::string("truncated (") + what + " needs " + std::to_string(n) + " bytes, " +
                 std::to_string(remaining()) + " left)");
        }
    }

    std::span<const std::byte> bytes_;
    std::size_t pos_ = 0;
    errc on_error_;
    std::string_view context_;
};

}  // namespace dragonx
