// descriptor.cpp - descriptor framing: magic, kind, version, checksum, base64url.
#include <dragonx/common/descriptor.hpp>

#include <xxhash.h>

#include <dragonx/common/encoding.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/wire.hpp>

namespace dragonx {
namespace {

constexpr std::size_t header_size = 4;    // 'd' 'x' kind version
constexpr std::size_t checksum_size = 4;  // xxh32, little-endian
constexpr std::uint32_t checksum_seed = 0x64726778;  // "drgx"

std::uint32_t checksum(std::span<const std::byte> bytes)
{
    return XXH32(bytes.data(), bytes.size(), checksum_seed);
}

}  // namespace

std::string_view descriptor_kind_name(descriptor_kind kind) noexcept
{
    switch (kind) {
    case descriptor_kind::pool: return "pool descriptor";
    case descriptor_kind::allocation: return "allocation descriptor";
    case descriptor_kind::channel: return "channel descriptor";
    case descriptor_kind::sync: return "barrier, event or semaphore descriptor";
    }
    return "unknown descriptor";
}

std::string seal_descriptor(descriptor_kind kind, std::uint8_t version,
                            std::span<const std::byte> payload)
{
    byte_writer w;
    w.put<std::uint8_t>('d');
    w.put<std::uint8_t>('x');
    w.put(static_cast<std::uint8_t>(kind));
    w.put(version);
    w.put_bytes(payload);
    w.put(checksum(w.bytes()));
    return base64url_encode(w.bytes());
}

std::vector<std::byte> open_descriptor(std::string_view text, descriptor_kind kind,
                                       std::uint8_t version)
{
    const std::string name(descriptor_kind_name(kind));
    auto bytes = base64url_decode(text);
    if (!bytes) {
        throw_error(errc::malformed_descriptor, name + ": not a base64url string");
    }
    if (bytes->size() < header_size + checksum_size) {
        throw_error(errc::malformed_descriptor, name + ": truncated (" +
                                                    std::to_string(bytes->size()) + " bytes)");
    }
    const auto& b = *bytes;
    if (b[0] != std::byte{'d'} || b[1] != std::byte{'x'}) {
        throw_error(errc::malformed_descriptor, name + ": not a dragonx descriptor");
    }
    const std::span<const std::byte> all(b);
    byte_reader tail(all.last(checksum_size), errc::malformed_descriptor, name);
    if (tail.get<std::uint32_t>() != checksum(all.first(b.size() - checksum_size))) {
        throw_error(errc::malformed_descriptor, name + ": checksum mismatch (corrupt or truncated)");
    }
    const auto got_kind = static_cast<descriptor_kind>(b[2]);
    if (got_kind != kind) {
        throw_error(errc::malformed_descriptor,
                    "expected a " + name + ", got a " + std::string(descriptor_kind_name(got_kind)));
    }
    const auto got_version = std::to_integer<std::uint8_t>(b[3]);
    if (got_version != version) {
        throw_error(errc::version_mismatch, name + ": format version " +
                                                std::to_string(got_version) + ", this build reads " +
                                                std::to_string(version));
    }
    return {b.begin() + header_size, b.end() - checksum_size};
}

}  // namespace dragonx
