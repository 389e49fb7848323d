// subprocess.hpp - starting programs from a benchmark driver: `dragonx run` itself, and
// reference tools such as fi_pingpong.
//
// Notes:
// - Failures to start print a message naming the program and exit(1): benchmark drivers
//   have nothing sensible to do without their subject.
// - capture() reads stdout to EOF; stderr is inherited.
// - on_path() tells whether a reference tool is installed.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

namespace dragonx::bench {

/// Starts `args` (argv[0] a path), stdout to /dev/null when `quiet` (and stderr too when
/// `silent`), or to `stdout_fd` when it is not -1.
inline pid_t spawn(const std::vector<std::string>& args, bool quiet, bool silent = false,
                   int stdout_fd = -1)
{
    std::vector<char*> argv;
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (stdout_fd != -1) {
        posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
    } else if (quiet) {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    if (silent) {
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    }
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        std::fprintf(stderr, "cannot start %s: %s\n", argv[0], std::strerror(rc));
        std::exit(1);
    }
    return pid;
}

/// Waits for `pid`; its exit code, or 128 + the signal that killed it.
inline int wait_for(pid_t pid)
{
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// Runs `args` with stdout captured; returns stdout and sets `code`.
inline std::string capture(const std::vector<std::string>& args, int& code, bool silent = false)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        std::perror("pipe");
        std::exit(1);
    }
    const pid_t pid = spawn(args, false, silent, fds[1]);
    ::close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t got = 0;
    while ((got = ::read(fds[0], buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fds[0]);
    code = wait_for(pid);
    return out;
}

/// True if `name` is an executable file in a directory of $PATH.
inline bool on_path(const std::string& name)
{
    const char* path = std::getenv("PATH");
    for (std::string rest = path != nullptr ? path : ""; !rest.empty();) {
        const auto colon = rest.find(':');
        if (::access((rest.substr(0, colon) + "/" + name).c_str(), X_OK) == 0) {
            return true;
        }
        rest = colon == std::string::npos ? "" : rest.substr(colon + 1);
    }
    return false;
}

/// The launcher to benchmark: $DRAGONX_EXE, else the dragonx at the top of the build
/// directory this program (build/tests/bench/<name>) belongs to.
inline std::string launcher_path(const char* self)
{
    if (const char* env = std::getenv("DRAGONX_EXE"); env != nullptr) {
        return env;
    }
    namespace fs = std::filesystem;
    return (fs::canonical(fs::path(self)).parent_path() / ".." / ".." / "dragonx")
        .lexically_normal()
        .string();
}

}  // namespace dragonx::bench
