// protocol.cpp - see protocol.hpp.
#include "protocol.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>
#include <xxhash.h>

#include <dragonx/common/encoding.hpp>
#include <dragonx/common/unique_fd.hpp>

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

errc status_of(const error& e, errc fallback) noexcept
{
    return &e.code().category() == &dragonx_category() ? static_cast<errc>(e.code().value())
                                                       : fallback;
}

void write_checked_file(const std::string& path, byte_view bytes)
{
    const auto tmp = path + ".tmp";
    {
        unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        throw_system_error_on(!fd, ("open " + tmp).c_str());
        const std::uint64_t sum = XXH3_64bits(bytes.data(), bytes.size());
        const auto put = [&](const std::byte* p, std::size_t n) {
            while (n > 0) {
                const auto w = ::write(fd.get(), p, n);
                if (w < 0 && errno == EINTR) {
                    continue;
                }
                throw_system_error_on(w < 0, ("write " + tmp).c_str());
                p += w;
                n -= static_cast<std::size_t>(w);
            }
        };
        put(bytes.data(), bytes.size());
        put(reinterpret_cast<const std::byte*>(&sum), sizeof sum);
        throw_system_error_on(::fsync(fd.get()) != 0, ("fsync " + tmp).c_str());
    }
    throw_system_error_on(::rename(tmp.c_str(), path.c_str()) != 0,
                          ("rename " + tmp + " " + path).c_str());
}

std::vector<std::byte> read_checked_file(const std::string& path)
{
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd && errno == ENOENT) {
        throw_error(errc::not_found, "no file " + path + ": No such file or directory");
    }
    throw_system_error_on(!fd, ("open " + path).c_str());
    std::vector<std::byte> out;
    std::byte buf[1 << 16];
    for (;;) {
        const auto r = ::read(fd.get(), buf, sizeof buf);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        throw_system_error_on(r < 0, ("read " + path).c_str());
        if (r == 0) {
            break;
        }
        out.insert(out.end(), buf, buf + r);
    }
    std::uint64_t sum = 0;
    if (out.size() < sizeof sum) {
        throw_error(errc::corrupt_file, path + " is truncated");
    }
    std::memcpy(&sum, out.data() + out.size() - sizeof sum, sizeof sum);
    out.resize(out.size() - sizeof sum);
    if (XXH3_64bits(out.data(), out.size()) != sum) {
        throw_error(errc::corrupt_file, path + " fails its checksum");
    }
    return out;
}

}  // namespace dragonx::dict
