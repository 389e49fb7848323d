// messages.hpp - the control protocol: every message between launcher, node daemons and
// client processes, defined once.
//
// A message is one struct (its fields listed once, for codec<T>); `message` is the variant of
// all of them, and its index is the wire tag. An envelope carries a message with the protocol
// version, a request id and, for replies, the id of the request answered. On a byte stream an
// envelope travels as a frame: a 32-bit little-endian length, then the encoded envelope.
//
// Notes:
// - Append-only: new messages go at the end of the variant, new fields at the end of a
//   struct (and bump protocol_version when an old peer could not read them).
// - Every decoder rejects malformed input with errc::malformed_message (or version_mismatch)
//   and never reads past its input; a daemon drops the connection, it does not die.
// - Replies carry a status {errc, message}: errors travel as data and become dragonx::error
//   at the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/policy/policy.hpp>

namespace dragonx::runtime {

inline constexpr std::uint16_t protocol_version = 1;
/// Frames larger than this are refused (the connection is dropped).
inline constexpr std::uint32_t max_frame_bytes = 64u << 20;

using puid_t = std::uint64_t;

/// The outcome of a request, as data.
struct status {
    errc code = errc::ok;
    std::string message;
    static auto fields(auto& self) { return std::tie(self.code, self.message); }
    [[nodiscard]] bool ok() const noexcept { return code == errc::ok; }
    /// Throws dragonx::error(code, message) unless ok().
    void throw_if_error() const;
    bool operator==(const status&) const = default;
};

enum class output_stream : std::uint8_t { out = 1, err = 2 };

/// Where a managed process's stdout or stderr goes.
enum class stdio_target : std::uint8_t {
    forward = 0,  // to the launcher, line by line, labelled as --label says
    null = 1,     // /dev/null
    file = 2,     // appended to `path` on the process's node
};

struct stdio_spec {
    stdio_target target = stdio_target::forward;
    std::string path;
    static auto fields(auto& self) { return std::tie(self.target, self.path); }
    bool operator==(const stdio_spec&) const = default;
};

/// What to start: a program, its arguments and environment, and where.
struct process_spec {
    std::string exe;                         // a path, or a name looked up in PATH
    std::vector<std::string> args;           // argv[1...]
    std::string cwd;                         // empty: the daemon's working directory
    std::map<std::string, std::string> env;  // set on top of the node's environment
    std::optional<policy> where;
    stdio_spec out;
    stdio_spec err;
    static auto fields(auto& self)
    {
        return std::tie(self.exe, self.args, self.cwd, self.env, self.where, self.out, self.err);
    }
    bool operator==(const process_spec&) const = default;
};

/// One node of the run, as its daemon reports it.
struct node_info {
    std::uint32_t index = 0;
    std::string hostname;
    std::string address;     // where the daemon accepts TCP connections
    std::uint16_t port = 0;
    std::vector<int> cpus;
    std::vector<int> gpus;
    std::uint8_t gpu_vendor = 0;  // dragonx::gpu_vendor
    std::uint64_t memory_bytes = 0;
    static auto fields(auto& self)
    {
        return std::tie(self.index, self.hostname, self.address, self.port, self.cpus, self.gpus,
                        self.gpu_vendor, self.memory_bytes);
    }
    bool operator==(const node_info&) const = default;
};

namespace msg {

// ---- first words on every connection ------------------------------------------------------
/// Connector -> acceptor: who I am and a challenge for the acceptor.
struct hello {
    std::string role;                    // "launcher", "daemon", "client"
    std::uint32_t node = 0;
    std::vector<std::uint8_t> challenge;  // random bytes the acceptor must sign
    static auto fields(auto& self) { return std::tie(self.role, self.node, self.challenge); }
    bool operator==(const hello&) const = default;
};
/// Acceptor -> connector: proof of the run secret, and a challenge back.
struct hello_reply {
    std::vector<std::uint8_t> proof;
    std::vector<std::uint8_t> challenge;
    static auto fields(auto& self) { return std::tie(self.proof, self.challenge); }
    bool operator==(const hello_reply&) const = default;
};
/// Connector -> acceptor: proof of the run secret. Anything else first drops the connection.
struct hello_proof {
    std::vector<std::uint8_t> proof;
    static auto fields(auto& self) { return std::tie(self.proof); }
    bool operator==(const hello_proof&) const = default;
};

// ---- launcher <-> daemons -----------------------------------------------------------------
/// Daemon -> launcher, once authenticated: the node it runs.
struct daemon_up {
    node_info node;
    static auto fields(auto& self) { return std::tie(self.node); }
    bool operator==(const daemon_up&) const = default;
};
/// Launcher -> every daemon, once all are up: the run's nodes, index order.
struct node_table {
    std::vector<node_info> nodes;
    static auto fields(auto& self) { return std::tie(self.nodes); }
    bool operator==(const node_table&) const = default;
};
/// Launcher -> primary daemon: start the head program. Reply: started.
struct start_head {
    process_spec spec;
    static auto fields(auto& self) { return std::tie(self.spec); }
    bool operator==(const start_head&) const = default;
};
/// Reply to a start: the new process's id, or why it could not start.
struct started {
    status result;
    puid_t puid = 0;
    std::uint32_t node = 0;
    static auto fields(auto& self) { return std::tie(self.result, self.puid, self.node); }
    bool operator==(const started&) const = default;
};
/// Daemon -> launcher: output of a process whose stream is forwarded (whole lines, except
/// at the end of the stream).
struct output {
    puid_t puid = 0;
    std::uint32_t node = 0;
    output_stream stream = output_stream::out;
    std::string data;
    static auto fields(auto& self) { return std::tie(self.puid, self.node, self.stream, self.data); }
    bool operator==(const output&) const = default;
};
/// A process ended: its exit code, or the signal that killed it.
struct exited {
    puid_t puid = 0;
    std::int32_t exit_code = 0;
    std::int32_t signal = 0;  // non-zero: killed by this signal
    static auto fields(auto& self) { return std::tie(self.puid, self.exit_code, self.signal); }
    bool operator==(const exited&) const = default;
};
/// Launcher -> daemons: end the run (terminate processes, remove pools, exit).
struct teardown {
    std::string reason;
    static auto fields(auto& self) { return std::tie(self.reason); }
    bool operator==(const teardown&) const = default;
};
/// Daemon -> launcher: this node is clean.
struct teardown_done {
    std::uint32_t node = 0;
    static auto fields(auto& self) { return std::tie(self.node); }
    bool operator==(const teardown_done&) const = default;
};
/// Both ways, periodically: I am alive.
struct heartbeat {
    std::uint64_t seq = 0;
    static auto fields(auto& self) { return std::tie(self.seq); }
    bool operator==(const heartbeat&) const = default;
};
/// Daemon -> launcher: this node cannot go on; the run fails with `what`.
struct node_failed {
    std::uint32_t node = 0;
    std::string what;
    static auto fields(auto& self) { return std::tie(self.node, self.what); }
    bool operator==(const node_failed&) const = default;
};

}  // namespace msg

/// Every message; the index is the wire tag (append only).
using message = std::variant<msg::hello, msg::hello_reply, msg::hello_proof, msg::daemon_up,
                             msg::node_table, msg::start_head, msg::started, msg::output,
                             msg::exited, msg::teardown, msg::teardown_done, msg::heartbeat,
                             msg::node_failed>;

struct envelope {
    std::uint16_t version = protocol_version;
    std::uint64_t id = 0;        // the sender's request id (0: not a request)
    std::uint64_t reply_to = 0;  // the request this answers (0: not a reply)
    message body;
    static auto fields(auto& self) { return std::tie(self.version, self.id, self.reply_to, self.body); }
};

/// The frame of `e`: length, then the encoded envelope.
[[nodiscard]] bytes encode_frame(const envelope& e);

/// Decodes one encoded envelope (without the length). Throws errc::malformed_message, or
/// errc::version_mismatch for another protocol version.
[[nodiscard]] envelope decode_envelope(std::span<const std::byte> encoded);

/// Cuts a byte stream into envelopes: feed() what arrives, in pieces of any size; next()
/// returns each complete envelope in order.
class frame_reader {
public:
    void feed(std::span<const std::byte> data);
    /// The next complete envelope, or nullopt until more bytes arrive. Throws
    /// errc::malformed_message for a frame over max_frame_bytes or one that does not decode:
    /// the stream is then unusable (drop the connection).
    [[nodiscard]] std::optional<envelope> next();
    /// Bytes received but not yet returned as envelopes.
    [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size() - start_; }

private:
    bytes buffer_;
    std::size_t start_ = 0;  // where the next frame begins in buffer_
};

/// The name of a message type, for logs and errors ("start_head").
[[nodiscard]] std::string_view message_name(const message& m) noexcept;

}  // namespace dragonx::runtime
