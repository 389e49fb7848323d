// supervisor.cpp - the node daemon's process supervisor: posix_spawn, pidfd reaping, output
// split into lines, signals to process groups, graceful termination; all on one io_context.
//
// Notes:
// - Single-threaded: everything runs on the io thread (supervisor.hpp). Every asynchronous
//   handler holds a weak "alive" token and finds its process or stream again by serial
//   number, so a handler that runs after the supervisor is gone, or after its object was
//   erased, does nothing. Processes and streams are held by shared_ptr while callbacks run,
//   so a re-entrant launch()/signal()/terminate_all() cannot pull them away.
// - Pipes are read with plain non-blocking read() calls on the io thread after
//   async_wait(wait_read), never with async_read_some: the synchronous drain at exit and the
//   event-driven reads share one partial-line buffer per stream and one order, so no byte is
//   lost, reordered or delivered twice. A wake-up reads at most read_budget bytes and, if the
//   pipe may still hold data, posts itself again instead of waiting (Asio's epoll reactor is
//   edge-triggered: a stream left readable would never be woken again).
// - At exit the drain reads what the pipe holds (FIONREAD) plus at most read_budget more, so
//   a grandchild that writes without pause cannot hold on_exit back.
// - The child's fds 0..2 are set up by file actions; every other fd is closed in the child
//   (closefrom 3), so daemon sockets and pipes never leak into managed processes. Output
//   files are opened by the daemon (relative paths against the request's cwd), so a bad path
//   is reported precisely instead of as a failed posix_spawn.
// - CPU affinity: posix_spawn clones the calling thread, so the io thread's own affinity is
//   set to `cpus` around the call and restored afterwards (also when it fails).
// - The daemon must not set SIGCHLD to SIG_IGN (the kernel would reap the children itself);
//   a child reaped by someone else is reported with exit_code -1.
// - on_output's string_view points into the supervisor's buffers: valid during the call only.
// - Callbacks must not throw: an exception leaves through io_context::run() and may leave
//   this process's bookkeeping (terminate_all's `done`) unfinished.
// - The destructor SIGKILLs the process groups of unreported processes and reaps them with
//   a blocking waitid; streams a grandchild still holds open are closed without delivery.
#include "supervisor.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>
#include <utility>

#include <asio/post.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>
#include <dragonx/common/unique_fd.hpp>

namespace dragonx::rt::detail {

namespace {

constexpr std::size_t max_line = 64 * 1024;     // a longer partial line is delivered in pieces
constexpr std::size_t read_chunk = 64 * 1024;   // one read()
constexpr std::size_t read_budget = 256 * 1024; // at most this much per wake-up
constexpr std::size_t max_cpu = 1 << 16;        // CPU numbers must be below this

spdlog::logger& logger() { return log::get("runtime"); }

std::string errno_text(int e) { return std::error_code(e, std::system_category()).message(); }

// ---- programs, directories, files ----------------------------------------------------------

// `path` as the child sees it after chdir(cwd): a relative path is taken from `cwd`.
std::string in_cwd(const std::string& path, const std::string& cwd)
{
    if (path.empty() || path.front() == '/' || cwd.empty()) {
        return path;
    }
    return cwd + "/" + path;
}

enum class program_check { missing, not_executable, ok };

program_check check_program(const std::string& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return program_check::missing;
    }
    if (!S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0) {
        return program_check::not_executable;
    }
    return program_check::ok;
}

// The search path for `request`: PATH of its environment, else the daemon's, else a default.
std::string search_path(const launch_request& request)
{
    for (const std::string& entry : request.env) {
        if (entry.rfind("PATH=", 0) == 0) {
            return entry.substr(5);
        }
    }
    const char* own = std::getenv("PATH");
    return own != nullptr ? std::string(own) : std::string("/usr/bin:/bin");
}

// The path to hand to posix_spawn (relative paths resolve after the child's chdir).
std::string resolve_program(const launch_request& request)
{
    const std::string& exe = request.exe;
    if (exe.empty()) {
        throw_error(errc::invalid_argument, "no program given");
    }
    if (exe.find('/') != std::string::npos) {
        const program_check check = check_program(in_cwd(exe, request.cwd));
        if (check == program_check::missing) {
            throw_error(errc::not_found, "no such program: " + exe);
        }
        if (check == program_check::not_executable) {
            throw_error(errc::invalid_argument, "not executable: " + exe);
        }
        return exe;
    }
    const std::string path = search_path(request);
    bool found_other = false;
    std::size_t begin = 0;
    for (;;) {
        const std::size_t end = std::min(path.find(':', begin), path.size());
        const std::string dir = path.substr(begin, end - begin);
        const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + exe;
        const program_check check = check_program(in_cwd(candidate, request.cwd));
        if (check == program_check::ok) {
            return candidate;
        }
        found_other = found_other || check == program_check::not_executable;
        if (end == path.size()) {
            break;
        }
        begin = end + 1;
    }
    if (found_other) {
        throw_error(errc::invalid_argument,
                    fmt::format("not executable: {} (found in PATH={}, not executable)", exe,
                                path));
    }
    throw_error(errc::not_found, fmt::format("no such program: {} (PATH={})", exe, path));
}

void check_directory(const std::string& cwd)
{
    if (cwd.empty()) {
        return;
    }
    struct stat st {};
    if (::stat(cwd.c_str(), &st) != 0) {
        throw_error(errc::invalid_argument,
                    fmt::format("bad working directory {}: {}", cwd, errno_text(errno)));
    }
    if (!S_ISDIR(st.st_mode)) {
        throw_error(errc::invalid_argument,
                    fmt::format("bad working directory {}: not a directory", cwd));
    }
    if (::access(cwd.c_str(), X_OK) != 0) {
        throw_error(errc::invalid_argument,
                    fmt::format("bad working directory {}: {}", cwd, errno_text(errno)));
    }
}

// Moves `fd` to a number >= 3 (close-on-exec), so dup2 onto 0..2 in the child cannot
// clobber it before it is used.
void lift_above_stdio(unique_fd& fd)
{
    if (fd.get() < 3) {
        const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
        throw_system_error_on(moved < 0, "fcntl F_DUPFD_CLOEXEC");
        fd.reset(moved);
    }
}

struct pipe_ends {
    unique_fd read;   // ours, non-blocking
    unique_fd write;  // the child's stdout or stderr, blocking
};

pipe_ends make_pipe()
{
    int fds[2] = {-1, -1};
    throw_system_error_on(::pipe2(fds, O_CLOEXEC) != 0, "pipe2");
    pipe_ends p{unique_fd(fds[0]), unique_fd(fds[1])};
    lift_above_stdio(p.read);
    lift_above_stdio(p.write);
    throw_system_error_on(::fcntl(p.read.get(), F_SETFL, O_NONBLOCK) != 0, "fcntl O_NONBLOCK");
    return p;
}

unique_fd open_output_file(const std::string& path, const std::string& cwd)
{
    if (path.empty()) {
        throw_error(errc::invalid_argument, "output file: no path given");
    }
    // O_NONBLOCK: a FIFO without a reader fails instead of blocking the io thread.
    unique_fd fd(::open(in_cwd(path, cwd).c_str(),
                        O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644));
    if (!fd) {
        throw_error(errc::invalid_argument,
                    fmt::format("cannot open output file {}: {}", path, errno_text(errno)));
    }
    const int flags = ::fcntl(fd.get(), F_GETFL);
    throw_system_error_on(flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0,
                          "fcntl " + path);
    lift_above_stdio(fd);
    return fd;
}

// ---- CPU affinity ----------------------------------------------------------------------------

struct cpu_set_deleter {
    void operator()(cpu_set_t* set) const noexcept { CPU_FREE(set); }
};

struct cpu_mask {
    std::unique_ptr<cpu_set_t, cpu_set_deleter> set;
    std::size_t bytes = 0;
};

cpu_mask make_mask(std::size_t cpus)
{
    cpu_mask mask{std::unique_ptr<cpu_set_t, cpu_set_deleter>(CPU_ALLOC(cpus)),
                  CPU_ALLOC_SIZE(cpus)};
    if (!mask.set) {
        throw std::bad_alloc();
    }
    CPU_ZERO_S(mask.bytes, mask.set.get());
    return mask;
}

// The calling thread's affinity.
cpu_mask thread_affinity()
{
    for (std::size_t cpus = CPU_SETSIZE;; cpus *= 2) {
        cpu_mask mask = make_mask(cpus);
        if (::sched_getaffinity(0, mask.bytes, mask.set.get()) == 0) {
            return mask;
        }
        throw_system_error_on(errno != EINVAL || cpus >= max_cpu, "sched_getaffinity");
    }
}

// Sets the calling thread's affinity to `cpus` (if not empty); restores it when destroyed.
class affinity_scope {
public:
    explicit affinity_scope(const std::vector<int>& cpus)
    {
        if (cpus.empty()) {
            return;
        }
        int highest = 0;
        for (const int cpu : cpus) {
            if (cpu < 0 || static_cast<std::size_t>(cpu) >= max_cpu) {
                throw_error(errc::invalid_argument, fmt::format("invalid CPU number {}", cpu));
            }
            highest = std::max(highest, cpu);
        }
        cpu_mask wanted = make_mask(std::max<std::size_t>(CPU_SETSIZE, highest + 1));
        for (const int cpu : cpus) {
            CPU_SET_S(static_cast<std::size_t>(cpu), wanted.bytes, wanted.set.get());
        }
        saved_ = thread_affinity();
        if (::sched_setaffinity(0, wanted.bytes, wanted.set.get()) != 0) {
            const int e = errno;
            saved_.set.reset();
            if (e == EINVAL) {
                throw_error(errc::invalid_argument,
                            fmt::format("CPU affinity {}: no usable CPU among them",
                                        fmt::join(cpus, ",")));
            }
            errno = e;
            throw_system_error_on(true, "sched_setaffinity");
        }
    }
    affinity_scope(const affinity_scope&) = delete;
    affinity_scope& operator=(const affinity_scope&) = delete;
    ~affinity_scope()
    {
        if (saved_.set && ::sched_setaffinity(0, saved_.bytes, saved_.set.get()) != 0) {
            logger().error("supervisor: restoring the io thread's CPU affinity: {}",
                           errno_text(errno));
        }
    }

private:
    cpu_mask saved_;
};

// ---- posix_spawn plumbing --------------------------------------------------------------------

void check_spawn_call(int rc, const char* what)
{
    if (rc != 0) {
        throw error(std::error_code(rc, std::system_category()), what);
    }
}

class spawn_attributes {
public:
    spawn_attributes() { check_spawn_call(::posix_spawnattr_init(&attr_), "posix_spawnattr_init"); }
    spawn_attributes(const spawn_attributes&) = delete;
    spawn_attributes& operator=(const spawn_attributes&) = delete;
    ~spawn_attributes() { ::posix_spawnattr_destroy(&attr_); }
    posix_spawnattr_t* get() noexcept { return &attr_; }

private:
    posix_spawnattr_t attr_{};
};

class spawn_actions {
public:
    spawn_actions()
    {
        check_spawn_call(::posix_spawn_file_actions_init(&actions_),
                         "posix_spawn_file_actions_init");
    }
    spawn_actions(const spawn_actions&) = delete;
    spawn_actions& operator=(const spawn_actions&) = delete;
    ~spawn_actions() { ::posix_spawn_file_actions_destroy(&actions_); }
    posix_spawn_file_actions_t* get() noexcept { return &actions_; }

private:
    posix_spawn_file_actions_t actions_{};
};

// Through syscall(): glibc 2.36's <sys/pidfd.h> declares its wrappers without extern "C".
int pidfd_open(pid_t pid) noexcept
{
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
}

int pidfd_send_signal(int pidfd, int sig) noexcept
{
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0U));
}

// Sends `sig` to the process group led by `pid`, or to the process itself through its pidfd
// when the group is empty (the child left it). False with errno set on failure.
bool send_signal(pid_t pid, int pidfd, int sig) noexcept
{
    if (::kill(-pid, sig) == 0) {
        return true;
    }
    if (errno != ESRCH || pidfd < 0) {
        return false;
    }
    return pidfd_send_signal(pidfd, sig) == 0;
}

enum class pump_result { would_block, budget_spent, eof };

}  // namespace

// ---- state -----------------------------------------------------------------------------------

struct supervisor::impl {
    struct stream_state {
        explicit stream_state(asio::io_context& io) : pipe(io) {}
        std::uint64_t serial = 0;
        puid_t puid = 0;
        output_stream which = output_stream::out;
        asio::posix::stream_descriptor pipe;  // the read end, non-blocking
        std::string partial;                  // an unterminated line, < max_line bytes
        bool wait_pending = false;            // an async_wait is outstanding
        bool post_pending = false;            // a posted continuation is outstanding
    };

    struct process_state {
        explicit process_state(asio::io_context& io) : pidfd(io) {}
        std::uint64_t serial = 0;
        puid_t puid = 0;
        pid_t pid = 0;  // also its process group id
        asio::posix::stream_descriptor pidfd;
        std::vector<std::uint64_t> streams;  // serials of its forwarded streams
        bool reaped = false;                 // waited for; on_exit not yet called
    };

    struct termination {
        explicit termination(asio::io_context& io) : timer(io) {}
        std::map<std::uint64_t, puid_t> pending;  // process serial -> puid
        asio::steady_timer timer;
        std::function<void()> done;
    };

    impl(asio::io_context& io, supervisor_callbacks callbacks)
        : io_(io), callbacks_(std::move(callbacks))
    {
    }
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl();

    pid_t launch(const launch_request& request);
    bool signal(puid_t puid, int sig);
    void terminate_all(std::chrono::milliseconds grace, std::function<void()> done);

    void watch_exit(const std::shared_ptr<process_state>& p);
    void on_exit_ready(puid_t puid, std::uint64_t serial, const std::error_code& ec);
    void process_reported(std::uint64_t serial);
    void on_grace_over(std::uint64_t id);

    void on_stream_ready(std::uint64_t serial, bool from_wait, const std::error_code& ec);
    void drain(std::uint64_t serial);
    pump_result pump(stream_state& s, std::size_t budget);
    void rearm(const std::shared_ptr<stream_state>& s, pump_result result);
    void close_stream(std::uint64_t serial);
    void consume(stream_state& s, const char* data, std::size_t size);
    void emit(const stream_state& s, std::string_view data);
    void emit_partial(stream_state& s);

    void post_done(std::function<void()> done);
    std::weak_ptr<int> token() const { return alive_; }

    asio::io_context& io_;
    supervisor_callbacks callbacks_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
    std::uint64_t next_serial_ = 1;
    std::map<puid_t, std::shared_ptr<process_state>> processes_;  // not yet reported
    std::map<std::uint64_t, std::shared_ptr<stream_state>> streams_;  // open pipes
    std::map<std::uint64_t, std::shared_ptr<termination>> terminations_;
    std::vector<char> scratch_ = std::vector<char>(read_chunk);  // one read() at a time
};

// ---- launch ----------------------------------------------------------------------------------

pid_t supervisor::impl::launch(const launch_request& request)
{
    if (processes_.count(request.puid) != 0) {
        throw_error(errc::invalid_argument,
                    fmt::format("puid {} is already running", request.puid));
    }
    check_directory(request.cwd);
    const std::string program = resolve_program(request);

    spawn_actions actions;
    check_spawn_call(::posix_spawn_file_actions_addopen(actions.get(), 0, "/dev/null",
                                                        O_RDONLY, 0),
                     "posix_spawn_file_actions_addopen");
    pipe_ends pipes[2];
    unique_fd files[2];
    const stdio_spec* specs[2] = {&request.out, &request.err};
    for (int i = 0; i < 2; ++i) {
        const int target_fd = i + 1;
        switch (specs[i]->target) {
        case stdio_target::forward:
        case stdio_target::pipe:  // read here like forward; the daemon routes it
            pipes[i] = make_pipe();
            check_spawn_call(::posix_spawn_file_actions_adddup2(actions.get(),
                                                                pipes[i].write.get(), target_fd),
                             "posix_spawn_file_actions_adddup2");
            break;
        case stdio_target::null:
            check_spawn_call(::posix_spawn_file_actions_addopen(actions.get(), target_fd,
                                                                "/dev/null", O_WRONLY, 0),
                             "posix_spawn_file_actions_addopen");
            break;
        case stdio_target::file:
            files[i] = open_output_file(specs[i]->path, request.cwd);
            check_spawn_call(::posix_spawn_file_actions_adddup2(actions.get(), files[i].get(),
                                                                target_fd),
                             "posix_spawn_file_actions_adddup2");
            break;
        default:
            throw_error(errc::invalid_argument,
                        fmt::format("bad stdio target {}",
                                    static_cast<int>(specs[i]->target)));
        }
    }
    // Our pipe ends and files (and any fd of the daemon) stay out of the child.
    check_spawn_call(::posix_spawn_file_actions_addclosefrom_np(actions.get(), 3),
                     "posix_spawn_file_actions_addclosefrom_np");
    if (!request.cwd.empty()) {
        check_spawn_call(::posix_spawn_file_actions_addchdir_np(actions.get(),
                                                                request.cwd.c_str()),
                         "posix_spawn_file_actions_addchdir_np");
    }

    spawn_attributes attr;
    check_spawn_call(::posix_spawnattr_setflags(attr.get(), POSIX_SPAWN_SETPGROUP |
                                                                POSIX_SPAWN_SETSIGMASK |
                                                                POSIX_SPAWN_SETSIGDEF),
                     "posix_spawnattr_setflags");
    check_spawn_call(::posix_spawnattr_setpgroup(attr.get(), 0), "posix_spawnattr_setpgroup");
    sigset_t signals;
    ::sigemptyset(&signals);
    check_spawn_call(::posix_spawnattr_setsigmask(attr.get(), &signals),
                     "posix_spawnattr_setsigmask");
    ::sigfillset(&signals);
    check_spawn_call(::posix_spawnattr_setsigdefault(attr.get(), &signals),
                     "posix_spawnattr_setsigdefault");

    std::vector<char*> argv;
    argv.reserve(request.args.size() + 2);
    argv.push_back(const_cast<char*>(request.exe.c_str()));
    for (const std::string& arg : request.args) {
        argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    envp.reserve(request.env.size() + 1);
    for (const std::string& entry : request.env) {
        envp.push_back(const_cast<char*>(entry.c_str()));
    }
    envp.push_back(nullptr);

    pid_t pid = -1;
    int rc = 0;
    {
        const affinity_scope affinity(request.cpus);
        rc = ::posix_spawn(&pid, program.c_str(), actions.get(), attr.get(), argv.data(),
                           envp.data());
    }
    if (rc == ENOEXEC || rc == EACCES) {
        throw_error(errc::invalid_argument,
                    fmt::format("not executable: {} ({})", request.exe, errno_text(rc)));
    }
    if (rc == ENOENT) {  // checked above: its #! interpreter is what is missing
        throw_error(errc::not_found,
                    fmt::format("no such program: {} (or no such interpreter for it)",
                                request.exe));
    }
    if (rc != 0) {
        throw error(std::error_code(rc, std::system_category()), "posix_spawn " + request.exe);
    }
    // The child has its copies; EOF must come when the child (and its children) close theirs.
    for (int i = 0; i < 2; ++i) {
        pipes[i].write.reset();
        files[i].reset();
    }

    std::shared_ptr<process_state> p;
    std::vector<std::shared_ptr<stream_state>> streams;
    try {
        p = std::make_shared<process_state>(io_);
        p->serial = next_serial_++;
        p->puid = request.puid;
        p->pid = pid;
        unique_fd pidfd(pidfd_open(pid));
        throw_system_error_on(!pidfd, fmt::format("pidfd_open {}", pid));
        p->pidfd.assign(pidfd.get());
        (void)pidfd.release();

        for (int i = 0; i < 2; ++i) {
            if (!pipes[i].read) {
                continue;
            }
            auto s = std::make_shared<stream_state>(io_);
            s->serial = next_serial_++;
            s->puid = request.puid;
            s->which = i == 0 ? output_stream::out : output_stream::err;
            s->pipe.assign(pipes[i].read.get());
            (void)pipes[i].read.release();
            p->streams.push_back(s->serial);
            streams.push_back(std::move(s));
        }

        processes_.emplace(request.puid, p);
        for (auto& s : streams) {
            streams_.emplace(s->serial, s);
            rearm(s, pump_result::would_block);
        }
        watch_exit(p);
    } catch (...) {
        // Nothing may be left running that nobody watches, nor half-registered.
        for (const auto& s : streams) {
            streams_.erase(s->serial);
        }
        const auto it = processes_.find(request.puid);
        if (it != processes_.end() && it->second == p) {
            processes_.erase(it);
        }
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        throw;
    }
    return pid;
}

// ---- exits -----------------------------------------------------------------------------------

void supervisor::impl::watch_exit(const std::shared_ptr<process_state>& p)
{
    p->pidfd.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this, alive = token(), puid = p->puid,
                         serial = p->serial](const std::error_code& ec) {
                            if (alive.expired() || ec == asio::error::operation_aborted) {
                                return;
                            }
                            on_exit_ready(puid, serial, ec);
                        });
}

void supervisor::impl::on_exit_ready(puid_t puid, std::uint64_t serial, const std::error_code& ec)
{
    auto it = processes_.find(puid);
    if (it == processes_.end() || it->second->serial != serial || it->second->reaped) {
        return;
    }
    std::shared_ptr<process_state> p = it->second;
    if (ec) {
        logger().warn("supervisor: waiting for puid {} (pid {}): {}", puid, p->pid, ec.message());
    }
    siginfo_t info{};
    int rc = 0;
    do {
        rc = ::waitid(P_PIDFD, static_cast<id_t>(p->pidfd.native_handle()), &info,
                      WEXITED | WNOHANG);
    } while (rc != 0 && errno == EINTR);
    // Asio made the pidfd non-blocking: a wake-up without an exit reads as EAGAIN (or as
    // si_pid == 0 from WNOHANG on a blocking one).
    if ((rc != 0 && errno == EAGAIN) || (rc == 0 && info.si_pid == 0)) {
        watch_exit(p);
        return;
    }
    exit_status status;
    if (rc != 0) {
        // ECHILD: somebody else reaped it (SIGCHLD ignored, or a waitpid(-1) elsewhere).
        logger().error("supervisor: reaping puid {} (pid {}): {}", puid, p->pid,
                       errno_text(errno));
        status.exit_code = -1;
    } else if (info.si_code == CLD_EXITED) {
        status.exit_code = info.si_status;
    } else {
        status.signal = info.si_status;  // CLD_KILLED, CLD_DUMPED
    }
    p->reaped = true;
    std::error_code ignored;
    p->pidfd.close(ignored);

    // What the process left in its pipes goes out first.
    for (const std::uint64_t stream : p->streams) {
        drain(stream);
    }
    it = processes_.find(puid);
    if (it != processes_.end() && it->second == p) {
        processes_.erase(it);
    }
    if (callbacks_.on_exit) {
        callbacks_.on_exit(puid, status);
    }
    process_reported(serial);
}

void supervisor::impl::process_reported(std::uint64_t serial)
{
    for (auto it = terminations_.begin(); it != terminations_.end();) {
        const std::shared_ptr<termination> t = it->second;
        t->pending.erase(serial);
        if (t->pending.empty()) {
            t->timer.cancel();
            post_done(std::move(t->done));
            it = terminations_.erase(it);
        } else {
            ++it;
        }
    }
}

// ---- signals ---------------------------------------------------------------------------------

bool supervisor::impl::signal(puid_t puid, int sig)
{
    if (sig < 0 || sig > SIGRTMAX) {
        throw_error(errc::invalid_argument, fmt::format("invalid signal number {}", sig));
    }
    const auto it = processes_.find(puid);
    if (it == processes_.end() || it->second->reaped) {
        return false;
    }
    process_state& p = *it->second;
    if (!send_signal(p.pid, p.pidfd.native_handle(), sig)) {
        if (errno == ESRCH) {
            return true;  // it has exited; on_exit is on its way
        }
        throw_system_error_on(true, fmt::format("kill puid {} (pid {})", puid, p.pid));
    }
    return true;
}

void supervisor::impl::terminate_all(std::chrono::milliseconds grace,
                                     std::function<void()> done)
{
    auto t = std::make_shared<termination>(io_);
    t->done = std::move(done);
    for (const auto& [puid, p] : processes_) {
        if (!p->reaped) {
            t->pending.emplace(p->serial, puid);
        }
    }
    if (t->pending.empty()) {
        post_done(std::move(t->done));
        return;
    }
    const std::uint64_t id = next_serial_++;
    terminations_.emplace(id, t);
    for (const auto& [serial, puid] : t->pending) {
        process_state& p = *processes_.at(puid);
        if (!send_signal(p.pid, p.pidfd.native_handle(), SIGTERM) && errno != ESRCH) {
            logger().warn("supervisor: SIGTERM to puid {} (pid {}): {}", puid, p.pid,
                          errno_text(errno));
        }
    }
    t->timer.expires_after(std::max(grace, std::chrono::milliseconds(0)));
    t->timer.async_wait([this, alive = token(), id](const std::error_code& ec) {
        if (alive.expired() || ec) {
            return;
        }
        on_grace_over(id);
    });
}

void supervisor::impl::on_grace_over(std::uint64_t id)
{
    const auto it = terminations_.find(id);
    if (it == terminations_.end()) {
        return;
    }
    for (const auto& [serial, puid] : it->second->pending) {
        const auto p = processes_.find(puid);
        if (p == processes_.end() || p->second->serial != serial || p->second->reaped) {
            continue;
        }
        if (!send_signal(p->second->pid, p->second->pidfd.native_handle(), SIGKILL) &&
            errno != ESRCH) {
            logger().warn("supervisor: SIGKILL to puid {} (pid {}): {}", puid, p->second->pid,
                          errno_text(errno));
        }
    }
}

void supervisor::impl::post_done(std::function<void()> done)
{
    asio::post(io_, [alive = token(), done = std::move(done)] {
        if (!alive.expired() && done) {
            done();
        }
    });
}

// ---- output ----------------------------------------------------------------------------------

void supervisor::impl::rearm(const std::shared_ptr<stream_state>& s, pump_result result)
{
    switch (result) {
    case pump_result::eof:
        close_stream(s->serial);
        return;
    case pump_result::would_block:
        if (!s->wait_pending) {
            s->wait_pending = true;
            s->pipe.async_wait(asio::posix::stream_descriptor::wait_read,
                               [this, alive = token(),
                                serial = s->serial](const std::error_code& ec) {
                                   if (alive.expired() ||
                                       ec == asio::error::operation_aborted) {
                                       return;
                                   }
                                   on_stream_ready(serial, true, ec);
                               });
        }
        return;
    case pump_result::budget_spent:
        if (!s->post_pending) {
            s->post_pending = true;
            asio::post(io_, [this, alive = token(), serial = s->serial] {
                if (alive.expired()) {
                    return;
                }
                on_stream_ready(serial, false, {});
            });
        }
        return;
    }
}

void supervisor::impl::on_stream_ready(std::uint64_t serial, bool from_wait,
                                       const std::error_code& ec)
{
    const auto it = streams_.find(serial);
    if (it == streams_.end()) {
        return;
    }
    const std::shared_ptr<stream_state> s = it->second;
    (from_wait ? s->wait_pending : s->post_pending) = false;
    pump_result result = pump(*s, read_budget);
    if (ec && result == pump_result::would_block) {
        logger().warn("supervisor: waiting on output of puid {}: {}", s->puid, ec.message());
        emit_partial(*s);
        result = pump_result::eof;
    }
    rearm(s, result);
}

void supervisor::impl::drain(std::uint64_t serial)
{
    const auto it = streams_.find(serial);
    if (it == streams_.end()) {
        return;
    }
    const std::shared_ptr<stream_state> s = it->second;
    int queued = 0;
    if (::ioctl(s->pipe.native_handle(), FIONREAD, &queued) != 0 || queued < 0) {
        queued = 0;
    }
    rearm(s, pump(*s, static_cast<std::size_t>(queued) + read_budget));
}

pump_result supervisor::impl::pump(stream_state& s, std::size_t budget)
{
    std::size_t total = 0;
    for (;;) {
        const ssize_t n = ::read(s.pipe.native_handle(), scratch_.data(), scratch_.size());
        if (n > 0) {
            total += static_cast<std::size_t>(n);
            consume(s, scratch_.data(), static_cast<std::size_t>(n));
            if (total >= budget) {
                return pump_result::budget_spent;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return pump_result::would_block;
        }
        if (n < 0) {
            logger().warn("supervisor: reading output of puid {}: {}", s.puid,
                          errno_text(errno));
        }
        emit_partial(s);
        return pump_result::eof;
    }
}

void supervisor::impl::close_stream(std::uint64_t serial)
{
    const auto it = streams_.find(serial);
    if (it == streams_.end()) {
        return;
    }
    const std::shared_ptr<stream_state> s = it->second;
    streams_.erase(it);
    std::error_code ignored;
    s->pipe.close(ignored);
}

// Splits `data` into lines (with s.partial in front). Invariant: s.partial < max_line.
void supervisor::impl::consume(stream_state& s, const char* data, std::size_t size)
{
    while (size > 0) {
        const std::size_t room = max_line - s.partial.size();
        const std::size_t look = std::min(size, room);
        const void* newline = std::memchr(data, '\n', look);
        if (newline != nullptr) {
            const auto length = static_cast<std::size_t>(static_cast<const char*>(newline) -
                                                         data) + 1;
            if (s.partial.empty()) {
                emit(s, std::string_view(data, length));
            } else {
                s.partial.append(data, length);
                emit_partial(s);
            }
            data += length;
            size -= length;
            continue;
        }
        s.partial.append(data, look);
        data += look;
        size -= look;
        if (s.partial.size() >= max_line) {
            emit_partial(s);
        }
    }
}

void supervisor::impl::emit_partial(stream_state& s)
{
    if (s.partial.empty()) {
        return;
    }
    const std::string line = std::exchange(s.partial, std::string());
    emit(s, line);
}

void supervisor::impl::emit(const stream_state& s, std::string_view data)
{
    if (callbacks_.on_output) {
        callbacks_.on_output(s.puid, s.which, data);
    }
}

// ---- teardown --------------------------------------------------------------------------------

supervisor::impl::~impl()
{
    alive_.reset();  // from here on, no handler reaches a callback
    for (const auto& [puid, p] : processes_) {
        if (!p->reaped && !send_signal(p->pid, p->pidfd.native_handle(), SIGKILL) &&
            errno != ESRCH) {
            logger().error("supervisor: SIGKILL to puid {} (pid {}): {}", puid, p->pid,
                           errno_text(errno));
        }
    }
    for (const auto& [puid, p] : processes_) {
        if (p->reaped) {
            continue;
        }
        // By pid: Asio made the pidfd non-blocking, and the unreaped child keeps its pid.
        siginfo_t info{};
        while (::waitid(P_PID, static_cast<id_t>(p->pid), &info, WEXITED) != 0 &&
               errno == EINTR) {
        }
        std::error_code ignored;
        p->pidfd.close(ignored);
    }
    for (const auto& [serial, s] : streams_) {
        std::error_code ignored;
        s->pipe.close(ignored);
    }
    for (const auto& [id, t] : terminations_) {
        t->timer.cancel();
    }
}

// ---- the public face -------------------------------------------------------------------------

supervisor::supervisor(asio::io_context& io, supervisor_callbacks callbacks)
    : impl_(std::make_unique<impl>(io, std::move(callbacks)))
{
}

supervisor::~supervisor() = default;

pid_t supervisor::launch(const launch_request& request) { return impl_->launch(request); }

bool supervisor::signal(puid_t puid, int sig) { return impl_->signal(puid, sig); }

void supervisor::terminate_all(std::chrono::milliseconds grace, std::function<void()> done)
{
    impl_->terminate_all(grace, std::move(done));
}

std::size_t supervisor::running() const noexcept { return impl_->processes_.size(); }

pid_t supervisor::pid_of(puid_t puid) const noexcept
{
    const auto it = impl_->processes_.find(puid);
    return it == impl_->processes_.end() || it->second->reaped ? 0 : it->second->pid;
}

}  // namespace dragonx::rt::detail
