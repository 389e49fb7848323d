// manager.hpp - a DDict manager: one shard of the dictionary, served from one request channel.
//
// The manager owns a pool of its share of total_mem, a request channel in that pool, and the
// working set (working_set.hpp) whose entries live in the pool. Its loop takes one request at
// a time and answers into the client's reply channel (registered by the client's hello).
//
// Notes:
// - Single-threaded: requests are handled in arrival order, so a client's requests (and its
//   hello before them) are handled in the order it sent them.
// - A put whose message arrives in a block of this pool keeps that block as the entry: the
//   value is copied once, by the client, into the pool.
// - Requests that cannot complete yet (wait_for, and the checkpoint rules' waits) are kept
//   and retried after every write, and answered errc::timeout when their time is up.
// - A malformed request is dropped (logged); a request that fails is answered with its error.
//   Nothing a client sends stops the manager, except the orchestrator's shutdown.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/pool/pool.hpp>

#include "protocol.hpp"
#include "working_set.hpp"

namespace dragonx::dict {

/// Request channel shape of a manager (its slots hold small requests inline).
inline constexpr std::uint32_t manager_queue_capacity = 512;
inline constexpr std::uint32_t manager_queue_block = 1024;

class manager {
public:
    /// Creates the pool (share of total_mem plus room for the request channel) and the
    /// request channel. `node` and `hostname` are for stats.
    manager(const server_options& options, std::uint32_t id, std::uint32_t node,
            std::string hostname);

    /// Descriptor of the request channel clients send to.
    [[nodiscard]] std::string channel_descriptor() const { return requests_.descriptor(); }
    [[nodiscard]] const pool::pool& shard_pool() const noexcept { return pool_; }

    /// Serves until a shutdown request arrives.
    void run();
    /// Handles at most one request, waiting up to `limit` for it; false once shut down.
    bool serve_one(std::chrono::nanoseconds limit);

private:
    // A request being handled, or kept to be retried (deferred). Owned copies of its bytes
    // are made only when it is kept.
    struct pending {
        request_header h{};
        byte_view key;
        byte_view body;
        entry value;  // put, bput: the entry to store
        std::vector<std::byte> owned_key;
        std::vector<std::byte> owned_body;
        std::chrono::steady_clock::time_point expires =
            std::chrono::steady_clock::time_point::max();
    };

    struct client_link {
        channels::channel reply;
        bool same_node = false;  // the client can read this manager's pool
    };

    struct iteration {
        std::uint64_t client = 0;
        std::vector<std::vector<std::byte>> keys;
        std::chrono::steady_clock::time_point last_used;
    };

    struct batch_progress {
        std::uint64_t stored = 0;
        std::uint16_t status = 0;
        std::string info;
    };

    void handle(channels::message& msg);
    void dispatch(pending& p, channels::message& msg);

    // Each returns true when the request is finished (answered), false when it must wait.
    bool attempt(pending& p);
    /// Answers a request whose reply is its outcome alone (ok, not found, retired); false,
    /// answering nothing, when deferred. A completed write retries the deferred requests.
    bool finish(const request_header& h, outcome o, bool wrote);
    bool do_put(pending& p, bool persist);
    bool do_get(pending& p);
    bool do_pop(pending& p);
    bool do_clear(pending& p);
    bool do_fetch_add(pending& p);
    bool do_wait_for(pending& p);

    void do_hello(const pending& p);
    void do_list(const pending& p);
    void do_batch_put(const pending& p);
    void do_batch_end(const pending& p);
    void do_stats(const pending& p);

    /// Keeps `p` to be retried (copies the bytes it refers to).
    void defer(pending&& p);
    void retry_deferred();
    void expire_deferred();
    [[nodiscard]] std::chrono::nanoseconds time_to_next_expiry() const;

    /// An entry holding key then value, from the request's block if it has one.
    entry make_entry(pending& p, channels::message& msg);
    entry copy_entry(byte_view key, byte_view value);
    void check_room(std::uint64_t more) const;
    void check_writable() const;

    void reply(const request_header& h, errc status, std::string_view info = {},
               std::uint64_t value = 0, std::uint64_t aux = 0, byte_view body = {});
    void reply_error(const request_header& h, const std::exception& e);
    /// Answers an outcome other than done (not_found, retired).
    void reply_outcome(const request_header& h, outcome o);

    server_options options_;
    std::uint32_t id_;
    std::uint32_t node_;
    std::string hostname_;
    std::uint64_t share_;
    pool::pool pool_;
    channels::channel requests_;
    working_set set_;
    bool frozen_ = false;
    bool stopping_ = false;
    bool retrying_ = false;  // inside retry_deferred()
    std::uint64_t dropped_ = 0;  // malformed requests

    std::unordered_map<std::uint64_t, client_link> clients_;
    std::deque<pending> deferred_;
    std::unordered_map<std::uint64_t, iteration> iterations_;
    std::uint64_t next_iteration_ = 1;
    std::map<std::pair<std::uint64_t, std::uint64_t>, batch_progress> batches_;

    std::vector<std::byte> scratch_;
    std::vector<std::byte> out_;
    channels::message current_;  // the request being handled (its block may become an entry)
};

}  // namespace dragonx::dict
