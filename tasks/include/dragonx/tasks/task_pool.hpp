// task_pool.hpp - dragonx::task_pool: run registered functions over many inputs on worker
// processes spread over the run (the C++ take on DragonHPC's native Pool, spec §6.4).
//
//   dragonx::task_registry registry;
//   const auto square = registry.add("square", [](int x) { return x * x; });
//   int main() {
//       if (auto code = dragonx::serve_tasks_if_worker(registry)) return *code;  // worker.hpp
//       dragonx::task_pool pool({.processes = 4});
//       std::vector<int> out = pool.map(square, std::vector<int>{1, 2, 3});     // {1, 4, 9}
//       auto r = pool.apply_async(square, 7);  r.get(std::chrono::seconds(5));   // 49
//       for (int v : pool.imap_unordered(square, inputs)) { ... }               // as they come
//       pool.close(); pool.join();
//   }
//
// Notes:
// - Workers are processes of one process_group (restart on, errors ignored): the same
//   executable as the creator (started with DRAGONX_TASK_* variables, which
//   serve_tasks_if_worker() recognises) or `worker_exe`. Default count: processes_per_policy
//   per policy when policies are given, else one per CPU of every node of the run.
// - Work travels in chunks (`chunksize` tasks per message; map's default is
//   ceil(n / (4 × workers)), imap's is 1) through channels: one input channel per worker and
//   one result channel, all in a pool of the creator's node. Each worker holds at most two
//   chunks (one running, one queued); the rest wait in the creator until a worker frees up.
// - A task that throws: its chunk fails, and get() (or the stream's next()) throws
//   dragonx::error(errc::task_failed) carrying the exception's message.
// - A worker that dies (even SIGKILL) is replaced by the group; the chunk it held longest -
//   the one it was running - fails with errc::worker_lost naming the worker, and its other
//   chunk runs on the replacement. Deaths are noticed within ~0.1 s.
// - Pools nest (a task may create a pool) and several pools may live at once.
// - close() refuses new work; join() waits for the submitted work, then stops the workers.
//   terminate() stops them at once and fails what was pending. The destructor terminates a
//   pool that was not joined.
// - Thread-safe: several threads may submit at once. Results are separate objects and may be
//   waited on from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/deadline.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/policy/policy.hpp>
#include <dragonx/tasks/registry.hpp>

namespace dragonx {

struct task_pool_options {
    /// Worker processes. Unset: processes_per_policy × policies.size() when both are given,
    /// else one per CPU of every node. Setting it with processes_per_policy is an error.
    std::optional<std::uint32_t> processes;
    /// Placement: none (the global policy: round robin over the nodes), one policy for every
    /// worker, or several with processes_per_policy workers each (e.g. gpu_policies()).
    std::vector<policy> policies;
    std::optional<std::uint32_t> processes_per_policy;
    /// Run once by each worker before its first task (also by replacements).
    std::optional<task_call> initializer;
    /// The worker program; empty: this executable. It must call serve_tasks_if_worker().
    std::string worker_exe;
    std::vector<std::string> worker_args;
    /// Set in the workers' environment (on top of their node's).
    std::map<std::string, std::string> env;
    /// How long the constructor waits for every worker to come up.
    std::chrono::milliseconds start_timeout = std::chrono::seconds(60);
    /// Shared memory for the messages in flight (inputs and results of chunks that exceed a
    /// channel slot travel in blocks of it).
    std::uint64_t message_memory = std::uint64_t{64} << 20;
};

namespace detail {

/// What came back for one chunk.
struct chunk_outcome {
    bool ok = false;
    std::uint32_t count = 0;  // tasks in the chunk
    bytes results;            // ok: `count` encoded results, back to back
    errc code = errc::ok;     // failed: task_failed, worker_lost, ...
    std::string message;
};

/// The chunks of one submission (an apply_async, a map, an imap) and their outcomes, filled
/// in by the pool's collector thread and waited for by results. Thread-safe.
class submission {
public:
    explicit submission(std::size_t chunks) : outcomes_(chunks), done_(chunks, false) {}

    /// Records chunk `index`'s outcome (the first one wins) and wakes waiters.
    void complete(std::size_t index, chunk_outcome outcome);
    /// Waits up to `limit` until every chunk is done; false at the limit.
    bool wait_all(timeout limit);
    /// Waits up to `limit` until chunk `index` is done; false at the limit.
    bool wait_chunk(std::size_t index, timeout limit);
    /// Waits up to `limit` for the `n`-th chunk to complete (0-based, in completion order)
    /// and returns its index; nullopt at the limit.
    std::optional<std::size_t> wait_completed(std::size_t n, timeout limit);
    [[nodiscard]] bool all_done() const;
    [[nodiscard]] std::size_t chunks() const noexcept { return outcomes_.size(); }
    /// A done chunk's outcome (stable once done).
    [[nodiscard]] const chunk_outcome& outcome(std::size_t index) const;
    /// Throws the first failed chunk's error; call once all are done.
    void throw_if_failed() const;

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t chunk_waiters_ = 0;  // waiters for single chunks: woken on every completion
    std::vector<chunk_outcome> outcomes_;
    std::vector<bool> done_;
    std::vector<std::size_t> completion_order_;
};

/// One chunk's message, ready to send: `key` is in its run header.
struct chunk_message {
    std::size_t chunk = 0;
    std::uint64_t key = 0;
    bytes message;
};

/// Starts the message of a chunk: the run header that the encoded arguments follow.
void write_run_header(encoder& out, std::uint64_t key, const std::string& task_name,
                      std::uint32_t count);

/// Decodes the `count` results of a done chunk into `out`.
template <class R>
void decode_results(const chunk_outcome& outcome, std::vector<R>& out)
{
    decoder in(outcome.results, "task result");
    for (std::uint32_t i = 0; i < outcome.count; ++i) {
        out.push_back(codec<R>::decode(in));
    }
    in.expect_end();
}

class pool_engine;

}  // namespace detail

/// The result of apply_async (T = the task's result) or map_async (T = a vector of them).
template <class T>
class async_result {
public:
    /// Waits up to `limit` and returns the result. Throws errc::timeout, or the task's error
    /// (errc::task_failed, errc::worker_lost, ...).
    T get(timeout limit = forever)
    {
        if (!wait(limit)) {
            throw_error(errc::timeout, "task_pool: result not ready in time");
        }
        submission_->throw_if_failed();
        return decode_(*submission_);
    }
    /// Waits up to `limit`; true once ready.
    bool wait(timeout limit = forever) { return submission_->wait_all(limit); }
    [[nodiscard]] bool ready() const { return submission_->all_done(); }
    /// Whether it completed without error. Throws errc::invalid_operation if not ready.
    [[nodiscard]] bool successful() const
    {
        if (!ready()) {
            throw_error(errc::invalid_operation, "task_pool: successful() before ready()");
        }
        try {
            submission_->throw_if_failed();
            return true;
        } catch (const error&) {
            return false;
        }
    }

private:
    friend class task_pool;
    using decoder_fn = T (*)(const detail::submission&);
    async_result(std::shared_ptr<detail::submission> s, decoder_fn decode)
        : submission_(std::move(s)), decode_(decode)
    {
    }
    std::shared_ptr<detail::submission> submission_;
    decoder_fn decode_;
};

/// Results of imap (in input order) or imap_unordered (as they complete), one by one.
template <class R>
class result_stream {
public:
    /// The next result, waiting up to `limit`; nullopt once every result was returned.
    /// Throws errc::timeout, or the error of the chunk the next result belongs to.
    std::optional<R> next(timeout limit = forever)
    {
        while (ready_.empty()) {
            if (consumed_ == submission_->chunks()) {
                return std::nullopt;
            }
            std::size_t index = consumed_;
            if (ordered_) {
                if (!submission_->wait_chunk(index, limit)) {
                    throw_error(errc::timeout, "task_pool: next result not ready in time");
                }
            } else {
                const auto completed = submission_->wait_completed(consumed_, limit);
                if (!completed) {
                    throw_error(errc::timeout, "task_pool: next result not ready in time");
                }
                index = *completed;
            }
            ++consumed_;
            const auto& outcome = submission_->outcome(index);
            if (!outcome.ok) {
                throw error(outcome.code, outcome.message);
            }
            std::vector<R> chunk;
            detail::decode_results(outcome, chunk);
            for (auto& r : chunk) {
                ready_.push_back(std::move(r));
            }
        }
        R r = std::move(ready_.front());
        ready_.pop_front();
        return r;
    }

    /// Input iteration over next(forever).
    class iterator {
    public:
        using value_type = R;
        using difference_type = std::ptrdiff_t;
        R& operator*() { return *current_; }
        iterator& operator++()
        {
            current_ = stream_->next();
            return *this;
        }
        void operator++(int) { ++*this; }
        bool operator==(std::default_sentinel_t) const { return !current_; }

    private:
        friend class result_stream;
        explicit iterator(result_stream* s) : stream_(s), current_(s->next()) {}
        result_stream* stream_;
        std::optional<R> current_;
    };
    iterator begin() { return iterator(this); }
    std::default_sentinel_t end() { return {}; }

private:
    friend class task_pool;
    result_stream(std::shared_ptr<detail::submission> s, bool ordered)
        : submission_(std::move(s)), ordered_(ordered)
    {
    }
    std::shared_ptr<detail::submission> submission_;
    bool ordered_;
    std::size_t consumed_ = 0;  // chunks taken
    std::deque<R> ready_;
};

class task_pool {
public:
    /// Starts the workers and waits until each has come up (and run the initializer).
    /// Throws errc::invalid_argument for inconsistent options, errc::timeout when workers do
    /// not come up within start_timeout, errc::no_runtime outside a run.
    explicit task_pool(task_pool_options options = {});
    ~task_pool();
    task_pool(const task_pool&) = delete;
    task_pool& operator=(const task_pool&) = delete;

    /// Worker processes.
    [[nodiscard]] std::uint32_t size() const noexcept;

    /// Runs `t(args...)` on a worker.
    template <class R, class... A>
    async_result<R> apply_async(const task<R(A...)>& t, const std::type_identity_t<A>&... args)
    {
        auto s = std::make_shared<detail::submission>(1);
        encoder out;
        const std::uint64_t key = new_key();
        detail::write_run_header(out, key, t.name(), 1);
        task<R(A...)>::encode_args(out, args...);
        std::vector<detail::chunk_message> one;
        one.push_back({0, key, out.to_bytes()});
        submit(s, t.name(), one);
        return async_result<R>(std::move(s), &decode_single<R>);
    }

    /// Runs `t` over every element of `inputs` (a sized range), `chunksize` per message
    /// (0: the default); the results in input order. (The map family needs a result: run
    /// void tasks with apply_async.)
    template <class R, class A, class Range>
        requires(!std::is_void_v<R>)
    async_result<std::vector<R>> map_async(const task<R(A)>& t, const Range& inputs,
                                           std::size_t chunksize = 0)
    {
        auto s = submit_range(t.name(), inputs, chunk_size_for(std::ranges::size(inputs),
                                                               chunksize),
                              [](encoder& out, const A& a) { codec<A>::encode(a, out); });
        return async_result<std::vector<R>>(std::move(s), &decode_all<R>);
    }
    template <class R, class A, class Range>
        requires(!std::is_void_v<R>)
    std::vector<R> map(const task<R(A)>& t, const Range& inputs, std::size_t chunksize = 0,
                       timeout limit = forever)
    {
        return map_async(t, inputs, chunksize).get(limit);
    }

    /// As map, with each element a std::tuple of the task's arguments.
    template <class R, class... A, class Range>
        requires(!std::is_void_v<R>)
    async_result<std::vector<R>> starmap_async(const task<R(A...)>& t, const Range& inputs,
                                               std::size_t chunksize = 0)
    {
        auto s = submit_range(
            t.name(), inputs, chunk_size_for(std::ranges::size(inputs), chunksize),
            [](encoder& out, const std::tuple<A...>& args) {
                std::apply([&](const A&... a) { task<R(A...)>::encode_args(out, a...); }, args);
            });
        return async_result<std::vector<R>>(std::move(s), &decode_all<R>);
    }
    template <class R, class... A, class Range>
        requires(!std::is_void_v<R>)
    std::vector<R> starmap(const task<R(A...)>& t, const Range& inputs,
                           std::size_t chunksize = 0, timeout limit = forever)
    {
        return starmap_async(t, inputs, chunksize).get(limit);
    }

    /// Results in input order, each as soon as it and those before it are done.
    template <class R, class A, class Range>
        requires(!std::is_void_v<R>)
    result_stream<R> imap(const task<R(A)>& t, const Range& inputs, std::size_t chunksize = 1)
    {
        return result_stream<R>(submit_unary(t, inputs, chunksize), true);
    }
    /// Results in completion order.
    template <class R, class A, class Range>
        requires(!std::is_void_v<R>)
    result_stream<R> imap_unordered(const task<R(A)>& t, const Range& inputs,
                                    std::size_t chunksize = 1)
    {
        return result_stream<R>(submit_unary(t, inputs, chunksize), false);
    }

    /// No more submissions (errc::invalid_operation after this).
    void close();
    /// Waits up to `limit` for every submitted task, then stops the workers (after close();
    /// errc::invalid_operation before). Throws errc::timeout.
    void join(timeout limit = forever);
    /// Stops the workers now; pending tasks fail with errc::invalid_operation.
    void terminate();

private:
    [[nodiscard]] std::uint64_t new_key();
    // Chunks are handed to the engine this many at a time.
    static constexpr std::size_t submit_batch = 64;
    void submit(const std::shared_ptr<detail::submission>& s, const std::string& task_name,
                std::vector<detail::chunk_message>& chunks);
    [[nodiscard]] std::size_t chunk_size_for(std::size_t n, std::size_t requested) const;

    template <class R, class A, class Range>
    std::shared_ptr<detail::submission> submit_unary(const task<R(A)>& t, const Range& inputs,
                                                     std::size_t chunksize)
    {
        return submit_range(t.name(), inputs, chunksize == 0 ? 1 : chunksize,
                            [](encoder& out, const A& a) { codec<A>::encode(a, out); });
    }

    // One message per `chunksize` elements of `inputs`, each encoded by `encode_one`.
    template <class Range, class EncodeOne>
    std::shared_ptr<detail::submission> submit_range(const std::string& task_name,
                                                     const Range& inputs,
                                                     std::size_t chunksize,
                                                     EncodeOne encode_one)
    {
        const std::size_t n = std::ranges::size(inputs);
        const std::size_t chunks = (n + chunksize - 1) / chunksize;
        auto s = std::make_shared<detail::submission>(chunks);
        // Elements a range makes on the fly are kept alive until their chunk is written
        // out: codecs may refer to their bytes.
        using element = std::remove_cvref_t<std::ranges::range_reference_t<const Range>>;
        std::vector<element> alive;
        alive.reserve(std::min(chunksize, n));
        encoder out;
        std::vector<detail::chunk_message> batch;
        auto it = std::ranges::begin(inputs);
        for (std::size_t c = 0; c < chunks; ++c) {
            const auto count = static_cast<std::uint32_t>(std::min(chunksize, n - c * chunksize));
            out.clear();
            alive.clear();
            const std::uint64_t key = new_key();
            detail::write_run_header(out, key, task_name, count);
            for (std::uint32_t i = 0; i < count; ++i, ++it) {
                if constexpr (std::is_lvalue_reference_v<
                                  std::ranges::range_reference_t<const Range>>) {
                    encode_one(out, *it);
                } else {
                    alive.push_back(*it);
                    encode_one(out, alive.back());
                }
            }
            batch.push_back({c, key, out.to_bytes()});
            if (batch.size() == submit_batch || c + 1 == chunks) {
                submit(s, task_name, batch);
                batch.clear();
            }
        }
        return s;
    }

    template <class R>
    static R decode_single(const detail::submission& s)
    {
        if constexpr (!std::is_void_v<R>) {
            std::vector<R> out;
            detail::decode_results(s.outcome(0), out);
            if (out.size() != 1) {
                throw_error(errc::malformed_message, "task result: expected one value");
            }
            return std::move(out.front());
        }
    }
    template <class R>
    static std::vector<R> decode_all(const detail::submission& s)
    {
        std::vector<R> out;
        for (std::size_t c = 0; c < s.chunks(); ++c) {
            detail::decode_results(s.outcome(c), out);
        }
        return out;
    }

    std::unique_ptr<detail::pool_engine> engine_;
};

}  // namespace dragonx
