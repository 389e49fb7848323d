// task_pool.cpp - the untyped parts of task_pool: submissions and the calls into the engine.
#include <dragonx/tasks/task_pool.hpp>

#include "pool_engine.hpp"

namespace dragonx {

namespace detail {

void submission::complete(std::size_t index, chunk_outcome outcome)
{
    {
        std::lock_guard lock(mutex_);
        if (done_.at(index)) {
            return;
        }
        outcomes_[index] = std::move(outcome);
        done_[index] = true;
        completion_order_.push_back(index);
        if (chunk_waiters_ == 0 && completion_order_.size() < outcomes_.size()) {
            return;  // nobody waits for this chunk alone: spare the wake-up
        }
    }
    changed_.notify_all();
}

namespace {

template <class Ready>
bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                timeout limit, Ready ready)
{
    const auto until = deadline::after(limit);
    if (until.is_forever()) {
        cv.wait(lock, ready);
        return true;
    }
    return cv.wait_for(lock, *until.remaining(), ready);
}

}  // namespace

bool submission::wait_all(timeout limit)
{
    std::unique_lock lock(mutex_);
    return wait_until(changed_, lock, limit,
                      [&] { return completion_order_.size() == outcomes_.size(); });
}

bool submission::wait_chunk(std::size_t index, timeout limit)
{
    std::unique_lock lock(mutex_);
    ++chunk_waiters_;
    const bool done = wait_until(changed_, lock, limit, [&] { return bool(done_.at(index)); });
    --chunk_waiters_;
    return done;
}

std::optional<std::size_t> submission::wait_completed(std::size_t n, timeout limit)
{
    std::unique_lock lock(mutex_);
    ++chunk_waiters_;
    const bool done =
        wait_until(changed_, lock, limit, [&] { return completion_order_.size() > n; });
    --chunk_waiters_;
    if (!done) {
        return std::nullopt;
    }
    return completion_order_[n];
}

bool submission::all_done() const
{
    std::lock_guard lock(mutex_);
    return completion_order_.size() == outcomes_.size();
}

const chunk_outcome& submission::outcome(std::size_t index) const
{
    std::lock_guard lock(mutex_);
    if (!done_.at(index)) {
        throw_error(errc::internal, "task_pool: outcome of a chunk not done");
    }
    return outcomes_[index];
}

void submission::throw_if_failed() const
{
    std::lock_guard lock(mutex_);
    for (const auto index : completion_order_) {
        if (!outcomes_[index].ok) {
            throw error(outcomes_[index].code, outcomes_[index].message);
        }
    }
}

}  // namespace detail

task_pool::task_pool(task_pool_options options)
    : engine_(std::make_unique<detail::pool_engine>(options))
{
}

task_pool::~task_pool() = default;

std::uint32_t task_pool::size() const noexcept { return engine_->size(); }

std::uint64_t task_pool::new_key() { return engine_->new_key(); }

void task_pool::submit(const std::shared_ptr<detail::submission>& s,
                       const std::string& task_name, std::vector<detail::chunk_message>& chunks)
{
    engine_->submit(s, task_name, chunks);
}

std::size_t task_pool::chunk_size_for(std::size_t n, std::size_t requested) const
{
    if (requested != 0) {
        return requested;
    }
    const std::size_t per = 4 * std::size_t{engine_->size()};
    return std::max<std::size_t>(1, (n + per - 1) / per);
}

void task_pool::close() { engine_->close(); }
void task_pool::join(timeout limit) { engine_->join(limit); }
void task_pool::terminate() { engine_->terminate(); }

}  // namespace dragonx
