// auth.cpp - HMAC-SHA256 challenge-response (OpenSSL libcrypto) and secret encoding.
#include "auth.hpp"

#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cerrno>
#include <cstring>

#include <dragonx/common/encoding.hpp>
#include <dragonx/common/error.hpp>

namespace dragonx::rt::detail {
namespace {

constexpr std::size_t challenge_bytes = 32;
constexpr std::string_view label = "dragonx-auth-v1";

void fill_random(std::span<std::uint8_t> out)
{
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        throw_system_error_on(n < 0, "getrandom");
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace

run_secret make_secret()
{
    run_secret s{};
    fill_random(s);
    return s;
}

std::vector<std::uint8_t> make_challenge()
{
    std::vector<std::uint8_t> c(challenge_bytes);
    fill_random(c);
    return c;
}

std::string secret_to_hex(const run_secret& s)
{
    return hex_encode(std::as_bytes(std::span(s)));
}

run_secret secret_from_hex(std::string_view hex)
{
    const auto raw = hex_decode(hex);
    run_secret s{};
    if (!raw || raw->size() != s.size()) {
        throw_error(errc::invalid_argument, "the run secret must be 64 hexadecimal digits");
    }
    std::memcpy(s.data(), raw->data(), s.size());
    return s;
}

std::vector<std::uint8_t> prove(const run_secret& secret, auth_role role,
                                std::span<const std::uint8_t> challenge)
{
    std::vector<std::uint8_t> message(label.begin(), label.end());
    message.push_back(role == auth_role::acceptor ? 'A' : 'C');
    message.insert(message.end(), challenge.begin(), challenge.end());
    std::vector<std::uint8_t> mac(EVP_MAX_MD_SIZE);
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), message.data(),
             message.size(), mac.data(), &len) == nullptr) {
        throw_error(errc::internal, "HMAC-SHA256 failed");
    }
    mac.resize(len);
    return mac;
}

bool verify(const run_secret& secret, auth_role role, std::span<const std::uint8_t> challenge,
            std::span<const std::uint8_t> proof)
{
    const auto expected = prove(secret, role, challenge);
    return proof.size() == expected.size() &&
           CRYPTO_memcmp(proof.data(), expected.data(), expected.size()) == 0;
}

}  // namespace dragonx::rt::detail
