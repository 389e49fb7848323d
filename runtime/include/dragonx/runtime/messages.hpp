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
// - The namespace is dragonx::rt, not dragonx::runtime: `dragonx::runtime` is the class of the
//   public API (DESIGN.md §8), and a class and a namespace cannot share a name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/policy/policy.hpp>

namespace dragonx::rt {

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
    pipe = 3,     // kept by global services for whoever reads it (process::read)
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
    std::string agent_address;  // how other transport agents reach this node's (peer_link)
    static auto fields(auto& self)
    {
        return std::tie(self.index, self.hostname, self.address, self.port, self.cpus, self.gpus,
                        self.gpu_vendor, self.memory_bytes, self.agent_address);
    }
    bool operator==(const node_info&) const = default;
};

/// Where a process runs: what the placement evaluator chose for it.
struct layout_spec {
    std::uint32_t node = 0;
    std::vector<int> cpus;        // CPU affinity; empty: the daemon's
    std::vector<int> gpus;        // GPUs to expose; empty: leave the variable alone
    std::uint8_t gpu_vendor = 0;  // dragonx::gpu_vendor
    static auto fields(auto& self)
    {
        return std::tie(self.node, self.cpus, self.gpus, self.gpu_vendor);
    }
    bool operator==(const layout_spec&) const = default;
};

enum class process_state : std::uint8_t { pending = 0, running = 1, exited = 2 };

/// What global services know of one process.
struct process_info {
    puid_t puid = 0;
    std::uint32_t node = 0;
    process_state state = process_state::pending;
    std::int32_t exit_code = 0;  // when exited: the exit code, or 128+signal
    std::int32_t signal = 0;     // when exited by a signal: that signal
    static auto fields(auto& self)
    {
        return std::tie(self.puid, self.node, self.state, self.exit_code, self.signal);
    }
    bool operator==(const process_info&) const = default;
};

namespace msg {

// ---- first words on every connection ------------------------------------------------------
/// Connector -> acceptor: who I am and a challenge for the acceptor.
struct hello {
    static constexpr std::string_view name = "hello";
    std::string role;                    // "launcher", "daemon", "client"
    std::uint32_t node = 0;
    std::vector<std::uint8_t> challenge;  // random bytes the acceptor must sign
    static auto fields(auto& self) { return std::tie(self.role, self.node, self.challenge); }
    bool operator==(const hello&) const = default;
};
/// Acceptor -> connector: proof of the run secret, and a challenge back.
struct hello_reply {
    static constexpr std::string_view name = "hello_reply";
    std::vector<std::uint8_t> proof;
    std::vector<std::uint8_t> challenge;
    static auto fields(auto& self) { return std::tie(self.proof, self.challenge); }
    bool operator==(const hello_reply&) const = default;
};
/// Connector -> acceptor: proof of the run secret. Anything else first drops the connection.
struct hello_proof {
    static constexpr std::string_view name = "hello_proof";
    std::vector<std::uint8_t> proof;
    static auto fields(auto& self) { return std::tie(self.proof); }
    bool operator==(const hello_proof&) const = default;
};

// ---- launcher <-> daemons -----------------------------------------------------------------
/// Daemon -> launcher, once authenticated: the node it runs.
struct daemon_up {
    static constexpr std::string_view name = "daemon_up";
    node_info node;
    static auto fields(auto& self) { return std::tie(self.node); }
    bool operator==(const daemon_up&) const = default;
};
/// Launcher -> every daemon, once all are up: the run's nodes, index order.
struct node_table {
    static constexpr std::string_view name = "node_table";
    std::vector<node_info> nodes;
    static auto fields(auto& self) { return std::tie(self.nodes); }
    bool operator==(const node_table&) const = default;
};
/// Launcher -> primary daemon: start the head program. Reply: started.
struct start_head {
    static constexpr std::string_view name = "start_head";
    process_spec spec;
    static auto fields(auto& self) { return std::tie(self.spec); }
    bool operator==(const start_head&) const = default;
};
/// Reply to a start: the new process's id, or why it could not start.
struct started {
    static constexpr std::string_view name = "started";
    status result;
    puid_t puid = 0;
    std::uint32_t node = 0;
    static auto fields(auto& self) { return std::tie(self.result, self.puid, self.node); }
    bool operator==(const started&) const = default;
};
/// Daemon -> launcher: output of a process whose stream is forwarded; daemon -> primary for a
/// piped stream (stdio_target::pipe). Whole lines, except at the end of the stream.
struct output {
    static constexpr std::string_view name = "output";
    puid_t puid = 0;
    std::uint32_t node = 0;
    output_stream stream = output_stream::out;
    std::string data;
    static auto fields(auto& self)
    {
        return std::tie(self.puid, self.node, self.stream, self.data);
    }
    bool operator==(const output&) const = default;
};
/// A process ended: its exit code, or the signal that killed it.
struct exited {
    static constexpr std::string_view name = "exited";
    puid_t puid = 0;
    std::int32_t exit_code = 0;
    std::int32_t signal = 0;  // non-zero: killed by this signal
    static auto fields(auto& self) { return std::tie(self.puid, self.exit_code, self.signal); }
    bool operator==(const exited&) const = default;
};
/// Launcher -> daemons: end the run (terminate processes, remove pools, exit).
struct teardown {
    static constexpr std::string_view name = "teardown";
    std::string reason;
    static auto fields(auto& self) { return std::tie(self.reason); }
    bool operator==(const teardown&) const = default;
};
/// Daemon -> launcher: this node is clean.
struct teardown_done {
    static constexpr std::string_view name = "teardown_done";
    std::uint32_t node = 0;
    static auto fields(auto& self) { return std::tie(self.node); }
    bool operator==(const teardown_done&) const = default;
};
/// Both ways, periodically: I am alive.
struct heartbeat {
    static constexpr std::string_view name = "heartbeat";
    std::uint64_t seq = 0;
    static auto fields(auto& self) { return std::tie(self.seq); }
    bool operator==(const heartbeat&) const = default;
};
/// Daemon -> launcher: this node cannot go on; the run fails with `what`.
struct node_failed {
    static constexpr std::string_view name = "node_failed";
    std::uint32_t node = 0;
    std::string what;
    static auto fields(auto& self) { return std::tie(self.node, self.what); }
    bool operator==(const node_failed&) const = default;
};

// ---- replies --------------------------------------------------------------------------------
/// The reply to a request that returns nothing but its outcome.
struct ack {
    static constexpr std::string_view name = "ack";
    status result;
    static auto fields(auto& self) { return std::tie(self.result); }
    bool operator==(const ack&) const = default;
};

// ---- processes: client -> local daemon -> primary (global services) -> node daemon -------
/// Start a process placed by its policy. Reply: started.
struct create_process {
    static constexpr std::string_view name = "create_process";
    process_spec spec;
    puid_t parent = 0;  // the requesting process (0: the launcher)
    static auto fields(auto& self) { return std::tie(self.spec, self.parent); }
    bool operator==(const create_process&) const = default;
};
/// Primary -> the chosen node's daemon: start `spec` as `puid` with this layout. Reply: started.
struct spawn_process {
    static constexpr std::string_view name = "spawn_process";
    puid_t puid = 0;
    process_spec spec;
    layout_spec where;
    static auto fields(auto& self) { return std::tie(self.puid, self.spec, self.where); }
    bool operator==(const spawn_process&) const = default;
};
/// Send a signal to a process (its whole process group). Reply: ack.
struct signal_process {
    static constexpr std::string_view name = "signal_process";
    puid_t puid = 0;
    std::int32_t signal = 0;
    static auto fields(auto& self) { return std::tie(self.puid, self.signal); }
    bool operator==(const signal_process&) const = default;
};
/// Wait until all (or any) of `puids` have exited, up to `timeout_ms` (< 0: no limit).
/// Reply: process_states (errc::timeout if time ran out; the states are then current).
struct join_processes {
    static constexpr std::string_view name = "join_processes";
    std::vector<puid_t> puids;
    bool all = true;
    std::int64_t timeout_ms = -1;
    static auto fields(auto& self) { return std::tie(self.puids, self.all, self.timeout_ms); }
    bool operator==(const join_processes&) const = default;
};
/// The current states of `puids`. Reply: process_states (errc::not_found for an unknown one).
struct query_processes {
    static constexpr std::string_view name = "query_processes";
    std::vector<puid_t> puids;
    static auto fields(auto& self) { return std::tie(self.puids); }
    bool operator==(const query_processes&) const = default;
};
struct process_states {
    static constexpr std::string_view name = "process_states";
    status result;
    std::vector<process_info> states;
    static auto fields(auto& self) { return std::tie(self.result, self.states); }
    bool operator==(const process_states&) const = default;
};
/// The run's node table. Reply: node_table.
struct get_nodes {
    static constexpr std::string_view name = "get_nodes";
    static auto fields(auto&) { return std::tie(); }
    bool operator==(const get_nodes&) const = default;
};

// ---- key-value registry (bootstrapping: named objects, descriptors) -----------------------
/// Reply: ack.
struct kv_put {
    static constexpr std::string_view name = "kv_put";
    std::string key;
    std::string value;
    static auto fields(auto& self) { return std::tie(self.key, self.value); }
    bool operator==(const kv_put&) const = default;
};
/// Waits up to `timeout_ms` (< 0: no limit; 0: look once) for `key`. Reply: kv_value.
struct kv_get {
    static constexpr std::string_view name = "kv_get";
    std::string key;
    std::int64_t timeout_ms = 0;
    static auto fields(auto& self) { return std::tie(self.key, self.timeout_ms); }
    bool operator==(const kv_get&) const = default;
};
struct kv_value {
    static constexpr std::string_view name = "kv_value";
    status result;  // errc::key_not_found or errc::timeout when absent
    std::string value;
    static auto fields(auto& self) { return std::tie(self.result, self.value); }
    bool operator==(const kv_value&) const = default;
};

// ---- node services ----------------------------------------------------------------------------
/// Client -> its node's daemon: unlink shm object `name` when process `owner` exits (and at
/// teardown). Reply: ack.
struct register_shm {
    static constexpr std::string_view name = "register_shm";
    puid_t owner = 0;
    std::string object;  // shm name, "/dragonx-..."
    static auto fields(auto& self) { return std::tie(self.owner, self.object); }
    bool operator==(const register_shm&) const = default;
};

// ---- process groups (kept by global services) -------------------------------------------
struct group_member {
    std::uint32_t count = 1;
    process_spec spec;
    static auto fields(auto& self) { return std::tie(self.count, self.spec); }
    bool operator==(const group_member&) const = default;
};
/// How the members of a group find each other as the ranks of one MPI job.
enum class pmi_mode : std::uint8_t {
    none = 0,  // not an MPI job
    pmi1 = 1,  // MPICH's simple PMI-1 wire protocol, served by global services (PMI_PORT)
};
/// Reply: group_state with the new group's id.
struct group_create {
    static constexpr std::string_view name = "group_create";
    std::vector<group_member> members;
    std::optional<policy> where;     // the group's policy (templates' policies win)
    bool restart = false;            // replace members that exit, keeping N alive
    bool ignore_error_on_exit = false;
    std::int64_t walltime_ms = 0;    // > 0: members are stopped this long after start
    puid_t parent = 0;
    pmi_mode pmi = pmi_mode::none;
    static auto fields(auto& self)
    {
        return std::tie(self.members, self.where, self.restart, self.ignore_error_on_exit,
                        self.walltime_ms, self.parent, self.pmi);
    }
    bool operator==(const group_create&) const = default;
};
enum class group_op : std::uint8_t {
    start = 1,         // start every member (placed in one evaluation)
    query = 2,         // just the state
    stop_restart = 3,  // no more restarts
    close = 4,         // SIGKILL what runs and forget the group
};
/// Reply: group_state.
struct group_request {
    static constexpr std::string_view name = "group_request";
    std::uint64_t group = 0;
    group_op op = group_op::query;
    static auto fields(auto& self) { return std::tie(self.group, self.op); }
    bool operator==(const group_request&) const = default;
};
/// Signal every running member; `stop_restart` turns restarting off first. Reply: group_state.
struct group_signal {
    static constexpr std::string_view name = "group_signal";
    std::uint64_t group = 0;
    std::int32_t signal = 0;
    bool stop_restart = true;
    static auto fields(auto& self) { return std::tie(self.group, self.signal, self.stop_restart); }
    bool operator==(const group_signal&) const = default;
};
/// Wait until no member runs (and none will be restarted), up to `timeout_ms` (< 0: no
/// limit). Reply: group_state (errc::timeout if time ran out).
struct group_join {
    static constexpr std::string_view name = "group_join";
    std::uint64_t group = 0;
    std::int64_t timeout_ms = -1;
    static auto fields(auto& self) { return std::tie(self.group, self.timeout_ms); }
    bool operator==(const group_join&) const = default;
};
struct group_state {
    static constexpr std::string_view name = "group_state";
    status result;
    std::uint64_t group = 0;
    std::vector<puid_t> running;
    std::vector<process_info> exited;  // every member that exited, in exit order
    /// Members that exited non-zero on their own (not stopped by a group signal or walltime).
    std::vector<process_info> errors;
    bool walltime_expired = false;
    static auto fields(auto& self)
    {
        return std::tie(self.result, self.group, self.running, self.exited, self.errors,
                        self.walltime_expired);
    }
    bool operator==(const group_state&) const = default;
};

// ---- output a process's parent reads (stdio_target::pipe) ---------------------------------
/// Waits up to `timeout_ms` (< 0: no limit) for output of `puid` on `stream`. Reply:
/// output_data: what was written so far and not yet read; eof once the process has exited
/// and everything was read; errc::timeout when nothing came in time.
struct read_output {
    static constexpr std::string_view name = "read_output";
    puid_t puid = 0;
    output_stream stream = output_stream::out;
    std::int64_t timeout_ms = -1;
    static auto fields(auto& self) { return std::tie(self.puid, self.stream, self.timeout_ms); }
    bool operator==(const read_output&) const = default;
};
struct output_data {
    static constexpr std::string_view name = "output_data";
    status result;
    std::string data;
    bool eof = false;
    static auto fields(auto& self) { return std::tie(self.result, self.data, self.eof); }
    bool operator==(const output_data&) const = default;
};

}  // namespace msg

/// Every message; the index is the wire tag (append only).
using message = std::variant<msg::hello, msg::hello_reply, msg::hello_proof, msg::daemon_up,
                             msg::node_table, msg::start_head, msg::started, msg::output,
                             msg::exited, msg::teardown, msg::teardown_done, msg::heartbeat,
                             msg::node_failed, msg::ack, msg::create_process,
                             msg::spawn_process, msg::signal_process, msg::join_processes,
                             msg::query_processes, msg::process_states, msg::get_nodes,
                             msg::kv_put, msg::kv_get, msg::kv_value, msg::register_shm,
                             msg::group_create, msg::group_request, msg::group_signal,
                             msg::group_join, msg::group_state, msg::read_output,
                             msg::output_data>;

struct envelope {
    std::uint16_t version = protocol_version;
    std::uint64_t id = 0;        // the sender's request id (0: not a request)
    std::uint64_t reply_to = 0;  // the request this answers (0: not a reply)
    message body;
    static auto fields(auto& self)
    {
        return std::tie(self.version, self.id, self.reply_to, self.body);
    }
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

}  // namespace dragonx::rt
