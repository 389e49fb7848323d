// protocol.hpp - the messages between DDict clients, managers and the orchestrator.
//
// Every message is one channel message: a fixed header, then op-specific bytes.
//
//   request  = request_header, key (key_size bytes), body (the rest)
//   response = response_header, info (info_size bytes: an error's text), body (the rest)
//
// Requests go to the receiver's request channel (a manager's or the orchestrator's); every
// response goes to the reply channel the client registered (hello) or named in the request
// body (orchestrator ops), and carries the request's tag. A client discards responses whose
// tag it no longer waits for (late replies to requests that timed out).
//
// Bodies:
// - put, pput, bput, wait_for: the value's bytes (its codec encoding), stored as they come.
//   The stored entry is the request message itself when it arrives in a pool block.
// - batch_put: records, each a batch_record_header then key and value bytes.
// - control ops (hello, attach, stats, manager_ready, listings): a codec-encoded struct below.
//
// Notes:
// - Decoding never trusts sizes: parse_request/parse_response check every length against
//   the message and throw errc::malformed_message; a manager drops such a message (it cannot
//   know whom to answer) and carries on.
// - Numbers are in host byte order: every node of a run has the same architecture.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/ddict/client.hpp>
#include <dragonx/policy/policy.hpp>

namespace dragonx::dict {

using byte_view = std::span<const std::byte>;

enum class op : std::uint16_t {
    // client -> manager
    hello = 1,       // body: hello_body. Registers the client's reply channel.
    goodbye = 2,     // the client leaves: drop its reply channel and iterations (no reply)
    put = 3,         // flags: persist. Body: value.
    get = 4,         // reply body: the value
    contains = 5,    // reply value: 1 or 0
    pop = 6,         // reply body: the value
    size = 7,        // reply value: keys visible at the checkpoint (flags: local only)
    clear = 8,
    list = 9,        // keys/values/items, paged: arg = iteration id (0: new), arg2 = position;
                     // flags: list_keys | list_values. Reply: value = next position (0: done),
                     // aux = iteration id, body: the page (codec chunks)
    fetch_add = 10,  // arg = the addend (int64). Reply value: the old value
    wait_for = 11,   // body: the expected value; replies once the key holds it
    bput = 12,       // a put of a non-persistent copy on every manager
    batch_put = 13,  // arg = batch id. Body: records. No reply
    batch_end = 14,  // arg = batch id, arg2 = records sent. Reply: value = records stored
    freeze = 15,
    unfreeze = 16,
    is_frozen = 17,  // reply value: 1 or 0
    stats = 18,      // reply body: ddict_stats
    newest = 19,     // reply value: the newest checkpoint id
    persist = 20,        // persist the request's checkpoint; reply (value: bytes) once written
    restore = 21,        // arg = checkpoint id to load from the persister
    advance = 22,        // read-only: load the next persisted checkpoint; reply value: its id
    persisted_ids = 23,  // reply body: codec std::vector<std::uint64_t>
    sync_to = 24,        // body: sync_request. Stream this manager's state to another one
    // manager -> manager (a sync_to's stream). The key is the client's reply channel; arg =
    // offset of the chunk in the image, arg2 = the image's size; body: the chunk. The
    // receiver answers the client (tag) when the image is in, or failed.
    set_state = 25,
    // a manager's persistence thread -> its own manager: arg = the job finished
    persist_done = 26,
    // orchestrator -> manager: arg = 1: keep the pool and state for a restart
    shutdown = 40,
    // manager -> orchestrator
    manager_ready = 41,  // body: manager_info; flags = 1: failed (info: errc in arg, body: text)
    manager_kept = 42,   // body: kept_manager (after a shutdown with keep)
    // client -> orchestrator (body: orchestrator_request)
    attach = 60,      // reply body: directory
    destroy = 61,     // arg = 1: allow restart. Reply when every manager has stopped
    managers = 62,    // reply body: directory (its `empty` ids current)
    mark_empty = 63,  // arg = 1: every manager counts as empty (a clone target), 0: none
};

/// Request flags.
inline constexpr std::uint16_t flag_persist = 1;      // put: pput (a persistent key)
inline constexpr std::uint16_t flag_list_keys = 2;    // list: pages carry keys
inline constexpr std::uint16_t flag_list_values = 4;  // list: pages carry values

/// The timeout field's value for "no timeout".
inline constexpr std::uint64_t no_timeout = ~std::uint64_t{0};
/// server_options::restore_from when not restoring.
inline constexpr std::uint64_t no_checkpoint = ~std::uint64_t{0};

struct request_header {
    op code;
    std::uint16_t flags;
    std::uint32_t key_size;
    std::uint64_t tag;
    std::uint64_t client;
    std::uint64_t checkpoint;
    std::uint64_t arg;
    std::uint64_t arg2;
    std::uint64_t timeout_us;  // how long the manager may keep the request waiting
};
static_assert(sizeof(request_header) == 56);

struct response_header {
    op code;
    std::uint16_t status;  // dragonx::errc
    std::uint32_t info_size;
    std::uint64_t tag;
    std::uint64_t value;
    std::uint64_t aux;
};
static_assert(sizeof(response_header) == 32);

/// A record of a batch_put body.
struct batch_record_header {
    std::uint32_t key_size;
    std::uint32_t flags;  // flag_persist
    std::uint64_t value_size;
};
static_assert(sizeof(batch_record_header) == 16);

/// A get's reply from a frozen dictionary's manager on the client's node: the value is not
/// copied into the reply but read by the client from the manager's pool, where nothing moves
/// while the dictionary is frozen. Marked by response_header::aux == frozen_reply_marker.
struct frozen_value_ref {
    std::uint64_t block_offset;  // the entry's block in the manager's pool
    std::uint64_t block_size;
    std::uint64_t value_offset;  // within the block
    std::uint64_t value_size;
};
inline constexpr std::uint64_t frozen_reply_marker = 0x46524f5a454e;  // "FROZEN"

struct parsed_request {
    request_header header;
    byte_view key;
    byte_view body;
};

struct parsed_response {
    response_header header;
    std::string_view info;
    byte_view body;
};

/// Splits a request; throws errc::malformed_message if it is too short or its key overruns.
[[nodiscard]] parsed_request parse_request(byte_view message);
/// Splits a response; throws errc::malformed_message.
[[nodiscard]] parsed_response parse_response(byte_view message);

/// Bytes of a request with this key and body.
[[nodiscard]] inline std::size_t request_size(std::size_t key, std::size_t body) noexcept
{
    return sizeof(request_header) + key + body;
}

/// Writes header and key at the start of `out` (which has request_size(key, body) bytes)
/// and returns the part where the body goes.
std::span<std::byte> write_request(std::span<std::byte> out, const request_header& h,
                                   byte_view key);

// ---- control bodies (codec-encoded) ---------------------------------------------------

struct hello_body {
    std::string reply_channel;  // descriptor of the client's reply channel
    std::uint32_t node = 0;     // the client's node
    static auto fields(auto& self) { return std::tie(self.reply_channel, self.node); }
};

/// A manager as clients see it.
struct manager_info {
    std::uint32_t id = 0;
    std::string channel;  // descriptor of its request channel
    std::uint32_t node = 0;
    std::uint64_t puid = 0;
    static auto fields(auto& self)
    {
        return std::tie(self.id, self.channel, self.node, self.puid);
    }
};

/// What a client learns when it attaches: everything it needs to talk to managers.
struct directory {
    std::string name;
    std::uint64_t client_id = 0;
    std::uint64_t timeout_us = no_timeout;  // the dictionary's default client timeout
    std::uint64_t base_checkpoint = 0;      // where new clients start
    std::vector<manager_info> managers;
    std::vector<std::uint32_t> empty;  // managers that came back empty (see empty_managers)
    static auto fields(auto& self)
    {
        return std::tie(self.name, self.client_id, self.timeout_us, self.base_checkpoint,
                        self.managers, self.empty);
    }
};

/// sync_to's body: where to send the state, and whom to answer.
struct sync_request {
    std::string target;        // the target manager's request channel
    std::string reply_channel; // the client's (the target answers it)
    static auto fields(auto& self) { return std::tie(self.target, self.reply_channel); }
};

/// What a manager that kept its pool for a restart reports to the orchestrator.
struct kept_manager {
    std::uint32_t id = 0;
    std::string pool;  // the kept pool's name ("/dragonx-kept-...")
    std::string hostname;
    std::uint32_t node = 0;
    static auto fields(auto& self)
    {
        return std::tie(self.id, self.pool, self.hostname, self.node);
    }
};

/// The body of every client -> orchestrator request.
struct orchestrator_request {
    std::string reply_channel;
    static auto fields(auto& self) { return std::tie(self.reply_channel); }
};

/// The dictionary's creation options as the orchestrator and managers get them.
struct server_options {
    std::string name;
    std::uint32_t managers = 1;
    std::uint64_t total_mem = 0;
    std::uint32_t working_set_size = 1;
    bool wait_for_keys = false;
    bool wait_for_writers = false;
    double full_threshold = 0.9;
    std::uint64_t timeout_us = no_timeout;
    std::vector<policy> manager_policies;  // where each manager goes, one per manager
    // Persistence (spec §8): persister 0 none, 1 POSIX files in persist_path (absolute).
    std::uint8_t persister = 0;
    std::string persist_path;
    std::uint64_t persist_freq = 0;
    std::int64_t persist_count = 0;
    std::uint64_t restore_from = no_checkpoint;  // bring up from this persisted checkpoint
    bool read_only = false;
    bool restart = false;  // bring back the kept state of `name` (orchestrator only)
    static auto fields(auto& self)
    {
        return std::tie(self.name, self.managers, self.total_mem, self.working_set_size,
                        self.wait_for_keys, self.wait_for_writers, self.full_threshold,
                        self.timeout_us, self.manager_policies, self.persister,
                        self.persist_path, self.persist_freq, self.persist_count,
                        self.restore_from, self.read_only, self.restart);
    }
};

/// What the orchestrator records for a restart (a file beside the persisted checkpoints):
/// the options and where each manager kept its state.
struct restart_record {
    server_options options;
    std::vector<kept_manager> managers;  // by manager id
    static auto fields(auto& self) { return std::tie(self.options, self.managers); }
};

/// The errc a failure carries, or `fallback` for one that is not dragonx's (an OS error).
[[nodiscard]] errc status_of(const error& e, errc fallback = errc::internal) noexcept;

/// A small file of `bytes` followed by their xxHash3 (the restart record, a kept manager's
/// state): written to `path`.tmp, fsynced and renamed over `path` (mode 0600). Throws a system
/// error.
void write_checked_file(const std::string& path, byte_view bytes);
/// The bytes of a file write_checked_file wrote: errc::not_found if there is none,
/// errc::corrupt_file (naming it) if it is truncated or fails its checksum.
[[nodiscard]] std::vector<std::byte> read_checked_file(const std::string& path);

/// The restart record's file, and the name under which manager `id` keeps its pool.
[[nodiscard]] std::string restart_record_path(const server_options& options);
[[nodiscard]] std::string kept_pool_name(const std::string& dict_name, std::uint32_t id);

/// What a descriptor carries.
struct descriptor_body {
    std::string name;
    std::string orchestrator;  // its request channel
    std::uint64_t orchestrator_puid = 0;
    std::uint32_t managers = 0;
    static auto fields(auto& self)
    {
        return std::tie(self.name, self.orchestrator, self.orchestrator_puid, self.managers);
    }
};

/// "dxdict1:" + base64url(codec(descriptor_body)).
[[nodiscard]] std::string encode_descriptor(const descriptor_body& d);
/// Throws errc::malformed_descriptor, naming what is wrong.
[[nodiscard]] descriptor_body decode_descriptor(std::string_view text);

/// The manager a key goes to: xxHash3 of the key bytes modulo the number of managers.
[[nodiscard]] std::uint32_t manager_of(byte_view key, std::uint32_t managers) noexcept;

}  // namespace dragonx::dict
