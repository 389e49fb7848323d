// auth.hpp - proving knowledge of the run secret on a connection, without sending it.
//
// Every TCP connection of a run starts with a mutual challenge-response: each side sends
// random bytes and the other answers with HMAC-SHA256(secret, label | role | challenge).
// The role label differs between the two directions, so a proof cannot be reflected back.
//
// Notes:
// - The secret is 32 random bytes made by the launcher; it reaches daemons through stdin
//   or the environment (hex), never argv.
// - verify() compares in constant time.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dragonx::rt::detail {

using run_secret = std::array<std::uint8_t, 32>;

enum class auth_role { acceptor, connector };

/// 32 bytes from the kernel's CSPRNG. Throws on failure.
[[nodiscard]] run_secret make_secret();
[[nodiscard]] std::vector<std::uint8_t> make_challenge();

[[nodiscard]] std::string secret_to_hex(const run_secret& s);
/// Throws errc::invalid_argument unless `hex` is 64 hex digits.
[[nodiscard]] run_secret secret_from_hex(std::string_view hex);

/// The proof that `role` knows `secret`, for `challenge`.
[[nodiscard]] std::vector<std::uint8_t> prove(const run_secret& secret, auth_role role,
                                              std::span<const std::uint8_t> challenge);
[[nodiscard]] bool verify(const run_secret& secret, auth_role role,
                          std::span<const std::uint8_t> challenge,
                          std::span<const std::uint8_t> proof);

}  // namespace dragonx::rt::detail
