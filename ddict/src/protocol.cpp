// protocol.cpp - see protocol.hpp.
#include "protocol.hpp"

#include <filesystem>

#include <fmt/format.h>
#include <xxhash.h>

#include <dragonx/common/encoding.hpp>

namespace dragonx::dict {

namespace {

constexpr std::string_view descriptor_prefix = "dxdict1:";

}  // namespace

parsed_request parse_request(byte_view message)
{
    if (message.size() < sizeof(request_header)) {
        throw_error(errc::malformed_message,
                    "ddict request of " + std::to_string(message.size()) +
                        " bytes is shorter than its header");
    }
    parsed_request r;
    std::memcpy(&r.header, message.data(), sizeof(request_header));
    const auto rest = message.subspan(sizeof(request_header));
    if (r.header.key_size > rest.size()) {
        throw_error(errc::malformed_message,
                    "ddict request's key of " + std::to_string(r.header.key_size) +
                        " bytes overruns its " + std::to_string(rest.size()) + " bytes");
    }
    r.key = rest.first(r.header.key_size);
    r.body = rest.subspan(r.header.key_size);
    return r;
}

parsed_response parse_response(byte_view message)
{
    if (message.size() < sizeof(response_header)) {
        throw_error(errc::malformed_message,
                    "ddict response of " + std::to_string(message.size()) +
                        " bytes is shorter than its header");
    }
    parsed_response r;
    std::memcpy(&r.header, message.data(), sizeof(response_header));
    const auto rest = message.subspan(sizeof(response_header));
    if (r.header.info_size > rest.size()) {
        throw_error(errc::malformed_message, "ddict response's text overruns the message");
    }
    r.info = {reinterpret_cast<const char*>(rest.data()), r.header.info_size};
    r.body = rest.subspan(r.header.info_size);
    return r;
}

std::span<std::byte> write_request(std::span<std::byte> out, const request_header& h,
                                   byte_view key)
{
    std::memcpy(out.data(), &h, sizeof h);
    if (!key.empty()) {
        std::memcpy(out.data() + sizeof h, key.data(), key.size());
    }
    return out.subspan(sizeof h + key.size());
}

std::string encode_descriptor(const descriptor_body& d)
{
    return std::string(descriptor_prefix) + base64url_encode(encode(d));
}

descriptor_body decode_descriptor(std::string_view text)
{
    if (!text.starts_with(descriptor_prefix)) {
        throw_error(errc::malformed_descriptor,
                    "not a ddict descriptor (it should start with \"dxdict1:\")");
    }
    const auto raw = base64url_decode(text.substr(descriptor_prefix.size()));
    if (!raw) {
        throw_error(errc::malformed_descriptor, "ddict descriptor is not valid base64url");
    }
    try {
        auto d = decode<descriptor_body>(*raw, "ddict descriptor");
        if (d.managers == 0 || d.orchestrator.empty()) {
            throw_error(errc::malformed_descriptor, "ddict descriptor names no managers");
        }
        return d;
    } catch (const error& e) {
        if (e.is(errc::malformed_descriptor)) {
            throw;
        }
        throw_error(errc::malformed_descriptor, std::string("ddict descriptor: ") + e.what());
    }
}

std::uint32_t manager_of(byte_view key, std::uint32_t managers) noexcept
{
    return static_cast<std::uint32_t>(XXH3_64bits(key.data(), key.size()) % managers);
}

std::string restart_record_path(const server_options& options)
{
    return (std::filesystem::path(options.persist_path) / (options.name + ".ddict-restart"))
        .string();
}

std::string kept_pool_name(const std::string& dict_name, std::uint32_t id)
{
    return fmt::format("/dragonx-kept-{}-m{}", dict_name, id);
}

}  // namespace dragonx::dict
