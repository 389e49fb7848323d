// harness.cpp - integration tests: spawning `dragonx`, reading its output, finding leftovers.
#include "harness.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace dragonx::integration {

namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

std::string required_env(const char* name)
{
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        throw std::runtime_error(std::string(name) +
                                 " is not set: run the integration tests through meson test");
    }
    return value;
}

// The variables that tie a process to a run: the launcher must start a fresh one.
bool is_run_variable(std::string_view name)
{
    static constexpr std::array<std::string_view, 8> names = {
        "DRAGONX_RUN",     "DRAGONX_NODE",     "DRAGONX_NNODES",     "DRAGONX_PUID",
        "DRAGONX_RUNTIME", "DRAGONX_HOSTNAME", "DRAGONX_RUN_SECRET", "DRAGONX_RUNTIME_EXE",
    };
    return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<std::string> environment_with(const env_changes& changes)
{
    std::map<std::string, std::string> env;
    for (char** v = environ; *v != nullptr; ++v) {
        const std::string entry(*v);
        const auto eq = entry.find('=');
        if (eq != std::string::npos && !is_run_variable(entry.substr(0, eq))) {
            env[entry.substr(0, eq)] = entry.substr(eq + 1);
        }
    }
    for (const auto& [name, value] : changes) {
        if (value) {
            env[name] = *value;
        } else {
            env.erase(name);
        }
    }
    std::vector<std::string> out;
    for (const auto& [name, value] : env) {
        out.push_back(name + "=" + value);
    }
    return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings)
{
    std::vector<char*> out;
    for (auto& s : strings) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

std::string read_whole(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> split_nul(const std::string& text)
{
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < text.size()) {
        auto end = text.find('\0', at);
        end = end == std::string::npos ? text.size() : end;
        out.push_back(text.substr(at, end - at));
        at = end + 1;
    }
    return out;
}

/// The pids of this user's processes, other than this one.
std::vector<pid_t> my_processes()
{
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) {
            continue;
        }
        struct stat st {};
        if (::stat(entry.path().c_str(), &st) != 0 || st.st_uid != ::getuid()) {
            continue;
        }
        const pid_t pid = static_cast<pid_t>(std::stol(name));
        if (pid != ::getpid()) {
            out.push_back(pid);
        }
    }
    return out;
}

std::string comm_of(pid_t pid)
{
    auto comm = read_whole(fs::path("/proc") / std::to_string(pid) / "comm");
    while (!comm.empty() && comm.back() == '\n') {
        comm.pop_back();
    }
    return comm;
}

bool has_line(const std::string& text, std::string_view line)
{
    std::size_t at = 0;
    while ((at = text.find(line, at)) != std::string::npos) {
        const bool starts = at == 0 || text[at - 1] == '\n';
        const auto end = at + line.size();
        if (starts && end < text.size() && text[end] == '\n') {
            return true;
        }
        at = end;
    }
    return false;
}

std::string describe_leftovers(const std::string& run)
{
    std::string what;
    if (const auto pids = run_processes(run); !pids.empty()) {
        what += "processes " + describe_processes(pids) + "; ";
    }
    for (const auto& name : run_shm_objects(run)) {
        what += "/dev/shm/" + name + "; ";
    }
    const auto dir = run_directory(run);
    std::error_code ec;
    if (fs::exists(dir, ec)) {
        what += "directory " + dir.string() + " holding [";
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            what += " " + entry.path().filename().string();
        }
        what += " ]; ";
    }
    return what;
}

} // namespace

std::string dragonx_exe()
{
    return required_env("DRAGONX_EXE");
}

std::string program(const std::string& name)
{
    return (fs::path(required_env("DRAGONX_TEST_PROGRAMS")) / name).string();
}

// ---- launcher_run -------------------------------------------------------------------------

launcher_run::launcher_run(const std::vector<std::string>& args, const env_changes& env)
{
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    }
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    }
    std::vector<std::string> argv_strings{dragonx_exe()};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    auto env_strings = environment_with(env);
    auto argv = pointers(argv_strings);
    auto envp = pointers(env_strings);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attr, &all);
    const int rc =
        ::posix_spawn(&pid_, argv_strings[0].c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
        ::close(out[0]);
        ::close(err[0]);
        pid_ = -1;
        throw std::runtime_error("cannot start " + argv_strings[0] + ": " + std::strerror(rc));
    }
    out_fd_ = out[0];
    err_fd_ = err[0];
    ::fcntl(out_fd_, F_SETFL, ::fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
    ::fcntl(err_fd_, F_SETFL, ::fcntl(err_fd_, F_GETFL) | O_NONBLOCK);
}

launcher_run::~launcher_run()
{
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    for (const int fd : {out_fd_, err_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

void launcher_run::pump(millis wait)
{
    std::array<pollfd, 2> fds{};
    nfds_t n = 0;
    for (const int fd : {out_fd_, err_fd_}) {
        if (fd >= 0) {
            fds[n++] = pollfd{fd, POLLIN, 0};
        }
    }
    if (::poll(fds.data(), n, static_cast<int>(wait.count())) <= 0) {
        return;
    }
    for (nfds_t i = 0; i < n; ++i) {
        if (fds[i].revents == 0) {
            continue;
        }
        int& fd = fds[i].fd == out_fd_ ? out_fd_ : err_fd_;
        std::string& text = fds[i].fd == out_fd_ ? result_.out : result_.err;
        std::array<char, 65536> buffer{};
        for (;;) {
            const ssize_t got = ::read(fd, buffer.data(), buffer.size());
            if (got > 0) {
                text.append(buffer.data(), static_cast<std::size_t>(got));
                continue;
            }
            if (got < 0 && errno == EINTR) {
                continue;
            }
            if (got == 0 || errno != EAGAIN) {
                ::close(fd);
                fd = -1;
            }
            break;
        }
    }
}

bool launcher_run::reap(int options)
{
    if (reaped_) {
        return true;
    }
    int status = 0;
    if (::waitpid(pid_, &status, options) != pid_) {
        return false;
    }
    reaped_ = true;
    if (WIFEXITED(status)) {
        result_.exited = true;
        result_.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        result_.signal = WTERMSIG(status);
    }
    return true;
}

bool launcher_run::wait_for_line(std::string_view line, millis limit)
{
    const auto until = steady::now() + limit;
    while (steady::now() < until) {
        pump(20ms);
        if (has_line(result_.out, line)) {
            return true;
        }
        if (reap(WNOHANG)) {
            pump(100ms);
            return has_line(result_.out, line);
        }
    }
    return false;
}

void launcher_run::send(int sig)
{
    if (!reaped_) {
        ::kill(pid_, sig);
    }
}

const outcome& launcher_run::finish(millis limit, millis drain_limit)
{
    const auto until = steady::now() + limit;
    while (!reap(WNOHANG)) {
        if (steady::now() >= until) {
            ::kill(pid_, SIGKILL);
            reap(0);
            result_.timed_out = true;
            break;
        }
        pump(20ms);
    }
    const auto drain_until = steady::now() + drain_limit;
    while ((out_fd_ >= 0 || err_fd_ >= 0) && steady::now() < drain_until) {
        pump(20ms);
    }
    for (int* fd : {&out_fd_, &err_fd_}) {
        if (*fd >= 0) {
            ::close(*fd);
            *fd = -1;
        }
    }
    return result_;
}

outcome run_dragonx(const std::vector<std::string>& args, millis limit, const env_changes& env)
{
    launcher_run run(args, env);
    return run.finish(limit);
}

// ---- text ---------------------------------------------------------------------------------

std::vector<std::string> lines_of(const std::string& text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

std::optional<std::string> field(const std::string& line, const std::string& key)
{
    std::istringstream in(line);
    std::string word;
    while (in >> word) {
        if (word.rfind(key + "=", 0) == 0) {
            return word.substr(key.size() + 1);
        }
    }
    return std::nullopt;
}

std::vector<std::string> lines_starting(const std::string& text, std::string_view prefix)
{
    std::vector<std::string> out;
    for (auto& line : lines_of(text)) {
        if (line.starts_with(prefix)) {
            out.push_back(std::move(line));
        }
    }
    return out;
}

// ---- what a run leaves --------------------------------------------------------------------

std::vector<pid_t> run_processes(const std::string& run)
{
    const std::string wanted = "DRAGONX_RUN=" + run;
    std::vector<pid_t> out;
    for (const pid_t pid : my_processes()) {
        const auto env = split_nul(read_whole(fs::path("/proc") / std::to_string(pid) / "environ"));
        if (std::find(env.begin(), env.end(), wanted) != env.end()) {
            out.push_back(pid);
        }
    }
    return out;
}

std::string describe_processes(const std::vector<pid_t>& pids)
{
    std::string out;
    for (const pid_t pid : pids) {
        out += (out.empty() ? "" : ", ") + std::to_string(pid) + " (" + comm_of(pid) + ")";
    }
    return out;
}

std::vector<std::string> run_shm_objects(const std::string& run)
{
    const std::string prefix = "dragonx-" + run + "-";
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/dev/shm", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with(prefix)) {
            out.push_back(name);
        }
    }
    return out;
}

fs::path run_directory(const std::string& run)
{
    const char* tmp = std::getenv("DRAGONX_TMPDIR");
    const fs::path base = tmp != nullptr && *tmp != '\0' ? fs::path(tmp) : fs::path("/tmp");
    return base / ("dragonx-" + std::to_string(::getuid())) / run;
}

std::optional<pid_t> daemon_pid(const std::string& run, unsigned node)
{
    for (const pid_t pid : my_processes()) {
        if (comm_of(pid) != "dragonx-runtime") {
            continue;
        }
        const auto args =
            split_nul(read_whole(fs::path("/proc") / std::to_string(pid) / "cmdline"));
        bool run_matches = false;
        bool node_matches = false;
        for (std::size_t i = 0; i + 1 < args.size(); ++i) {
            run_matches = run_matches || (args[i] == "--run" && args[i + 1] == run);
            node_matches =
                node_matches || (args[i] == "--node" && args[i + 1] == std::to_string(node));
        }
        if (run_matches && node_matches) {
            return pid;
        }
    }
    return std::nullopt;
}

std::string leftovers_after(const std::string& run, millis limit)
{
    const auto until = steady::now() + limit;
    for (;;) {
        auto what = describe_leftovers(run);
        if (what.empty() || steady::now() >= until) {
            return what;
        }
        std::this_thread::sleep_for(50ms);
    }
}

void remove_run(const std::string& run) noexcept
{
    if (run.empty()) {
        return;
    }
    try {
        for (const pid_t pid : run_processes(run)) {
            ::kill(pid, SIGKILL);
        }
        for (const auto& name : run_shm_objects(run)) {
            ::shm_unlink(("/" + name).c_str());
        }
        std::error_code ec;
        fs::remove_all(run_directory(run), ec);
    } catch (...) {
        // best effort: a test's cleanup must not throw
    }
}

run_cleanup::~run_cleanup()
{
    remove_run(run_);
}

// ---- files --------------------------------------------------------------------------------

temp_dir::temp_dir()
{
    std::string pattern = (fs::temp_directory_path() / "dragonx-it-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    }
    path_ = pattern;
}

temp_dir::~temp_dir()
{
    std::error_code ec;
    fs::remove_all(path_, ec);
}

void write_file(const fs::path& path, const std::string& text, unsigned mode)
{
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out) {
            throw std::runtime_error("cannot write " + path.string());
        }
    }
    fs::permissions(path, static_cast<fs::perms>(mode), fs::perm_options::replace);
}

env_changes fake_gpu_env(const temp_dir& tools)
{
    write_file(tools.path() / "nvidia-smi",
               "#!/bin/sh\n"
               "# A stand-in for nvidia-smi: two GPUs.\n"
               "[ \"$1\" = -L ] || exit 1\n"
               "printf 'GPU 0: Fake (UUID: GPU-0)\\nGPU 1: Fake (UUID: GPU-1)\\n'\n",
               0755);
    const char* path = std::getenv("PATH");
    return {
        {"PATH", tools.path().string() + ":" + (path != nullptr ? path : "/usr/bin:/bin")},
        {"CUDA_VISIBLE_DEVICES", std::nullopt},
        {"ROCR_VISIBLE_DEVICES", std::nullopt},
        {"ZE_AFFINITY_MASK", std::nullopt},
    };
}

std::vector<int> my_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> out;
    if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &set)) {
                out.push_back(cpu);
            }
        }
    }
    return out;
}

std::string join_ids(const std::vector<int>& ids)
{
    std::string out;
    for (const int id : ids) {
        out += (out.empty() ? "" : ",") + std::to_string(id);
    }
    return out;
}

} // namespace dragonx::integration
