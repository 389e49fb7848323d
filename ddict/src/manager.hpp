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
// - Persistence (spec §8) runs on a thread of its own: when a checkpoint due for persistence
//   retires (or persist() asks), the manager takes views of what the checkpoint shows and
//   queues a job; entries the working set frees meanwhile are kept (divert_frees) until the
//   jobs that may read them are written. The thread reports each job through the request
//   channel (persist_done), so replies are sent by the serving thread.
// - Restart (spec §7.1): a shutdown with keep writes the working set's layout (which blocks
//   hold which entries) to a state file beside the pool and keeps the pool (pool::keep); a
//   manager started with a kept_manager reclaims the pool and rebuilds its set from them.
// - Synchronize (spec §7.2): sync_to streams this manager's whole working set, as an image
//   (image.hpp), to another manager in set_state chunks; that manager replaces its own set
//   with it and answers the client.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/pool/pool.hpp>

#include "image.hpp"
#include "persister.hpp"
#include "protocol.hpp"
#include "working_set.hpp"

namespace dragonx::dict {

/// Request channel shape of a manager (its slots hold small requests inline).
inline constexpr std::uint32_t manager_queue_capacity = 512;
inline constexpr std::uint32_t manager_queue_block = 1024;

class manager {
public:
    /// Creates the pool (share of total_mem plus room for the request channel) and the
    /// request channel; or, given `kept`, reclaims the pool kept at a shutdown with keep and
    /// the working set in it. Loads options.restore_from when set. `node` and `hostname` are
    /// for stats and restart records. Throws what fails (the state does not match, the
    /// checkpoint to restore is unavailable or corrupt).
    manager(const server_options& options, std::uint32_t id, std::uint32_t node,
            std::string hostname, const std::optional<kept_manager>& kept = std::nullopt);
    ~manager();
    manager(const manager&) = delete;
    manager& operator=(const manager&) = delete;

    /// After run() returned: what a shutdown with keep kept (nullopt otherwise).
    [[nodiscard]] const std::optional<kept_manager>& kept() const noexcept { return kept_; }

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
    void do_shutdown(const pending& p);

    // ---- persistence ----
    struct persist_job {
        std::uint64_t seq = 0;
        checkpoint_view view;            // what to write: views into the working set's entries
        std::vector<entry> graveyard;    // entries freed while this job is the newest
        std::optional<request_header> requester;  // a persist() to answer once written
        bool written = false;            // set by the writer thread (under jobs_mutex_)
        std::uint64_t bytes = 0;
        errc status = errc::ok;
        std::string error;
    };
    [[nodiscard]] bool persisting() const noexcept { return persister_ != nullptr; }
    /// Queues checkpoint c to be written (views taken now); answers `requester` when done.
    void queue_persist(std::uint64_t c, std::optional<request_header> requester);
    /// Answers and drops the written jobs at the front of the queue.
    void finish_written_jobs();
    /// Waits until every queued job is written, then finishes them.
    void drain_jobs();
    void writer_loop();
    /// An entry taken out of the set (a pop): dropped now, or kept while jobs may read it.
    void discard(entry&& e);

    void do_persist(const pending& p);
    void do_restore(const pending& p);
    void do_advance(const pending& p);
    /// Makes `next` the working set (with the persistence hook); call after drain_jobs().
    void replace_set(working_set next);
    /// Replaces the working set with persisted checkpoint `id` (read-write: files of later
    /// ids are deleted).
    void load_persisted(std::uint64_t id);

    // ---- restart and synchronize ----
    void keep_for_restart();
    void reclaim(const kept_manager& kept);
    void do_sync_to(const pending& p);
    void do_set_state(const pending& p);
    /// Replaces the working set with a loaded image (a synchronize's).
    void adopt_image(loaded_image image);
    [[nodiscard]] image_meta meta() const;
    [[nodiscard]] working_set_options set_options() const;

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
    void on_retire(std::uint64_t id);

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
    std::unique_ptr<persister> persister_;  // null: nothing is persisted
    bool read_only_ = false;
    std::optional<kept_manager> kept_;
    bool keep_ = false;  // a shutdown with keep arrived
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

    // An image arriving in set_state chunks.
    struct incoming_state {
        std::uint64_t client = 0;
        std::uint64_t tag = 0;
        std::uint64_t next_offset = 0;
        std::string reply_channel;
        std::unique_ptr<image_loader> loader;
        std::string failed;  // why it was abandoned (the rest is ignored)
        errc status = errc::ok;
        bool answered = false;
    };
    std::optional<incoming_state> incoming_;
    void answer_sync(const incoming_state& in, errc status, std::string_view info);

    // Persistence jobs, oldest first; the writer thread writes them in order.
    std::deque<std::unique_ptr<persist_job>> jobs_;
    std::uint64_t next_job_ = 1;
    std::mutex jobs_mutex_;
    std::condition_variable jobs_cv_;  // a job queued (writer) or written (drain)
    bool writer_stop_ = false;
    std::thread writer_;  // last: joined first
};

}  // namespace dragonx::dict
