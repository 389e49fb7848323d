// support.hpp - helpers for tests: forked children with a watchdog; a private dragonx config
// file; a temporary directory; an environment variable set for a scope.
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
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

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

/// A fresh directory under /tmp, removed with everything in it when destroyed.
class temp_dir {
public:
    temp_dir()
    {
        char name[] = "/tmp/dragonx-test-XXXXXX";
        if (::mkdtemp(name) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = name;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

/// Sets (or unsets, with std::nullopt) an environment variable; restores it when destroyed.
class env_guard {
public:
    env_guard(std::string name, const std::optional<std::string>& value) : name_(std::move(name))
    {
        if (const char* old = std::getenv(name_.c_str()); old != nullptr) {
            old_ = old;
        }
        set(value);
    }
    env_guard(const env_guard&) = delete;
    env_guard& operator=(const env_guard&) = delete;
    ~env_guard() { set(old_); }

    void set(const std::optional<std::string>& value)
    {
        if (value) {
            ::setenv(name_.c_str(), value->c_str(), 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }

private:
    std::string name_;
    std::optional<std::string> old_;
};

/// A fresh temporary directory, with DRAGONX_CONFIG naming the file `relative` inside it for
/// this object's lifetime, so that the user's own `dragonx config` stays out of the test.
/// The file itself is not created; the directory goes, with everything in it, at the end.
class scoped_config_file {
public:
    explicit scoped_config_file(const std::string& relative = "config")
        : file_(dir_.path() / relative), config_("DRAGONX_CONFIG", file_.string())
    {
    }

    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }
    /// Replaces the file's contents (its directory must exist).
    void write(const std::string& text) const { std::ofstream(file_) << text; }

private:
    temp_dir dir_;
    std::filesystem::path file_;
    env_guard config_;  // restored before the directory goes
};

}  // namespace dragonx::test
