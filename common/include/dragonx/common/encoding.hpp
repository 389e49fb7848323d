// encoding.hpp - printable encodings for descriptors: base64url (RFC 4648 §5, no padding) and hex.
//
// Notes:
// - Decoders never throw: they return std::nullopt on any character outside the alphabet, a
//   bad length, or non-canonical trailing bits, so callers can report "malformed descriptor".
// - base64url needs no quoting in argv, environment variables, file names or URLs.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dragonx {

[[nodiscard]] std::string base64url_encode(std::span<const std::byte> bytes);
[[nodiscard]] std::optional<std::vector<std::byte>> base64url_decode(std::string_view text);

[[nodiscard]] std::string hex_encode(std::span<const std::byte> bytes);
[[nodiscard]] std::optional<std::vector<std::byte>> hex_decode(std::string_view text);

}  // namespace dragonx
