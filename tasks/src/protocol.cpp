// protocol.cpp - kinds, the run header and hex for the worker environment.
#include "protocol.hpp"

#include <dragonx/tasks/task_pool.hpp>

namespace dragonx::tasks {

message_kind read_kind(decoder& in)
{
    const auto kind = in.value<std::uint8_t>();
    if (kind < static_cast<std::uint8_t>(message_kind::run) ||
        kind > static_cast<std::uint8_t>(message_kind::wake)) {
        in.fail("unknown task message kind " + std::to_string(kind));
    }
    return static_cast<message_kind>(kind);
}

void write_kind(encoder& out, message_kind kind)
{
    out.value(static_cast<std::uint8_t>(kind));
}

std::string to_hex(std::span<const std::byte> data)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(data.size() * 2);
    for (const auto b : data) {
        out += digits[static_cast<unsigned>(b) >> 4];
        out += digits[static_cast<unsigned>(b) & 0xf];
    }
    return out;
}

bytes from_hex(std::string_view text)
{
    const auto nibble = [&](char c) -> unsigned {
        if (c >= '0' && c <= '9') {
            return static_cast<unsigned>(c - '0');
        }
        if (c >= 'a' && c <= 'f') {
            return static_cast<unsigned>(c - 'a' + 10);
        }
        throw_error(errc::malformed_message, "task worker: initializer arguments not hex");
    };
    if (text.size() % 2 != 0) {
        throw_error(errc::malformed_message, "task worker: initializer arguments not hex");
    }
    bytes out(text.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::byte>(nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]));
    }
    return out;
}

}  // namespace dragonx::tasks

namespace dragonx::detail {

void write_run_header(encoder& out, std::uint64_t key, const std::string& task_name,
                      std::uint32_t count)
{
    tasks::write_kind(out, tasks::message_kind::run);
    out.value(key);
    out.chunk_view(as_bytes(task_name));
    out.value(count);
}

}  // namespace dragonx::detail
