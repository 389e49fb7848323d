// support.hpp - helpers for multi-process tests: forked children with a watchdog.
//
// Notes:
// - A child runs a function and exits with 0 on success, 1 when it returned false, 2 when
//   it threw. Catch2 assertions must not be used inside a child: check, then return false.
// - wait_for() never blocks past its limit: a child still running then is SIGKILLed and
//   reported as timed out, so a hung child fails the test instead of hanging it.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <optional>
#include <thread>

namespace dragonx::test {

class child {
public:
    /// Forks; the child runs `body` and _exits with its verdict.
    explicit child(const std::function<bool()>& body)
    {
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            int code = 2;
            try {
                code = body() ? 0 : 1;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child %d threw: %s\n", ::getpid(), e.what());
            } catch (...) {
                std::fprintf(stderr, "child %d threw\n", ::getpid());
            }
            std::fflush(nullptr);
            ::_exit(code);
        }
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;
    ~child()
    {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// The child's wait status, or nullopt if it was still running after `limit` (it is then
    /// killed and reaped).
    std::optional<int> wait_for(std::chrono::milliseconds limit)
    {
        const auto until = std::chrono::steady_clock::now() + limit;
        int status = 0;
        for (;;) {
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                reaped_ = true;
                return status;
            }
            if (std::chrono::steady_clock::now() >= until) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, nullptr, 0);
                reaped_ = true;
                return std::nullopt;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }

    /// True if the child exited 0 within `limit`.
    bool succeeded(std::chrono::milliseconds limit = std::chrono::seconds(60))
    {
        const auto status = wait_for(limit);
        return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
    }

    /// Sends SIGKILL and reaps.
    void kill()
    {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
    }

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
};

}  // namespace dragonx::test
