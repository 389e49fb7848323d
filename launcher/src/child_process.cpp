// child_process.cpp - spawning, watching and stopping the launcher's children.
#include "child_process.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/unique_fd.hpp>

extern char** environ;

namespace dragonx::launcher {

namespace {

constexpr auto poll_step = std::chrono::milliseconds(5);

std::vector<char*> pointers(std::vector<std::string>& strings)
{
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (auto& s : strings) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

std::string_view name_of(std::string_view variable)
{
    return variable.substr(0, variable.find('='));
}

/// RAII for the posix_spawn attribute and file-action objects.
struct spawn_setup {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    spawn_setup()
    {
        posix_spawn_file_actions_init(&actions);
        posix_spawnattr_init(&attr);
    }
    ~spawn_setup()
    {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
};

/// Starts argv with the given stdin, stdout and stderr descriptors (-1: /dev/null for stdin,
/// the request's choice for stdout, the launcher's stderr for stderr).
pid_t spawn_with(const spawn_request& r, int stdin_fd, int stdout_fd, int stderr_fd)
{
    if (r.argv.empty()) {
        throw_error(errc::invalid_argument, "spawn: no program given for " + r.label);
    }
    auto args = r.argv;
    auto env = r.env;
    auto argv = pointers(args);
    auto envp = pointers(env);

    spawn_setup s;
    if (stdin_fd >= 0) {
        posix_spawn_file_actions_adddup2(&s.actions, stdin_fd, 0);
    } else {
        posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
    }
    if (stdout_fd >= 0) {
        posix_spawn_file_actions_adddup2(&s.actions, stdout_fd, 1);
    } else if (r.stdout_to_stderr) {
        posix_spawn_file_actions_adddup2(&s.actions, 2, 1);
    }
    if (stderr_fd >= 0) {
        posix_spawn_file_actions_adddup2(&s.actions, stderr_fd, 2);
    }
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (r.new_session) {
        flags |= POSIX_SPAWN_SETSID;
    }
    posix_spawnattr_setflags(&s.attr, flags);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&s.attr, &none);
    sigset_t defaults;
    sigfillset(&defaults);
    posix_spawnattr_setsigdefault(&s.attr, &defaults);

    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, args[0].c_str(), &s.actions, &s.attr, argv.data(),
                                  envp.data());
    if (rc != 0) {
        throw_error(rc == ENOENT ? errc::not_found : errc::invalid_argument,
                    fmt::format("cannot start {} ({}): {}", r.label, args[0], std::strerror(rc)));
    }
    return pid;
}

/// Reads `out_fd` and `err_fd` until both reach EOF or `deadline` passes; false at the
/// deadline. Both are read together, so a child filling one pipe cannot block on it.
bool read_both(int out_fd, int err_fd, std::string& out, std::string& err,
               std::chrono::steady_clock::time_point deadline)
{
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    std::string* sinks[2] = {&out, &err};
    char buffer[4096];
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        const int ready = ::poll(fds, 2, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        throw_system_error_on(ready < 0, "poll");
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) {
                continue;
            }
            const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
            if (n > 0) {
                sinks[i]->append(buffer, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                fds[i].fd = -1;  // EOF (or a read error: treated as the end)
            }
        }
    }
    return true;
}

} // namespace

pid_t spawn(const spawn_request& request)
{
    if (request.stdin_data.empty()) {
        return spawn_with(request, -1, -1, -1);
    }
    int fds[2];
    throw_system_error_on(::pipe2(fds, O_CLOEXEC) != 0, "pipe2");
    unique_fd read_end(fds[0]);
    unique_fd write_end(fds[1]);
    const pid_t pid = spawn_with(request, read_end.get(), -1, -1);
    read_end.reset();
    // stdin_data is a line or two (the run secret): it always fits a fresh pipe's buffer,
    // so this write cannot block, even if the child never reads.
    // EPIPE: the child is gone already (ssh that could not connect); its exit is reported as
    // such by whoever watches it, which says more than a broken pipe.
    const auto n = ::write(write_end.get(), request.stdin_data.data(), request.stdin_data.size());
    if (n < 0 && errno == EPIPE) {
        return pid;
    }
    if (n != static_cast<ssize_t>(request.stdin_data.size())) {
        const int saved = errno;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        errno = saved;
        throw_system_error_on(true, "cannot write the run secret to " + request.label);
    }
    return pid;
}

std::vector<std::string> environment_with(const std::vector<std::string>& add,
                                          const std::vector<std::string>& remove)
{
    std::vector<std::string> env;
    for (char** v = environ; *v != nullptr; ++v) {
        const std::string_view entry(*v);
        const auto name = name_of(entry);
        const auto named = [&](const std::string& other) { return name_of(other) == name; };
        if (std::none_of(remove.begin(), remove.end(), named) &&
            std::none_of(add.begin(), add.end(), named)) {
            env.emplace_back(entry);
        }
    }
    env.insert(env.end(), add.begin(), add.end());
    return env;
}

std::string capture_output(const std::vector<std::string>& argv, std::chrono::milliseconds limit)
{
    int out_fds[2];
    int err_fds[2];
    throw_system_error_on(::pipe2(out_fds, O_CLOEXEC) != 0, "pipe2");
    unique_fd out_read(out_fds[0]);
    unique_fd out_write(out_fds[1]);
    throw_system_error_on(::pipe2(err_fds, O_CLOEXEC) != 0, "pipe2");
    unique_fd err_read(err_fds[0]);
    unique_fd err_write(err_fds[1]);

    spawn_request r{.label = argv.empty() ? std::string("a command") : argv[0],
                    .argv = argv,
                    .env = environment_with({}, {}),
                    .new_session = false};
    const pid_t pid = spawn_with(r, -1, out_write.get(), err_write.get());
    out_write.reset();
    err_write.reset();

    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::string out;
    std::string err;
    const bool in_time = read_both(out_read.get(), err_read.get(), out, err, deadline);
    int status = 0;
    if (!in_time) {
        ::kill(pid, SIGKILL);
    }
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!in_time) {
        throw_error(errc::timeout, fmt::format("'{}' did not finish within {} ms",
                                               command_text(argv), limit.count()));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) {
            err.pop_back();
        }
        throw_error(errc::process_failed,
                    fmt::format("'{}' {}{}", command_text(argv), describe_wait_status(status),
                                err.empty() ? std::string() : ": " + err));
    }
    return out;
}

std::string command_text(const std::vector<std::string>& argv)
{
    std::string text;
    for (const auto& a : argv) {
        if (!text.empty()) {
            text += ' ';
        }
        const bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$") == std::string::npos;
        text += plain ? a : "'" + a + "'";
    }
    return text;
}

std::string describe_wait_status(int status)
{
    if (WIFEXITED(status)) {
        return fmt::format("exited with status {}", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                           ::strsignal(WTERMSIG(status)));
    }
    return fmt::format("ended with wait status {}", status);
}

// ---- child_set -----------------------------------------------------------------------------

child_set::~child_set()
{
    stop();
}

void child_set::start(const std::vector<spawn_request>& requests)
{
    try {
        for (const auto& r : requests) {
            children_.push_back({spawn(r), r.label, r.terminate_first, r.stop_grace});
        }
    } catch (...) {
        stop();
        throw;
    }
}

std::vector<child_set::exit_report> child_set::poll_exited()
{
    std::vector<exit_report> exited;
    for (auto& c : children_) {
        if (c.pid == 0) {
            continue;
        }
        int status = 0;
        const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
        if (r == c.pid) {
            exited.push_back({c.label, status});
            c.pid = 0;
        } else if (r < 0 && errno == ECHILD) {
            c.pid = 0;
        }
    }
    return exited;
}

bool child_set::reap(std::chrono::milliseconds limit)
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        (void)poll_exited();
        const bool all = std::all_of(children_.begin(), children_.end(),
                                     [](const child& c) { return c.pid == 0; });
        if (all) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(poll_step);
    }
}

void child_set::stop() noexcept
{
    std::chrono::milliseconds grace{0};
    for (auto& c : children_) {
        if (c.pid != 0 && c.terminate_first) {
            ::kill(c.pid, SIGTERM);
            grace = std::max(grace, c.stop_grace);
        }
    }
    if (grace.count() > 0) {
        (void)reap(grace);
    }
    for (auto& c : children_) {
        if (c.pid != 0) {
            ::kill(c.pid, SIGKILL);
            while (::waitpid(c.pid, nullptr, 0) < 0 && errno == EINTR) {
            }
            c.pid = 0;
        }
    }
}

} // namespace dragonx::launcher
