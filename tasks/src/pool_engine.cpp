// pool_engine.cpp - workers, dispatch and the collector thread of a task_pool.
#include "pool_engine.hpp"

#include <unistd.h>

#include <algorithm>
#include <climits>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/log.hpp>
#include <dragonx/runtime/runtime.hpp>
#include <dragonx/runtime/system.hpp>

#include "protocol.hpp"

namespace dragonx::detail {

namespace {

using tasks::message_kind;

// How often the collector looks for dead workers while work is in flight.
constexpr auto death_check_interval = std::chrono::milliseconds(100);
// A chunk message up to this size travels in its channel slot; larger ones in a block.
constexpr std::uint32_t message_slot_bytes = 4096;
// How long join() lets workers finish after their stop message before it stops them.
constexpr auto stop_grace = std::chrono::seconds(10);
// The collector is not on the critical path while workers hold queued chunks: it spins
// little, so that it does not take the workers' CPUs on small machines.
constexpr wait_policy collector_wait{.spin = std::chrono::microseconds(1),
                                     .yield = std::chrono::microseconds(20)};
// How long killed workers may take to be reaped.
constexpr auto kill_grace = std::chrono::seconds(2);

std::string this_executable()
{
    std::string path(PATH_MAX, '\0');
    const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size());
    if (n <= 0) {
        throw error(std::error_code(errno, std::system_category()),
                    "task_pool: cannot find this executable (/proc/self/exe)");
    }
    path.resize(static_cast<std::size_t>(n));
    return path;
}

std::string describe_exit(int code)
{
    return code > 128 ? "was killed by signal " + std::to_string(code - 128)
                      : "exited with code " + std::to_string(code);
}

}  // namespace

pool_engine::pool_engine(const task_pool_options& options)
{
    auto& rt = runtime::current();
    const std::uint32_t workers = worker_count(options);
    memory_ = pool::pool::create({.size = options.message_memory});
    rt.register_shm(memory_.name());
    results_ = channels::channel::create(
        memory_, {.capacity = std::max<std::uint32_t>(64, workers * 4),
                  .block_size = message_slot_bytes});
    slots_.resize(workers);
    for (auto& s : slots_) {
        s.input = channels::channel::create(
            memory_, {.capacity = chunks_per_worker + 2, .block_size = message_slot_bytes});
    }
    start_workers(options);
    try {
        await_hellos(options.start_timeout);
    } catch (...) {
        group_->kill();
        group_->close(kill_grace);
        throw;
    }
    collector_ = std::thread([this] { collect(); });
}

pool_engine::~pool_engine()
{
    if (!stopped_) {
        try {
            terminate();
        } catch (const std::exception& e) {
            log::get("tasks").warn("task_pool: terminating in destructor: {}", e.what());
        }
    }
    if (collector_.joinable()) {
        stop_collector();
    }
}

std::uint32_t pool_engine::worker_count(const task_pool_options& options) const
{
    if (options.processes && options.processes_per_policy) {
        throw_error(errc::invalid_argument,
                    "task_pool: set processes or processes_per_policy, not both");
    }
    if (options.policies.size() > 1 && !options.processes_per_policy) {
        throw_error(errc::invalid_argument,
                    "task_pool: a list of policies needs processes_per_policy");
    }
    if (options.processes_per_policy && options.policies.empty()) {
        throw_error(errc::invalid_argument,
                    "task_pool: processes_per_policy needs at least one policy");
    }
    std::uint64_t n = 0;
    if (options.processes_per_policy) {
        n = std::uint64_t{*options.processes_per_policy} * options.policies.size();
    } else if (options.processes) {
        n = *options.processes;
    } else {
        const auto sys = system::current();
        for (const auto& node : sys.nodes()) {
            n += std::max<std::size_t>(node.cpus.size(), 1);
        }
    }
    if (n == 0 || n > 65536) {
        throw_error(errc::invalid_argument,
                    fmt::format("task_pool: {} workers (must be 1 to 65536)", n));
    }
    return static_cast<std::uint32_t>(n);
}

void pool_engine::start_workers(const task_pool_options& options)
{
    group_options g{.restart = true, .ignore_error_on_exit = true};
    if (options.policies.size() == 1) {
        g.where = options.policies.front();
    }
    group_ = std::make_unique<process_group>(g);
    const std::string exe = options.worker_exe.empty() ? this_executable() : options.worker_exe;
    const std::string creator = std::to_string(runtime::current().puid());
    const std::string init_name = options.initializer ? options.initializer->name : "";
    const std::string init_args =
        options.initializer ? tasks::to_hex(options.initializer->args) : "";
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
        process_template t{.exe = exe, .args = options.worker_args, .env = options.env};
        t.env[tasks::worker_env::slot] = std::to_string(i);
        t.env[tasks::worker_env::creator] = creator;
        t.env[tasks::worker_env::input] = slots_[i].input.descriptor();
        t.env[tasks::worker_env::results] = results_.descriptor();
        t.env[tasks::worker_env::init_name] = init_name;
        t.env[tasks::worker_env::init_args] = init_args;
        if (options.policies.size() > 1) {
            t.where = options.policies.at(i / *options.processes_per_policy);
        }
        group_->add(1, t);
    }
    group_->start();
}

void pool_engine::await_hellos(std::chrono::milliseconds limit)
{
    const auto until = deadline::after(limit);
    std::vector<std::byte> scratch(message_slot_bytes);
    std::set<std::uint32_t> up;
    while (up.size() < slots_.size()) {
        std::optional<channels::message> m;
        try {
            m = results_.take(scratch, until.remaining());
        } catch (const error& e) {
            if (!e.is(errc::timeout)) {
                throw;
            }
            std::string exits;
            for (const auto& [puid, code] : group_->exit_status()) {
                exits += fmt::format("{}puid {} {}", exits.empty() ? "" : ", ", puid,
                                     describe_exit(code));
            }
            throw_error(errc::timeout,
                        fmt::format("task_pool: {} of {} workers did not come up within {} ms"
                                    " (exits: {}); does the worker program call"
                                    " serve_tasks_if_worker()?",
                                    slots_.size() - up.size(), slots_.size(), limit.count(),
                                    exits.empty() ? "none" : exits));
        }
        decoder in(m->bytes(), "task pool message");
        if (tasks::read_kind(in) != message_kind::hello) {
            throw_error(errc::malformed_message, "task_pool: a worker spoke before its hello");
        }
        const auto h = codec<tasks::hello_message>::decode(in);
        on_hello(h);
        up.insert(h.slot);
    }
}

void pool_engine::submit(const std::shared_ptr<submission>& s, const std::string& task_name,
                         std::vector<chunk_message>& chunks)
{
    std::lock_guard lock(mutex_);
    if (closed_) {
        throw_error(errc::invalid_operation, "task_pool: closed, no more submissions");
    }
    for (auto& c : chunks) {
        backlog_.push_back({s, c.chunk, c.key, task_name, std::move(c.message)});
    }
    dispatch_locked();
}

void pool_engine::dispatch_locked()
{
    while (!backlog_.empty()) {
        std::optional<std::uint32_t> best;
        std::size_t least = chunks_per_worker;
        for (std::size_t n = 0; n < slots_.size(); ++n) {
            const auto i = static_cast<std::uint32_t>((cursor_ + n) % slots_.size());
            if (slots_[i].held.size() < least) {
                best = i;
                least = slots_[i].held.size();
            }
        }
        if (!best) {
            return;
        }
        if (!send_locked(*best, backlog_.front())) {
            if (in_flight_.empty()) {
                // Nothing in flight will free message memory: it can never fit.
                auto q = std::move(backlog_.front());
                backlog_.pop_front();
                q.owner->complete(
                    q.chunk, {.code = errc::pool_full,
                              .message = fmt::format("task_pool: a chunk of {} bytes does not "
                                                     "fit the pool's message memory",
                                                     q.message.size())});
                continue;
            }
            return;
        }
        cursor_ = (*best + 1) % static_cast<std::uint32_t>(slots_.size());
        backlog_.pop_front();
    }
}

void pool_engine::refill_locked()
{
    dispatch_locked();
    if (in_flight_.empty() && backlog_.empty()) {
        idle_.notify_all();
    }
}

bool pool_engine::send_locked(std::uint32_t slot_index, queued& q)
{
    auto& s = slots_[slot_index];
    if (!s.input.try_send(q.message)) {
        return false;
    }
    s.held.push_back(q.key);
    in_flight_.emplace(q.key, in_flight{q.owner, q.chunk, std::move(q.task_name), slot_index});
    return true;
}

void pool_engine::collect()
{
    std::vector<std::byte> scratch(message_slot_bytes);
    results_.set_wait_policy(collector_wait);
    auto last_check = std::chrono::steady_clock::now();
    while (!stop_collecting_.load()) {
        try {
            auto m = results_.take(scratch, death_check_interval);
            decoder in(m.bytes(), "task pool message");
            handle(in);
        } catch (const error& e) {
            if (!e.is(errc::timeout)) {
                log::get("tasks").warn("task_pool: {}", e.what());
            }
        }
        const auto now = std::chrono::steady_clock::now();
        if (now - last_check >= death_check_interval) {
            last_check = now;
            bool busy = false;
            {
                std::lock_guard lock(mutex_);
                busy = !in_flight_.empty();
            }
            if (busy) {
                try {
                    check_deaths();
                } catch (const error& e) {
                    log::get("tasks").warn("task_pool: looking for dead workers: {}",
                                           e.what());
                }
            }
        }
    }
}

void pool_engine::handle(decoder& in)
{
    switch (tasks::read_kind(in)) {
    case message_kind::hello:
        on_hello(codec<tasks::hello_message>::decode(in));
        return;
    case message_kind::done: {
        const auto key = in.value<std::uint64_t>();
        chunk_outcome outcome{.ok = true, .count = in.value<std::uint32_t>()};
        const auto results = in.chunk();
        outcome.results.assign(results.begin(), results.end());
        on_result(key, std::move(outcome));
        return;
    }
    case message_kind::failed: {
        const auto f = codec<tasks::failed_message>::decode(in);
        on_result(f.key, {.code = errc::task_failed,
                          .message = fmt::format("call {} of its chunk: {}", f.index + 1,
                                                 f.message)});
        return;
    }
    case message_kind::wake:
        return;
    case message_kind::run:
    case message_kind::stop:
        break;
    }
    in.fail("a worker-bound message on the result channel");
}

void pool_engine::on_hello(const tasks::hello_message& h)
{
    bool replaced = false;
    {
        std::lock_guard lock(mutex_);
        if (h.slot >= slots_.size()) {
            log::get("tasks").warn("task_pool: hello from unknown worker slot {}", h.slot);
            return;
        }
        auto& s = slots_[h.slot];
        replaced = s.puid != 0 && s.puid != h.puid;
        s.puid = h.puid;
        s.node = h.node;
        s.hostname = h.hostname;
        worker_of_[h.puid] = {h.slot, h.hostname};
    }
    if (!h.init_error.empty()) {
        log::get("tasks").warn("task_pool: worker {} (puid {}): {}", h.slot, h.puid,
                               h.init_error);
    }
    if (replaced) {
        check_deaths();
    }
}

void pool_engine::on_result(std::uint64_t key, chunk_outcome outcome)
{
    std::shared_ptr<submission> owner;
    std::size_t chunk = 0;
    {
        std::lock_guard lock(mutex_);
        const auto it = in_flight_.find(key);
        if (it == in_flight_.end()) {
            return;  // failed already: its worker was given up for dead
        }
        auto& held = slots_[it->second.slot].held;
        held.erase(std::remove(held.begin(), held.end(), key), held.end());
        if (!outcome.ok) {
            outcome.message = fmt::format("task '{}' failed on {}: {}", it->second.task_name,
                                          worker_name(it->second.slot), outcome.message);
        }
        owner = std::move(it->second.owner);
        chunk = it->second.chunk;
        in_flight_.erase(it);
        refill_locked();
    }
    owner->complete(chunk, std::move(outcome));
}

void pool_engine::check_deaths()
{
    std::vector<std::pair<puid_t, int>> exits;
    {
        std::lock_guard lock(group_mutex_);
        exits = group_->exit_status();
    }
    std::vector<completion> lost;
    {
        std::lock_guard lock(mutex_);
        for (; exits_seen_ < exits.size(); ++exits_seen_) {
            const auto [puid, code] = exits[exits_seen_];
            const auto known = worker_of_.find(puid);
            if (known == worker_of_.end()) {
                continue;  // died before its hello: what its slot holds waits for the next
            }
            const auto [slot_index, hostname] = known->second;
            worker_of_.erase(known);
            auto& s = slots_[slot_index];
            if (s.held.empty()) {
                continue;
            }
            const auto key = s.held.front();
            s.held.pop_front();
            auto it = in_flight_.find(key);
            lost.push_back(
                {std::move(it->second.owner), it->second.chunk,
                 chunk_outcome{.code = errc::worker_lost,
                               .message = fmt::format("task '{}' lost: worker {} (puid {} on {}) "
                                                      "{} while running it; the worker is "
                                                      "replaced",
                                                      it->second.task_name, slot_index, puid,
                                                      hostname, describe_exit(code))}});
            in_flight_.erase(it);
        }
        refill_locked();
    }
    for (auto& c : lost) {
        c.owner->complete(c.chunk, std::move(c.outcome));
    }
}

void pool_engine::close()
{
    std::lock_guard lock(mutex_);
    closed_ = true;
}

void pool_engine::join(timeout limit)
{
    const auto until = deadline::after(limit);
    {
        std::unique_lock lock(mutex_);
        if (!closed_) {
            throw_error(errc::invalid_operation, "task_pool: join() before close()");
        }
        if (stopped_) {
            return;
        }
        const auto idle = [&] { return in_flight_.empty() && backlog_.empty(); };
        if (until.is_forever()) {
            idle_.wait(lock, idle);
        } else if (!idle_.wait_for(lock, *until.remaining(), idle)) {
            throw_error(errc::timeout, "task_pool: join: tasks still running at the limit");
        }
    }
    stop_collector();
    {
        std::lock_guard lock(group_mutex_);
        group_->stop_restart();
    }
    {
        std::lock_guard lock(mutex_);
        encoder out;
        tasks::write_kind(out, message_kind::stop);
        const auto stop = out.to_bytes();
        for (auto& s : slots_) {
            if (!s.input.try_send(stop)) {
                log::get("tasks").warn("task_pool: could not send a worker its stop");
            }
        }
    }
    {
        std::lock_guard lock(group_mutex_);
        try {
            group_->join(stop_grace);
        } catch (const error& e) {
            if (!e.is(errc::timeout)) {
                throw;
            }
            log::get("tasks").warn("task_pool: workers did not stop in {} s: stopping them",
                                   stop_grace.count());
        }
        group_->close(std::chrono::seconds(1));
    }
    std::lock_guard lock(mutex_);
    stopped_ = true;
}

void pool_engine::terminate()
{
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
        if (stopped_) {
            return;
        }
    }
    stop_collector();
    {
        std::lock_guard lock(group_mutex_);
        group_->kill();
        group_->close(kill_grace);
    }
    fail_all(errc::invalid_operation, "task_pool: terminated before the task finished");
    std::lock_guard lock(mutex_);
    stopped_ = true;
}

void pool_engine::fail_all(errc code, const std::string& why)
{
    std::vector<completion> pending;
    {
        std::lock_guard lock(mutex_);
        for (auto& [key, f] : in_flight_) {
            pending.push_back({std::move(f.owner), f.chunk, {.code = code, .message = why}});
        }
        for (auto& q : backlog_) {
            pending.push_back({std::move(q.owner), q.chunk, {.code = code, .message = why}});
        }
        in_flight_.clear();
        backlog_.clear();
        for (auto& s : slots_) {
            s.held.clear();
        }
        idle_.notify_all();
    }
    for (auto& c : pending) {
        c.owner->complete(c.chunk, std::move(c.outcome));
    }
}

void pool_engine::stop_collector()
{
    if (!collector_.joinable()) {
        return;
    }
    stop_collecting_.store(true);
    encoder out;
    tasks::write_kind(out, message_kind::wake);
    (void)results_.try_send(out.to_bytes());
    collector_.join();
}

std::string pool_engine::worker_name(std::uint32_t slot_index) const
{
    const auto& s = slots_.at(slot_index);
    return fmt::format("worker {} (puid {} on {})", slot_index, s.puid, s.hostname);
}

}  // namespace dragonx::detail
