// submission_test.cpp - detail::submission, where a task_pool's collector thread records the
// outcomes of a submission's chunks and its results wait: completion, the orders, failures,
// timeouts, and waiters in other threads.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/tasks/task_pool.hpp>

#include "support.hpp"

using dragonx::errc;
using dragonx::detail::chunk_outcome;
using dragonx::detail::submission;
using dragonx::test::errc_of;
using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<submission>);
static_assert(!std::is_move_constructible_v<submission>);

namespace {

// A chunk of one int result.
chunk_outcome ok_with(int value)
{
    return {.ok = true, .count = 1, .results = dragonx::encode(value)};
}

chunk_outcome failed_with(errc code, std::string message)
{
    return {.code = code, .message = std::move(message)};
}

int value_of(const submission& s, std::size_t chunk)
{
    std::vector<int> out;
    dragonx::detail::decode_results(s.outcome(chunk), out);
    REQUIRE(out.size() == 1);
    return out.front();
}

// Limits of the threaded tests, far beyond their pace: a waiter that returns late was not
// woken; one still blocked at the watchdog fails the test.
constexpr auto wait_limit = 60s;
constexpr auto watchdog = 10s;

// The watchdog of the threaded tests: runs `waiter` in a thread of its own. A thread still
// blocked when the test gives up on it is detached, so a lost wake-up fails the test instead
// of hanging it; `waiter` must therefore own what it uses (a shared_ptr), and it reports
// through its result only. No Catch2 assertions inside: they are not thread-safe.
template <class R>
class watched_thread {
public:
    explicit watched_thread(std::function<R()> waiter)
    {
        std::packaged_task<R()> task(std::move(waiter));
        done_ = task.get_future();
        thread_ = std::thread(std::move(task));
    }
    watched_thread(const watched_thread&) = delete;
    watched_thread& operator=(const watched_thread&) = delete;
    ~watched_thread()
    {
        if (thread_.joinable()) {
            thread_.detach();
        }
    }

    [[nodiscard]] bool running() const { return done_.wait_for(0s) != std::future_status::ready; }

    /// The waiter's result, with the thread joined, if it returned within `limit`.
    std::optional<R> result_within(std::chrono::milliseconds limit)
    {
        if (done_.wait_for(limit) != std::future_status::ready) {
            return std::nullopt;
        }
        thread_.join();
        return done_.get();
    }

private:
    std::future<R> done_;
    std::thread thread_;
};

}  // namespace

TEST_CASE("a submission is done when every chunk is complete", "[tasks][submission]")
{
    submission s(3);
    CHECK(s.chunks() == 3);
    CHECK_FALSE(s.all_done());
    CHECK_FALSE(s.wait_all(0ns));
    CHECK_FALSE(s.wait_chunk(1, 0ns));
    CHECK(errc_of([&] { (void)s.outcome(1); }) == errc::internal);

    s.complete(1, ok_with(10));
    CHECK(s.wait_chunk(1, 0ns));
    CHECK(value_of(s, 1) == 10);
    CHECK_FALSE(s.wait_chunk(0, 0ns));
    CHECK_FALSE(s.all_done());

    s.complete(0, ok_with(0));
    s.complete(2, ok_with(20));
    CHECK(s.all_done());
    CHECK(s.wait_all(0ns));
    CHECK(s.wait_all(dragonx::forever));
    CHECK(value_of(s, 0) == 0);
    CHECK(value_of(s, 2) == 20);
    CHECK_NOTHROW(s.throw_if_failed());
}

TEST_CASE("an empty submission is done from the start", "[tasks][submission]")
{
    submission s(0);
    CHECK(s.all_done());
    CHECK(s.wait_all(0ns));
    CHECK_FALSE(s.wait_completed(0, 0ns));
    CHECK_NOTHROW(s.throw_if_failed());
}

TEST_CASE("wait_completed gives the chunks in completion order", "[tasks][submission]")
{
    submission s(3);
    s.complete(2, ok_with(2));
    s.complete(0, ok_with(0));
    CHECK(s.wait_completed(0, 0ns) == 2u);
    CHECK(s.wait_completed(1, 0ns) == 0u);
    CHECK_FALSE(s.wait_completed(2, 0ns));
    s.complete(1, ok_with(1));
    CHECK(s.wait_completed(2, 0ns) == 1u);
    CHECK_FALSE(s.wait_completed(3, 0ns));  // there is no fourth
}

TEST_CASE("a chunk's first outcome wins", "[tasks][submission]")
{
    submission s(2);
    s.complete(0, ok_with(7));
    s.complete(0, failed_with(errc::worker_lost, "too late"));
    s.complete(0, ok_with(8));
    CHECK(s.outcome(0).ok);
    CHECK(value_of(s, 0) == 7);
    // Only the first completion counts: chunk 1 is still missing.
    CHECK_FALSE(s.all_done());
    CHECK_FALSE(s.wait_completed(1, 0ns));

    s.complete(1, failed_with(errc::worker_lost, "lost"));
    s.complete(1, ok_with(9));
    CHECK_FALSE(s.outcome(1).ok);
    CHECK(s.outcome(1).code == errc::worker_lost);
}

TEST_CASE("throw_if_failed throws the failed chunk's error", "[tasks][submission]")
{
    submission s(3);
    s.complete(0, ok_with(0));
    s.complete(2, failed_with(errc::task_failed, "task 'square' failed: unlucky input 13"));
    s.complete(1, failed_with(errc::worker_lost, "worker 1 was killed by signal 9"));
    std::string what;
    // The first failure in completion order: chunk 2's.
    CHECK(errc_of([&] { s.throw_if_failed(); }, &what) == errc::task_failed);
    CHECK(what.find("unlucky input 13") != std::string::npos);
}

TEST_CASE("waits give up at their limit", "[tasks][submission]")
{
    submission s(2);
    s.complete(0, ok_with(0));
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(s.wait_all(30ms));
    CHECK_FALSE(s.wait_chunk(1, 30ms));
    CHECK_FALSE(s.wait_completed(1, 30ms));
    CHECK(std::chrono::steady_clock::now() - start >= 90ms);
    CHECK(errc_of([&] { (void)s.wait_all(-1ms); }) == errc::invalid_argument);
}

TEST_CASE("a waiter in another thread is woken by complete()", "[tasks][submission]")
{
    auto s = std::make_shared<submission>(2);

    SECTION("wait_all, forever")
    {
        watched_thread<bool> waiter([s] { return s->wait_all(dragonx::forever); });
        std::this_thread::sleep_for(20ms);
        s->complete(1, ok_with(1));
        std::this_thread::sleep_for(20ms);
        CHECK(waiter.running());  // one chunk of two is not enough
        s->complete(0, ok_with(0));
        CHECK(waiter.result_within(watchdog) == true);
    }
    SECTION("wait_chunk")
    {
        watched_thread<bool> waiter([s] { return s->wait_chunk(1, wait_limit); });
        std::this_thread::sleep_for(20ms);
        s->complete(0, ok_with(0));
        s->complete(1, ok_with(1));
        CHECK(waiter.result_within(watchdog) == true);
    }
    SECTION("wait_completed")
    {
        watched_thread<std::optional<std::size_t>> waiter(
            [s] { return s->wait_completed(0, wait_limit); });
        std::this_thread::sleep_for(20ms);
        s->complete(1, failed_with(errc::task_failed, "boom"));
        const auto first = waiter.result_within(watchdog);
        REQUIRE(first);
        CHECK(*first == 1u);
    }
}
