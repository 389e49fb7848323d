// support.hpp - helpers for multi-process tests: forked children with a watchdog.
//
// Notes:
// - A child runs a function and exits with 0 on success, 1 when it returned false, 2 when
//   it threw. Catch2 assertions must not be used inside a child: check, then return false.
// - wait_for() never blocks past its limit: a child still running then is SIGKILLed and
//   reported as timed out, so a hung child fails the test instead of hanging it.
#pragma once

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <dragonx/common/error.hpp>

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

/// The dragonx::errc that f() throws (errc::ok if it returns; errc::internal for a
/// dragonx::error of another category), and its message in *what.
template <class F>
dragonx::errc errc_of(F&& f, std::string* what = nullptr)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        if (what != nullptr) {
            *what = e.what();
        }
        if (e.code().category() == dragonx::dragonx_category()) {
            return static_cast<dragonx::errc>(e.code().value());
        }
        return dragonx::errc::internal;
    }
    return dragonx::errc::ok;
}

/// A T in anonymous shared memory, for a parent and its forked children to report through.
template <class T>
class shared_object {
public:
    shared_object()
    {
        void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                         -1, 0);
        if (p == MAP_FAILED) {
            throw std::runtime_error("mmap for a shared test object failed");
        }
        object_ = new (p) T{};
    }
    shared_object(const shared_object&) = delete;
    shared_object& operator=(const shared_object&) = delete;
    ~shared_object() { ::munmap(object_, sizeof(T)); }
    T* operator->() const noexcept { return object_; }
    T& operator*() const noexcept { return *object_; }

private:
    T* object_;
};

}  // namespace dragonx::test
