// cleanup_test.cpp - `dragonx cleanup` on fabricated state: a crashed run (dead launcher,
// shm objects, stray daemons, one of them deaf to SIGTERM) is cleaned up; live runs, runs of
// another host or another DRAGONX_TMPDIR, and objects that are not ours are left alone.
//
// Notes:
// - DRAGONX_TMPDIR points at a fresh directory for the duration of each test, so no real run
//   directory is looked at. /proc and /dev/shm are shared with the rest of the machine: other
//   crashed leftovers of this user may be cleaned up too, so the checks are about our ids only.
// - The "daemons" are copies of /bin/sh named dragonx-runtime, blocked in `read` on a pipe we
//   hold: they take no child with them when killed, and exit when the test goes away.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cleanup.hpp"
#include "run_paths.hpp"

extern char** environ;

namespace fs = std::filesystem;
namespace rd = dragonx::rt::detail;
using dragonx::launcher::cleanup_options;
using dragonx::launcher::run_cleanup;

namespace {

std::string read_proc(pid_t pid, const char* file)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/" + file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Everything a test fabricates, undone at the end of the scope whatever happened.
class scratch {
public:
    scratch()
    {
        char name[] = "/tmp/dragonx-cleanup-test-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        root_ = name;
        if (const char* old = std::getenv("DRAGONX_TMPDIR")) {
            old_tmpdir_ = old;
        }
        ::setenv("DRAGONX_TMPDIR", root_.c_str(), 1);
        fs::create_directories(root_ / "bin");
        fs::copy_file("/bin/sh", daemon_path());
        fs::permissions(daemon_path(), fs::perms::owner_all);
    }
    scratch(const scratch&) = delete;
    scratch& operator=(const scratch&) = delete;
    ~scratch()
    {
        for (auto& c : children_) {
            if (!c.reaped) {
                ::kill(c.pid, SIGKILL);
                ::waitpid(c.pid, nullptr, 0);
            }
            ::close(c.stdin_fd);
        }
        for (const auto& name : objects_) {
            ::shm_unlink(("/" + name).c_str());
        }
        if (old_tmpdir_) {
            ::setenv("DRAGONX_TMPDIR", old_tmpdir_->c_str(), 1);
        } else {
            ::unsetenv("DRAGONX_TMPDIR");
        }
        std::error_code ec;
        fs::remove_all(root_, ec);
    }

    [[nodiscard]] fs::path daemon_path() const { return root_ / "bin" / "dragonx-runtime"; }

    /// Creates /dev/shm/<name> (0600), to be unlinked at the end if still there.
    void make_object(const std::string& name)
    {
        const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
        REQUIRE(fd >= 0);
        ::close(fd);
        objects_.push_back(name);
    }

    /// Starts `dragonx-runtime -c '<script>' --run <run> [extra...]`: a shell blocked reading
    /// a pipe.
    pid_t spawn_daemon(const std::string& run, bool deaf_to_sigterm,
                       const std::optional<std::string>& tmpdir = std::nullopt,
                       const std::vector<std::string>& extra = {})
    {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        ::posix_spawn_file_actions_init(&actions);
        ::posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
        const std::string exe = daemon_path().string();
        const std::string script = deaf_to_sigterm ? "trap '' TERM; read x" : "read x";
        std::vector<std::string> args = {"dragonx-runtime", "-c", script, "--run", run};
        args.insert(args.end(), extra.begin(), extra.end());
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        std::vector<std::string> env;
        for (char** e = environ; *e != nullptr; ++e) {
            if (!tmpdir || std::string(*e).rfind("DRAGONX_TMPDIR=", 0) != 0) {
                env.emplace_back(*e);
            }
        }
        if (tmpdir) {
            env.push_back("DRAGONX_TMPDIR=" + *tmpdir);
        }
        std::vector<char*> envp;
        for (auto& e : env) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);
        pid_t pid = 0;
        const int rc =
            ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
        ::posix_spawn_file_actions_destroy(&actions);
        ::close(fds[0]);
        if (rc != 0) {
            ::close(fds[1]);
        }
        REQUIRE(rc == 0);
        children_.push_back({pid, fds[1], false});
        // posix_spawn returns once the exec has begun: the new command line and environment
        // appear in /proc a moment later (on a busy machine, noticeably later).
        const std::string expected_cmdline = [&] {
            std::string all;
            for (const auto& a : args) {
                all += a;
                all += '\0';
            }
            return all;
        }();
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (read_proc(pid, "cmdline") != expected_cmdline &&
               std::chrono::steady_clock::now() < until) {
            ::usleep(1000);
        }
        REQUIRE(read_proc(pid, "cmdline") == expected_cmdline);
        std::error_code ec;
        const fs::path running = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
        INFO("/proc/" << pid << "/exe -> " << running.string());
        REQUIRE(running.filename() == "dragonx-runtime");
        return pid;
    }

    /// Reaps child `pid`, waiting at most `limit`; its wait status, or nullopt if it still runs.
    std::optional<int> reap(pid_t pid, std::chrono::milliseconds limit = std::chrono::seconds(5))
    {
        const auto until = std::chrono::steady_clock::now() + limit;
        for (auto& c : children_) {
            if (c.pid != pid || c.reaped) {
                continue;
            }
            for (;;) {
                int status = 0;
                if (::waitpid(pid, &status, WNOHANG) == pid) {
                    c.reaped = true;
                    return status;
                }
                if (std::chrono::steady_clock::now() >= until) {
                    return std::nullopt;
                }
                ::usleep(5000);
            }
        }
        return std::nullopt;
    }

    /// True if child `pid` is still running (not exited, not a zombie).
    [[nodiscard]] bool running(pid_t pid) const
    {
        siginfo_t info{};
        return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == 0;
    }

private:
    struct spawned {
        pid_t pid;
        int stdin_fd;
        bool reaped;
    };
    fs::path root_;
    std::optional<std::string> old_tmpdir_;
    std::vector<std::string> objects_;
    std::vector<spawned> children_;
};

/// The identity of a process that existed and is gone: a child, forked and reaped.
rd::process_identity dead_process()
{
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::pause();
        ::_exit(0);
    }
    const auto id = rd::identify_process(pid);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    REQUIRE(id);
    return *id;
}

bool shm_exists(const std::string& name)
{
    return fs::exists(fs::path("/dev/shm") / name);
}

std::vector<std::string> lines_of(const std::string& text)
{
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

/// The index of the line that equals `line` (or starts with it, if `prefix`); -1 if none.
long find_line(const std::vector<std::string>& lines, const std::string& line, bool prefix = false)
{
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (lines[i] == line || (prefix && lines[i].rfind(line, 0) == 0)) {
            return static_cast<long>(i);
        }
    }
    return -1;
}

bool mentions(const std::vector<std::string>& lines, const std::string& word)
{
    for (const auto& l : lines) {
        if (l.find(word) != std::string::npos) {
            return true;
        }
    }
    return false;
}

/// The fabricated state: one crashed run and several things that must not be touched.
struct fabricated {
    scratch s;
    rd::process_identity dead = dead_process();
    // (a) a crashed run: dead launcher on this host, two objects, two stray daemons.
    std::string crashed = rd::make_run_id();
    std::vector<std::string> crashed_objects = {rd::run_shm_prefix(crashed) + "n0-pool",
                                                rd::run_shm_prefix(crashed) + "n0-chan-1"};
    fs::path crashed_dir;
    pid_t polite = 0;  // goes on SIGTERM
    pid_t deaf = 0;    // needs SIGKILL
    // (a2) a crashed test run: its pid is gone.
    std::string dead_test = "t" + std::to_string(dead.pid);
    std::string dead_test_object = rd::run_shm_prefix(dead_test) + "n0-0";
    // (b) a live run: its launcher is this process.
    std::string live = rd::make_run_id();
    std::string live_object = rd::run_shm_prefix(live) + "n0-pool";
    fs::path live_dir;
    // (b2) a run launched from another host, with a dead pid: we cannot tell, so live.
    std::string remote = rd::make_run_id();
    std::string remote_object = rd::run_shm_prefix(remote) + "n0-pool";
    // (b3) a run whose daemon uses another DRAGONX_TMPDIR: its record is elsewhere, so live.
    std::string elsewhere = rd::make_run_id();
    std::string elsewhere_object = rd::run_shm_prefix(elsewhere) + "n0-pool";
    pid_t elsewhere_daemon = 0;
    // (b4) a process-bound run of a live pid.
    std::string solo = "solo" + std::to_string(::getpid());
    std::string solo_object = rd::run_shm_prefix(solo) + "n0-0";
    // (c) objects of ids that are not ours.
    std::string foreign_object = "dragonx-x9p" + std::to_string(::getpid()) + "-n0-0";
    std::string short_object = "dragonx-" + rd::make_run_id().substr(0, 12) + "-n0-0";

    fabricated()
    {
        crashed_dir = rd::create_run_directory(crashed);
        rd::write_launcher_record(crashed, {dead, rd::host_name()});
        fs::create_directory(crashed_dir / "sub");
        std::ofstream(crashed_dir / "node0.sock") << "x";
        for (const auto& o : crashed_objects) {
            s.make_object(o);
        }
        polite = s.spawn_daemon(crashed, false);
        deaf = s.spawn_daemon(crashed, true);
        s.make_object(dead_test_object);

        live_dir = rd::create_run_directory(live);
        const auto me = rd::identify_process(::getpid());
        REQUIRE(me);
        rd::write_launcher_record(live, {*me, rd::host_name()});
        s.make_object(live_object);

        rd::create_run_directory(remote);
        rd::write_launcher_record(remote, {dead, "elsewhere.invalid"});
        s.make_object(remote_object);

        s.make_object(elsewhere_object);
        elsewhere_daemon =
            s.spawn_daemon(elsewhere, false, (rd::user_directory() / "other").string());

        s.make_object(solo_object);
        s.make_object(foreign_object);
        s.make_object(short_object);
    }

    [[nodiscard]] std::string describe() const
    {
        return "crashed " + crashed + " (daemons " + std::to_string(polite) + ", " +
               std::to_string(deaf) + "), dead test " + dead_test + ", live " + live + ", remote " +
               remote + ", elsewhere " + elsewhere + " (daemon " +
               std::to_string(elsewhere_daemon) + "), solo " + solo;
    }

    [[nodiscard]] std::vector<std::string> untouchable_ids() const
    {
        return {live,
                remote,
                elsewhere,
                solo,
                "x9p" + std::to_string(::getpid()),
                short_object.substr(8, 12)};
    }

    void check_untouched() const
    {
        for (const auto& o : {live_object, remote_object, elsewhere_object, solo_object,
                              foreign_object, short_object}) {
            INFO(o);
            CHECK(shm_exists(o));
        }
        CHECK(fs::exists(live_dir / "launcher"));
        CHECK(fs::exists(rd::launcher_record_path(remote)));
        CHECK(s.running(elsewhere_daemon));
    }
};

std::string daemon_line(const char* verb, pid_t pid, const std::string& run)
{
    return std::string(verb) + " dragonx-runtime pid " + std::to_string(pid) + " (run " + run + ")";
}

}  // namespace

TEST_CASE("cleanup --dry-run prints what it would do and changes nothing", "[launcher][cleanup]")
{
    fabricated f;
    INFO(f.describe());
    std::ostringstream out;
    CHECK(run_cleanup(cleanup_options{true}, out, std::chrono::milliseconds(200)) == 0);
    const auto lines = lines_of(out.str());
    INFO(out.str());

    const long stop_polite = find_line(lines, daemon_line("would stop", f.polite, f.crashed));
    const long stop_deaf = find_line(lines, daemon_line("would stop", f.deaf, f.crashed));
    const long object0 = find_line(lines, "would remove /dev/shm/" + f.crashed_objects[1]);
    const long object1 = find_line(lines, "would remove /dev/shm/" + f.crashed_objects[0]);
    const long dead_test = find_line(lines, "would remove /dev/shm/" + f.dead_test_object);
    const long dir = find_line(lines, "would remove " + f.crashed_dir.string());
    CHECK(stop_polite >= 0);
    CHECK(stop_deaf >= 0);
    CHECK(object0 >= 0);
    CHECK(object1 >= 0);
    CHECK(dead_test >= 0);
    CHECK(dir >= 0);
    // Daemons, then objects (sorted by name), then directories.
    CHECK((f.polite < f.deaf) == (stop_polite < stop_deaf));
    CHECK(std::max(stop_polite, stop_deaf) < object0);
    CHECK(object0 < object1);
    CHECK(std::max(object1, dead_test) < dir);
    for (const auto& id : f.untouchable_ids()) {
        INFO(id);
        CHECK_FALSE(mentions(lines, id));
    }

    CHECK(f.s.running(f.polite));
    CHECK(f.s.running(f.deaf));
    for (const auto& o : f.crashed_objects) {
        CHECK(shm_exists(o));
    }
    CHECK(shm_exists(f.dead_test_object));
    CHECK(fs::exists(f.crashed_dir / "launcher"));
    f.check_untouched();
}

TEST_CASE("cleanup stops stray daemons and removes a crashed run's objects and directory",
          "[launcher][cleanup]")
{
    fabricated f;
    INFO(f.describe());
    std::ostringstream out;
    CHECK(run_cleanup(cleanup_options{false}, out, std::chrono::milliseconds(200)) == 0);
    const auto lines = lines_of(out.str());
    INFO(out.str());

    const long stop_polite = find_line(lines, daemon_line("stopped", f.polite, f.crashed));
    const long kill_deaf = find_line(lines, daemon_line("killed", f.deaf, f.crashed), true);
    const long object = find_line(lines, "removed /dev/shm/" + f.crashed_objects[0]);
    const long dir = find_line(lines, "removed " + f.crashed_dir.string());
    CHECK(stop_polite >= 0);
    CHECK(kill_deaf >= 0);
    CHECK(object >= 0);
    CHECK(find_line(lines, "removed /dev/shm/" + f.crashed_objects[1]) >= 0);
    CHECK(find_line(lines, "removed /dev/shm/" + f.dead_test_object) >= 0);
    CHECK(dir >= 0);
    CHECK(std::max(stop_polite, kill_deaf) < object);
    CHECK(object < dir);
    for (const auto& id : f.untouchable_ids()) {
        INFO(id);
        CHECK_FALSE(mentions(lines, id));
    }

    const auto polite_status = f.s.reap(f.polite);
    REQUIRE(polite_status);
    CHECK(WIFSIGNALED(*polite_status));
    CHECK(WTERMSIG(*polite_status) == SIGTERM);
    const auto deaf_status = f.s.reap(f.deaf);
    REQUIRE(deaf_status);
    CHECK(WIFSIGNALED(*deaf_status));
    CHECK(WTERMSIG(*deaf_status) == SIGKILL);
    for (const auto& o : f.crashed_objects) {
        CHECK_FALSE(shm_exists(o));
    }
    CHECK_FALSE(shm_exists(f.dead_test_object));
    CHECK_FALSE(fs::exists(f.crashed_dir));
    f.check_untouched();

    // Nothing of ours is left to do.
    std::ostringstream again;
    CHECK(run_cleanup(cleanup_options{false}, again, std::chrono::milliseconds(200)) == 0);
    const auto again_lines = lines_of(again.str());
    INFO(again.str());
    for (const auto& id : {f.crashed, f.dead_test}) {
        CHECK_FALSE(mentions(again_lines, id));
    }
    for (const auto& id : f.untouchable_ids()) {
        CHECK_FALSE(mentions(again_lines, id));
    }
    // The first pass took whatever else this machine had; unless some other run crashed in
    // between, there is nothing left at all.
    REQUIRE_FALSE(again_lines.empty());
    if (again_lines.size() == 1) {
        CHECK(again_lines.front() == "nothing to clean up");
    }
    f.check_untouched();
}

TEST_CASE("cleanup leaves alone the daemons of a run launched from another host",
          "[launcher][cleanup]")
{
    // A node of a multi-node run keeps no launcher record: only its daemon's --launcher
    // address tells that the run's launcher is elsewhere (and may be alive).
    scratch s;
    const std::string remote = rd::make_run_id();
    const std::string local = rd::make_run_id();
    const std::string remote_object = rd::run_shm_prefix(remote) + "n1-pool";
    const std::string local_object = rd::run_shm_prefix(local) + "n1-pool";
    s.make_object(remote_object);
    s.make_object(local_object);
    // 203.0.113.0/24 is TEST-NET-3: never an address of this host.
    const pid_t remote_daemon =
        s.spawn_daemon(remote, false, std::nullopt, {"--launcher", "203.0.113.7:4000"});
    const pid_t local_daemon =
        s.spawn_daemon(local, false, std::nullopt, {"--launcher", "127.0.0.1:4000"});
    std::ostringstream out;
    CHECK(run_cleanup(cleanup_options{}, out, std::chrono::milliseconds(200)) == 0);
    INFO(out.str());
    CHECK(s.running(remote_daemon));
    CHECK(shm_exists(remote_object));
    CHECK_FALSE(mentions(lines_of(out.str()), remote));
    CHECK(s.reap(local_daemon));
    CHECK_FALSE(shm_exists(local_object));
}
