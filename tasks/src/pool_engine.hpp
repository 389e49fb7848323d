// pool_engine.hpp - the creator's side of a task_pool, below the typed API: workers, their
// channels, dispatch of encoded chunks, and the collector thread that takes results back.
//
// Dispatch: each worker slot holds at most `chunks_per_worker` chunks (one running, one
// waiting in its input channel); a submitted chunk goes to the slot holding the fewest, or
// waits in the backlog until a result frees a slot. A chunk is in flight from dispatch to its
// result, under a key that the worker echoes.
//
// Deaths: the collector asks the process group for exited members every ~0.1 s while work is
// in flight, and at once when a replacement says hello. The oldest chunk of the dead worker's
// slot (the one it was running) fails with errc::worker_lost; the slot's input channel
// survives, so the replacement runs the others.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/pool/pool.hpp>
#include <dragonx/runtime/process_group.hpp>
#include <dragonx/tasks/task_pool.hpp>

#include "protocol.hpp"

namespace dragonx::detail {

class pool_engine {
public:
    static constexpr std::size_t chunks_per_worker = 2;

    explicit pool_engine(const task_pool_options& options);
    ~pool_engine();
    pool_engine(const pool_engine&) = delete;
    pool_engine& operator=(const pool_engine&) = delete;

    [[nodiscard]] std::uint32_t size() const noexcept
    {
        return static_cast<std::uint32_t>(slots_.size());
    }
    [[nodiscard]] std::uint64_t new_key() { return next_key_.fetch_add(1) + 1; }

    /// Queues `chunks` of `s` (their messages are moved out). Throws
    /// errc::invalid_operation once closed.
    void submit(const std::shared_ptr<submission>& s, const std::string& task_name,
                std::vector<chunk_message>& chunks);

    void close();
    void join(timeout limit);
    void terminate();

private:
    struct in_flight {
        std::shared_ptr<submission> owner;
        std::size_t chunk = 0;
        std::string task_name;
        std::uint32_t slot = 0;
    };
    struct queued {
        std::shared_ptr<submission> owner;
        std::size_t chunk = 0;
        std::uint64_t key = 0;
        std::string task_name;
        bytes message;
    };
    // An outcome to deliver once mutex_ is released.
    struct completion {
        std::shared_ptr<submission> owner;
        std::size_t chunk = 0;
        chunk_outcome outcome;
    };
    struct slot {
        channels::channel input;
        std::deque<std::uint64_t> held;  // keys of chunks sent to it, oldest first
        puid_t puid = 0;                 // the worker that said hello last
        std::uint32_t node = 0;
        std::string hostname;
    };

    [[nodiscard]] std::uint32_t worker_count(const task_pool_options& options) const;
    void start_workers(const task_pool_options& options);
    void await_hellos(std::chrono::milliseconds limit);

    // Sends as much of the backlog as the slots take. Caller holds mutex_.
    void dispatch_locked();
    // After chunks left flight: dispatch_locked(), and wake join() if all is done. Caller
    // holds mutex_.
    void refill_locked();
    // Sends `q` to `slot_index`; false when the slot's channel or the message memory has no
    // room now. Caller holds mutex_.
    bool send_locked(std::uint32_t slot_index, queued& q);

    void collect();
    void handle(decoder& in);
    void on_hello(const tasks::hello_message& h);
    void on_result(std::uint64_t key, chunk_outcome outcome);
    void check_deaths();
    void fail_all(errc code, const std::string& why);
    void stop_collector();
    [[nodiscard]] std::string worker_name(std::uint32_t slot_index) const;

    pool::pool memory_;
    channels::channel results_;
    std::vector<slot> slots_;
    std::unique_ptr<process_group> group_;
    std::mutex group_mutex_;  // process_group is one-thread-at-a-time
    std::size_t exits_seen_ = 0;  // exit_status() entries handled (collector thread)

    std::mutex mutex_;  // guards the rest
    std::condition_variable idle_;  // signalled when nothing is queued or in flight
    std::unordered_map<std::uint64_t, in_flight> in_flight_;
    std::deque<queued> backlog_;
    struct worker_ref {
        std::uint32_t slot = 0;
        std::string hostname;
    };
    std::map<puid_t, worker_ref> worker_of_;  // workers that said hello, until seen dead
    std::uint32_t cursor_ = 0;  // where the search for a free slot starts (round robin)
    std::atomic<std::uint64_t> next_key_{0};
    bool closed_ = false;
    bool stopped_ = false;

    std::atomic<bool> stop_collecting_{false};
    std::thread collector_;
};

}  // namespace dragonx::detail
