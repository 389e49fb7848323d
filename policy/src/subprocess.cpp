// subprocess.cpp - run_tool(): posix_spawn, a pipe for stdout, poll with a deadline, reap.
#include "subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

#include <dragonx/common/log.hpp>
#include <dragonx/common/unique_fd.hpp>

extern char** environ;

namespace dragonx::policy_detail {

namespace {

constexpr std::size_t max_output = std::size_t{1} << 20U;

// posix_spawn attributes and file actions, destroyed on every path.
class spawn_setup {
public:
    spawn_setup()
    {
        ::posix_spawnattr_init(&attr_);
        ::posix_spawn_file_actions_init(&actions_);
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
    ~spawn_setup()
    {
        ::posix_spawn_file_actions_destroy(&actions_);
        ::posix_spawnattr_destroy(&attr_);
    }
    posix_spawnattr_t* attr() noexcept { return &attr_; }
    posix_spawn_file_actions_t* actions() noexcept { return &actions_; }

private:
    posix_spawnattr_t attr_{};
    posix_spawn_file_actions_t actions_{};
};

// Waits until `until` for the tool to exit, kills what is left of its process group (while the
// unreaped tool still holds the group id, so the id cannot name anyone else), then reaps it.
// True if it exited 0 in time. A tool reaped by someone else's waitpid (ECHILD) counts as
// success: its output decides.
bool finish(pid_t pid, std::chrono::steady_clock::time_point until)
{
    bool exited = false;
    for (;;) {
        siginfo_t info{};
        const int r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return errno == ECHILD;
        }
        if (info.si_pid == pid) {
            exited = true;
            break;
        }
        if (std::chrono::steady_clock::now() >= until) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ::kill(-pid, SIGKILL);
    int status = 0;
    pid_t r = 0;
    do {
        r = ::waitpid(pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        return exited && errno == ECHILD;
    }
    return exited && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

std::optional<std::string> find_in_path(const std::string& name)
{
    if (name.empty() || name.find('/') != std::string::npos) {
        return std::nullopt;
    }
    const char* env = std::getenv("PATH");
    const std::string_view path = env != nullptr ? env : "/usr/bin:/bin";
    std::size_t begin = 0;
    while (begin <= path.size()) {
        std::size_t end = path.find(':', begin);
        if (end == std::string_view::npos) {
            end = path.size();
        }
        const std::string_view dir = path.substr(begin, end - begin);
        begin = end + 1;
        if (dir.empty()) {
            continue;
        }
        std::string candidate(dir);
        candidate += '/';
        candidate += name;
        struct stat st {};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return std::nullopt;
}

std::optional<std::string> run_tool(const std::string& name, const std::vector<std::string>& args,
                                    std::chrono::milliseconds limit)
{
    const auto exe = find_in_path(name);
    if (!exe) {
        return std::nullopt;
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        log::get("policy").warn("probing GPUs: pipe2 for {} failed (errno {})", name, errno);
        return std::nullopt;
    }
    unique_fd read_end(fds[0]);
    unique_fd write_end(fds[1]);

    spawn_setup setup;
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGALRM, SIGUSR1,
                    SIGUSR2}) {
        sigaddset(&defaults, sig);
    }
    ::posix_spawnattr_setflags(setup.attr(),
                               POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                   POSIX_SPAWN_SETSIGDEF);
    ::posix_spawnattr_setpgroup(setup.attr(), 0);
    ::posix_spawnattr_setsigmask(setup.attr(), &none);
    ::posix_spawnattr_setsigdefault(setup.attr(), &defaults);
    ::posix_spawn_file_actions_addopen(setup.actions(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(setup.actions(), write_end.get(), STDOUT_FILENO);
    ::posix_spawn_file_actions_addopen(setup.actions(), STDERR_FILENO, "/dev/null", O_WRONLY, 0);

    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(name.c_str()));
    for (const auto& a : args) {
        argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);

    pid_t pid = -1;
    const int rc =
        ::posix_spawn(&pid, exe->c_str(), setup.actions(), setup.attr(), argv.data(), environ);
    write_end.reset();
    if (rc != 0) {
        log::get("policy").debug("probing GPUs: cannot start {} (error {})", *exe, rc);
        return std::nullopt;
    }

    const auto until = std::chrono::steady_clock::now() + limit;
    std::string output;
    bool timed_out = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd pfd{read_end.get(), POLLIN, 0};
        const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            timed_out = ready == 0;
            break;
        }
        char buffer[4096];
        const ssize_t n = ::read(read_end.get(), buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;  // end of output (or an error: take what we have)
        }
        if (output.size() + static_cast<std::size_t>(n) > max_output) {
            timed_out = true;  // a runaway tool: stop it like a hung one
            break;
        }
        output.append(buffer, static_cast<std::size_t>(n));
    }
    if (timed_out) {
        finish(pid, std::chrono::steady_clock::now());
        log::get("policy").warn("probing GPUs: {} gave no complete answer within {} ms; ignored",
                                 *exe, limit.count());
        return std::nullopt;
    }
    if (!finish(pid, until)) {
        return std::nullopt;
    }
    return output;
}

}  // namespace dragonx::policy_detail
