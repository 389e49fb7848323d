// descriptor.hpp - the printable envelope shared by every dragonx descriptor string.
//
// A descriptor is base64url( "dx" | kind | version | payload | xxh32(all before) ).
// The kind byte tells a pool from an allocation from a channel descriptor, so handing the
// wrong string to attach() gives a clear message instead of a confusing failure later.
//
// Notes:
// - open_descriptor() throws dragonx::error: errc::malformed_descriptor (not base64url, too
//   short, not ours, wrong kind, bad checksum) or errc::version_mismatch.
// - Payload layouts belong to the component (pool, channels, ...); this file only frames them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dragonx {

enum class descriptor_kind : std::uint8_t {
    pool = 'P',
    allocation = 'A',
    channel = 'C',
    sync = 'S',  // barrier, event, semaphore
};

/// Human name of a kind ("pool descriptor"), for error messages.
std::string_view descriptor_kind_name(descriptor_kind kind) noexcept;

/// Frames `payload` as a descriptor string of `kind` and `version`.
[[nodiscard]] std::string seal_descriptor(descriptor_kind kind, std::uint8_t version,
                                          std::span<const std::byte> payload);

/// Checks the frame of `text` and returns its payload. Throws as described above.
[[nodiscard]] std::vector<std::byte> open_descriptor(std::string_view text, descriptor_kind kind,
                                                     std::uint8_t version);

}  // namespace dragonx
