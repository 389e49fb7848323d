// local_wlm.cpp - node daemons as local children.
#include "local_wlm.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/unique_fd.hpp>

extern char** environ;

namespace dragonx::launcher {

namespace {

// The launcher's environment plus the run's identity for node `node`.
std::vector<std::string> daemon_environment(const daemon_launch& l, std::uint32_t node)
{
    std::vector<std::string> env;
    for (char** v = environ; *v != nullptr; ++v) {
        const std::string_view entry(*v);
        if (!entry.starts_with("DRAGONX_RUN=") && !entry.starts_with("DRAGONX_NODE=") &&
            !entry.starts_with("DRAGONX_RUN_SECRET=")) {
            env.emplace_back(entry);
        }
    }
    env.push_back("DRAGONX_RUN=" + l.run);
    env.push_back("DRAGONX_NODE=" + std::to_string(node));
    return env;
}

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

pid_t spawn_daemon(const daemon_launch& l, std::uint32_t node)
{
    int fds[2];
    throw_system_error_on(::pipe2(fds, O_CLOEXEC) != 0, "pipe2");
    unique_fd read_end(fds[0]);
    unique_fd write_end(fds[1]);

    std::vector<std::string> args = {
        l.runtime_exe,
        "--run",
        l.run,
        "--node",
        std::to_string(node),
        "--nnodes",
        std::to_string(l.nnodes),
        "--hostname",
        fmt::format("node{}", node),
        "--launcher",
        l.launcher_address,
        "--log-level",
        l.log_level,
    };
    auto env = daemon_environment(l, node);
    auto argv = pointers(args);
    auto envp = pointers(env);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, read_end.get(), 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t defaults;
    sigfillset(&defaults);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    pid_t pid = 0;
    const int rc =
        ::posix_spawn(&pid, l.runtime_exe.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        throw_system_error_on(true, "cannot start " + l.runtime_exe);
    }
    read_end.reset();
    const std::string line = l.secret_hex + "\n";
    // 65 bytes always fit a fresh pipe's buffer: this write cannot block.
    if (::write(write_end.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        throw_system_error_on(true, "cannot pass the run secret to node " + std::to_string(node));
    }
    return pid;
}

} // namespace

local_daemons::~local_daemons()
{
    kill_all();
}

void local_daemons::start(const daemon_launch& launch)
{
    try {
        for (std::uint32_t node = 0; node < launch.nnodes; ++node) {
            pids_.push_back(spawn_daemon(launch, node));
        }
    } catch (...) {
        kill_all();
        throw;
    }
}

bool local_daemons::reap(std::chrono::milliseconds limit)
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        bool all = true;
        for (auto& pid : pids_) {
            if (pid == 0) {
                continue;
            }
            const pid_t r = ::waitpid(pid, nullptr, WNOHANG);
            if (r == pid || (r < 0 && errno == ECHILD)) {
                pid = 0;
            } else {
                all = false;
            }
        }
        if (all) {
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

void local_daemons::kill_all() noexcept
{
    for (auto& pid : pids_) {
        if (pid != 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            pid = 0;
        }
    }
}

} // namespace dragonx::launcher
