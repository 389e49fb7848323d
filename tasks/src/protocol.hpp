// protocol.hpp - the messages between a task_pool and its workers.
//
// Every message is a codec message (codec.hpp) whose first chunk is its kind (one byte):
//   to a worker (its input channel):
//     run    key:u64, task name, count:u32, then the count calls' arguments (each as the
//            task's codecs write them)
//     stop   nothing: finish and exit 0
//   to the pool (its result channel):
//     hello  slot:u32, puid:u64, node:u32, hostname, initializer error ("" if none)
//     done   key:u64, count:u32, results: one chunk holding the count results back to back
//     failed key:u64, index:u32 (the call that threw), message
//     wake   nothing: the pool's own nudge to its collector thread
// A key names one chunk of one submission; a worker only echoes it.
#pragma once

#include <cstdint>
#include <string>

#include <dragonx/common/codec.hpp>

namespace dragonx::tasks {

enum class message_kind : std::uint8_t {
    run = 1,
    stop = 2,
    hello = 3,
    done = 4,
    failed = 5,
    wake = 6,
};

/// The kind of the message `in` reads; throws errc::malformed_message for an unknown one.
message_kind read_kind(decoder& in);
void write_kind(encoder& out, message_kind kind);

struct hello_message {
    std::uint32_t slot = 0;
    std::uint64_t puid = 0;
    std::uint32_t node = 0;
    std::string hostname;
    std::string init_error;

    static auto fields(auto& self)
    {
        return std::tie(self.slot, self.puid, self.node, self.hostname, self.init_error);
    }
};

struct failed_message {
    std::uint64_t key = 0;
    std::uint32_t index = 0;
    std::string message;

    static auto fields(auto& self) { return std::tie(self.key, self.index, self.message); }
};

/// The environment through which a pool tells a worker where it belongs.
namespace worker_env {
inline constexpr const char* slot = "DRAGONX_TASK_SLOT";          // index of the worker
inline constexpr const char* creator = "DRAGONX_TASK_CREATOR";    // the pool's process puid
inline constexpr const char* input = "DRAGONX_TASK_INPUT";        // its input channel
inline constexpr const char* results = "DRAGONX_TASK_RESULTS";    // the result channel
inline constexpr const char* init_name = "DRAGONX_TASK_INIT";     // initializer's task name
inline constexpr const char* init_args = "DRAGONX_TASK_INIT_ARGS";  // its arguments, in hex
}  // namespace worker_env

[[nodiscard]] std::string to_hex(std::span<const std::byte> data);
/// Throws errc::malformed_message for text that is not hex.
[[nodiscard]] bytes from_hex(std::string_view text);

}  // namespace dragonx::tasks
