// supervisor_test.cpp - the node daemon's process supervisor with real programs: exit codes
// and signals, line-split output (order, bursts, long lines, late grandchildren), program and
// cwd checks, environment, cwd, CPU affinity, stdio targets, process-group signals,
// terminate_all, the destructor, many processes, re-entrant callbacks.
//
// Notes:
// - Every test runs its io_context with a bound (run_until, 10 s by default); a test that
//   fails leaves no process behind: the supervisor's destructor SIGKILLs and reaps them.
// - Grandchildren are orphans once their parent dies; whether our init reaps them promptly
//   is not ours to know, so "gone" accepts a zombie as well as ESRCH.
// - Files go to a private temporary directory that each test removes.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>

#include <dragonx/common/unique_fd.hpp>

#include "supervisor.hpp"
#include "support.hpp"

using dragonx::errc;
using dragonx::test::errc_of;
namespace rt = dragonx::rt;
using rt::detail::exit_status;
using rt::detail::launch_request;
using rt::detail::supervisor;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

// A supervisor on its own io_context, recording everything it reports.
struct harness {
    harness()
    {
        sup = std::make_unique<supervisor>(
            io, rt::detail::supervisor_callbacks{
                    .on_output =
                        [this](rt::puid_t puid, rt::output_stream stream, std::string_view data) {
                            auto& lines = stream == rt::output_stream::out ? out[puid] : err[puid];
                            lines.emplace_back(data);
                            if (on_output) {
                                on_output(puid, stream, data);
                            }
                        },
                    .on_exit =
                        [this](rt::puid_t puid, exit_status status) {
                            if (exits.count(puid) != 0) {
                                ++duplicate_exits;
                            }
                            exits[puid] = status;
                            exit_times[puid] = clock_type::now();
                            out_at_exit[puid] = out[puid].size();
                            err_at_exit[puid] = err[puid].size();
                            if (on_exit) {
                                on_exit(puid, status);
                            }
                        }});
    }

    // Runs the io_context until `done()` holds; false if `limit` passed first.
    template <class Predicate>
    bool run_until(Predicate done, std::chrono::milliseconds limit = 10s)
    {
        const auto until = clock_type::now() + limit;
        while (!done()) {
            if (clock_type::now() >= until) {
                return false;
            }
            if (io.stopped()) {
                io.restart();
            }
            if (io.run_one_for(50ms) == 0) {
                std::this_thread::sleep_for(1ms);
            }
        }
        return true;
    }

    bool wait_exit(rt::puid_t puid, std::chrono::milliseconds limit = 10s)
    {
        return run_until([&] { return exits.count(puid) != 0; }, limit);
    }

    bool has_line(rt::puid_t puid, const std::string& line)
    {
        const auto& lines = out[puid];
        return std::find(lines.begin(), lines.end(), line) != lines.end();
    }

    asio::io_context io;
    std::map<rt::puid_t, std::vector<std::string>> out;
    std::map<rt::puid_t, std::vector<std::string>> err;
    std::map<rt::puid_t, exit_status> exits;
    std::map<rt::puid_t, clock_type::time_point> exit_times;
    std::map<rt::puid_t, std::size_t> out_at_exit;
    std::map<rt::puid_t, std::size_t> err_at_exit;
    int duplicate_exits = 0;
    std::function<void(rt::puid_t, rt::output_stream, std::string_view)> on_output;
    std::function<void(rt::puid_t, exit_status)> on_exit;
    std::unique_ptr<supervisor> sup;  // last: destroyed first
};

launch_request request(rt::puid_t puid, std::string exe, std::vector<std::string> args = {})
{
    launch_request r;
    r.puid = puid;
    r.exe = std::move(exe);
    r.args = std::move(args);
    r.env = {"PATH=/usr/bin:/bin"};
    return r;
}

launch_request shell(rt::puid_t puid, std::string script)
{
    return request(puid, "/bin/sh", {"-c", std::move(script)});
}

class temp_dir {
public:
    temp_dir()
    {
        std::string name = (std::filesystem::temp_directory_path() / "dragonx-sup-XXXXXX");
        if (::mkdtemp(name.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = std::filesystem::canonical(name);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir()
    {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] std::string operator/(const std::string& name) const
    {
        return (path_ / name).string();
    }

private:
    std::filesystem::path path_;
};

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_file(const std::string& path, const std::string& text, mode_t mode)
{
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
}

// True if `pid` no longer exists or is a zombie (an orphan our init has not reaped yet).
bool process_gone(pid_t pid)
{
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
        return true;
    }
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto paren = stat.rfind(')');
    return stat.empty() || (paren != std::string::npos && paren + 2 < stat.size() &&
                            stat[paren + 2] == 'Z');
}

bool wait_gone(pid_t pid, std::chrono::milliseconds limit = 5s)
{
    const auto until = clock_type::now() + limit;
    while (!process_gone(pid)) {
        if (clock_type::now() >= until) {
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

// Processes whose parent is this test process (zombies included).
int our_children()
{
    int count = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        const std::string stat = read_file(entry.path().string() + "/stat");
        const auto paren = stat.rfind(')');
        if (paren == std::string::npos) {
            continue;
        }
        std::istringstream fields(stat.substr(paren + 2));
        std::string state;
        pid_t parent = 0;
        fields >> state >> parent;
        count += parent == ::getpid() ? 1 : 0;
    }
    return count;
}

pid_t read_pid(const std::string& path)
{
    const std::string text = read_file(path);
    return text.empty() ? 0 : static_cast<pid_t>(std::stol(text));
}

std::vector<int> thread_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(::sched_getaffinity(0, sizeof(set), &set) == 0);
    std::vector<int> cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) {
            cpus.push_back(cpu);
        }
    }
    return cpus;
}

}  // namespace

TEST_CASE("supervisor: exit codes and death by signal", "[runtime][supervisor]")
{
    harness h;
    const pid_t pid = h.sup->launch(request(1, "/bin/true"));
    CHECK(pid > 0);
    CHECK(h.sup->pid_of(1) == pid);
    h.sup->launch(shell(2, "exit 3"));
    h.sup->launch(shell(3, "kill -9 $$"));
    CHECK(h.sup->running() == 3);
    CHECK(h.sup->pid_of(99) == 0);

    REQUIRE(h.run_until([&] { return h.exits.size() == 3; }));
    CHECK(h.exits[1].exit_code == 0);
    CHECK(h.exits[1].signal == 0);
    CHECK(h.exits[2].exit_code == 3);
    CHECK(h.exits[2].signal == 0);
    CHECK(h.exits[3].signal == SIGKILL);
    CHECK(h.sup->running() == 0);
    CHECK(h.sup->pid_of(1) == 0);
    CHECK(h.duplicate_exits == 0);
    // The exited process was reaped: its pid is gone.
    CHECK((::kill(pid, 0) != 0 && errno == ESRCH));
}

TEST_CASE("supervisor: output lines in order, streams apart, last line unterminated",
          "[runtime][supervisor]")
{
    harness h;
    h.sup->launch(shell(1, "echo one; echo e1 >&2; echo two; printf 'e2\\n' >&2; "
                           "printf 'three'; printf 'e3' >&2"));
    REQUIRE(h.wait_exit(1));
    CHECK(h.out[1] == std::vector<std::string>{"one\n", "two\n", "three"});
    CHECK(h.err[1] == std::vector<std::string>{"e1\n", "e2\n", "e3"});
    // Everything was delivered before on_exit.
    CHECK(h.out_at_exit[1] == 3);
    CHECK(h.err_at_exit[1] == 2 + 1);

    // Split lines: one line written in pieces is delivered once, whole.
    h.sup->launch(shell(2, "printf 'ab'; sleep 0.1; printf 'cd\\nef'; sleep 0.1; echo gh"));
    REQUIRE(h.wait_exit(2));
    CHECK(h.out[2] == std::vector<std::string>{"abcd\n", "efgh\n"});
}

TEST_CASE("supervisor: a large burst arrives whole and before on_exit", "[runtime][supervisor]")
{
    harness h;
    constexpr int lines = 20000;
    const std::string pad(50, '.');
    h.sup->launch(shell(1, "i=0; while [ $i -lt " + std::to_string(lines) +
                               " ]; do echo \"line $i " + pad + "\"; echo \"err $i\" >&2; "
                               "i=$((i+1)); done"));
    REQUIRE(h.wait_exit(1, 60s));
    CHECK(h.exits[1].exit_code == 0);
    REQUIRE(h.out[1].size() == lines);
    REQUIRE(h.err[1].size() == lines);
    CHECK(h.out_at_exit[1] == lines);
    CHECK(h.err_at_exit[1] == lines);
    std::size_t bytes = 0;
    int wrong = 0;
    for (int i = 0; i < lines; ++i) {
        bytes += h.out[1][i].size();
        if (h.out[1][i] != "line " + std::to_string(i) + " " + pad + "\n" ||
            h.err[1][i] != "err " + std::to_string(i) + "\n") {
            ++wrong;
        }
    }
    CHECK(wrong == 0);
    CHECK(bytes > (1u << 20));

    // Written in one go right before exiting: the drain at exit must deliver it all.
    h.sup->launch(shell(2, "head -c 3000000 /dev/zero | tr '\\0' 'x' | fold -w 99"));
    REQUIRE(h.wait_exit(2, 60s));
    std::size_t total = 0;
    for (const auto& line : h.out[2]) {
        total += line.size();
    }
    CHECK(h.out_at_exit[2] == h.out[2].size());
    CHECK(total == 3000000 + 3000000 / 99);  // fold's last piece has no newline
}

TEST_CASE("supervisor: output still in the pipe at exit is delivered once, before on_exit",
          "[runtime][supervisor]")
{
    harness h;
    // The io thread is held up in a callback while puid 2 exits and, after that, its
    // grandchild writes: the exit is seen first, and the drain has to fetch the line.
    h.on_output = [&](rt::puid_t puid, rt::output_stream, std::string_view) {
        if (puid == 1) {
            h.sup->launch(shell(2, "(sleep 0.1; echo late) & exit 0"));
            std::this_thread::sleep_for(400ms);
        }
    };
    h.sup->launch(request(1, "/bin/echo", {"go"}));
    REQUIRE(h.wait_exit(2));
    CHECK(h.out_at_exit[2] == 1);
    h.run_until([] { return false; }, 200ms);
    CHECK(h.out[2] == std::vector<std::string>{"late\n"});
}

TEST_CASE("supervisor: a line longer than 64 KiB is delivered in pieces", "[runtime][supervisor]")
{
    harness h;
    h.sup->launch(shell(1, "head -c 70000 /dev/zero | tr '\\0' 'x'; echo; echo end"));
    REQUIRE(h.wait_exit(1));
    REQUIRE(h.out[1].size() == 3);
    CHECK(h.out[1][0] == std::string(65536, 'x'));
    CHECK(h.out[1][1] == std::string(70000 - 65536, 'x') + "\n");
    CHECK(h.out[1][2] == "end\n");
}

TEST_CASE("supervisor: bad programs, directories and requests are errors from launch",
          "[runtime][supervisor]")
{
    harness h;
    temp_dir dir;
    std::string what;

    CHECK(errc_of([&] { h.sup->launch(request(1, "dragonx-no-such-program")); }, &what) ==
          errc::not_found);
    CHECK(what.find("dragonx-no-such-program") != std::string::npos);
    CHECK(errc_of([&] { h.sup->launch(request(1, "/nonexistent/dir/prog")); }, &what) ==
          errc::not_found);
    CHECK(what.find("/nonexistent/dir/prog") != std::string::npos);

    write_file(dir / "plain", "#!/bin/sh\necho hi\n", 0644);
    CHECK(errc_of([&] { h.sup->launch(request(1, dir / "plain")); }, &what) ==
          errc::invalid_argument);
    CHECK(what.find(dir / "plain") != std::string::npos);
    CHECK(errc_of([&] { h.sup->launch(request(1, dir.path().string())); }) ==
          errc::invalid_argument);
    // Executable, but not a program: no #! line, or a #! interpreter that does not exist.
    write_file(dir / "no-shebang", "echo hi\n", 0755);
    CHECK(errc_of([&] { h.sup->launch(request(1, dir / "no-shebang")); }, &what) ==
          errc::invalid_argument);
    CHECK(what.find(dir / "no-shebang") != std::string::npos);
    write_file(dir / "bad-interpreter", "#!/nonexistent/interpreter\necho hi\n", 0755);
    CHECK(errc_of([&] { h.sup->launch(request(1, dir / "bad-interpreter")); }, &what) ==
          errc::not_found);
    CHECK(what.find(dir / "bad-interpreter") != std::string::npos);

    auto in_missing_dir = request(1, "/bin/true");
    in_missing_dir.cwd = dir / "missing";
    CHECK(errc_of([&] { h.sup->launch(in_missing_dir); }, &what) == errc::invalid_argument);
    CHECK(what.find(dir / "missing") != std::string::npos);
    auto in_file = request(1, "/bin/true");
    in_file.cwd = dir / "plain";
    CHECK(errc_of([&] { h.sup->launch(in_file); }, &what) == errc::invalid_argument);
    CHECK(what.find(dir / "plain") != std::string::npos);

    auto bad_output = request(1, "/bin/true");
    bad_output.out = {rt::stdio_target::file, dir / "missing/out.log"};
    CHECK(errc_of([&] { h.sup->launch(bad_output); }) == errc::invalid_argument);

    auto bad_cpu = request(1, "/bin/true");
    bad_cpu.cpus = {-1};
    CHECK(errc_of([&] { h.sup->launch(bad_cpu); }) == errc::invalid_argument);

    CHECK(h.sup->running() == 0);

    // A duplicate puid is refused while the first runs.
    h.sup->launch(request(1, "/bin/sleep", {"100"}));
    CHECK(errc_of([&] { h.sup->launch(request(1, "/bin/true")); }) == errc::invalid_argument);
    CHECK(h.sup->running() == 1);
    CHECK(h.sup->signal(1, SIGKILL));
    REQUIRE(h.wait_exit(1));
    CHECK(h.exits[1].signal == SIGKILL);
    CHECK(errc_of([&] { h.sup->signal(1, -5); }) == errc::invalid_argument);
    CHECK(h.exits.size() == 1);
}

TEST_CASE("supervisor: names are looked up in the request's PATH", "[runtime][supervisor]")
{
    harness h;
    temp_dir dir;
    write_file(dir / "dragonx-test-prog", "#!/bin/sh\necho found \"$0\"\n", 0755);

    auto by_name = request(1, "dragonx-test-prog");
    by_name.env = {"PATH=/nonexistent:" + dir.path().string()};
    h.sup->launch(by_name);
    REQUIRE(h.wait_exit(1));
    CHECK(h.out[1] == std::vector<std::string>{"found " + (dir / "dragonx-test-prog") + "\n"});

    // Not in the daemon's PATH, nor in the default one.
    CHECK(errc_of([&] { h.sup->launch(request(2, "dragonx-test-prog")); }) == errc::not_found);

    // A relative path is taken from the request's cwd; argv[0] is the exe as given.
    auto relative = request(3, "./dragonx-test-prog");
    relative.cwd = dir.path().string();
    h.sup->launch(relative);
    REQUIRE(h.wait_exit(3));
    CHECK(h.out[3] == std::vector<std::string>{"found ./dragonx-test-prog\n"});
}

TEST_CASE("supervisor: the environment is exactly the request's", "[runtime][supervisor]")
{
    harness h;
    auto r = request(1, "/usr/bin/printenv");
    r.env = {"A=1", "B=two words"};
    h.sup->launch(r);
    REQUIRE(h.wait_exit(1));
    auto lines = h.out[1];
    std::sort(lines.begin(), lines.end());
    CHECK(lines == std::vector<std::string>{"A=1\n", "B=two words\n"});
}

TEST_CASE("supervisor: the working directory is applied", "[runtime][supervisor]")
{
    harness h;
    temp_dir dir;
    auto r = request(1, "pwd");
    r.cwd = dir.path().string();
    h.sup->launch(r);
    REQUIRE(h.wait_exit(1));
    CHECK(h.out[1] == std::vector<std::string>{dir.path().string() + "\n"});
}

TEST_CASE("supervisor: CPU affinity is applied to the child only", "[runtime][supervisor]")
{
    harness h;
    const std::vector<int> before = thread_cpus();
    REQUIRE(!before.empty());
    const int cpu = before.front();

    auto r = shell(1, "grep Cpus_allowed_list /proc/self/status");
    r.cpus = {cpu};
    h.sup->launch(r);
    CHECK(thread_cpus() == before);
    REQUIRE(h.wait_exit(1));
    CHECK(h.out[1] == std::vector<std::string>{"Cpus_allowed_list:\t" + std::to_string(cpu) +
                                               "\n"});

    // No usable CPU: an error, and the affinity is left as it was.
    auto unusable = request(2, "/bin/true");
    unusable.cpus = {60000};
    CHECK(errc_of([&] { h.sup->launch(unusable); }) == errc::invalid_argument);
    CHECK(thread_cpus() == before);

    // Empty: inherited.
    h.sup->launch(shell(3, "grep Cpus_allowed_list /proc/self/status"));
    REQUIRE(h.wait_exit(3));
    const std::string own = read_file("/proc/self/status");
    const auto at = own.find("Cpus_allowed_list:");
    REQUIRE(at != std::string::npos);
    CHECK(h.out[3] == std::vector<std::string>{own.substr(at, own.find('\n', at) - at + 1)});
}

TEST_CASE("supervisor: stdout and stderr to null and to files (appended)",
          "[runtime][supervisor]")
{
    harness h;
    temp_dir dir;
    auto first = shell(1, "echo a; echo b >&2");
    first.out = {rt::stdio_target::file, dir / "out.log"};
    first.err = {rt::stdio_target::null, ""};
    h.sup->launch(first);
    REQUIRE(h.wait_exit(1));
    CHECK(h.out[1].empty());
    CHECK(h.err[1].empty());
    CHECK(read_file(dir / "out.log") == "a\n");

    // Appended; a relative path is taken from the cwd.
    auto second = shell(2, "echo c; echo d >&2");
    second.cwd = dir.path().string();
    second.out = {rt::stdio_target::file, "out.log"};
    second.err = {rt::stdio_target::file, "err.log"};
    h.sup->launch(second);
    REQUIRE(h.wait_exit(2));
    CHECK(read_file(dir / "out.log") == "a\nc\n");
    CHECK(read_file(dir / "err.log") == "d\n");
    const mode_t umask = ::umask(0);
    ::umask(umask);
    struct stat st {};
    REQUIRE(::stat((dir / "err.log").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == (0644 & ~umask));
}

TEST_CASE("supervisor: the child's stdin is /dev/null and no daemon fd leaks into it",
          "[runtime][supervisor]")
{
    harness h;
    int fds[2] = {-1, -1};
    REQUIRE(::pipe(fds) == 0);  // deliberately without O_CLOEXEC
    const dragonx::unique_fd a(fds[0]);
    const dragonx::unique_fd b(fds[1]);
    h.sup->launch(shell(1, "cat; ls /proc/$$/fd"));
    REQUIRE(h.wait_exit(1));
    CHECK(h.exits[1].exit_code == 0);
    CHECK(h.out[1] == std::vector<std::string>{"0\n", "1\n", "2\n"});
}

TEST_CASE("supervisor: signal() reaches the child's children", "[runtime][supervisor]")
{
    harness h;
    temp_dir dir;
    CHECK_FALSE(h.sup->signal(1, SIGTERM));
    bool signalled = false;
    h.on_output = [&](rt::puid_t puid, rt::output_stream, std::string_view line) {
        if (line == "ready\n") {
            signalled = h.sup->signal(puid, SIGTERM);  // re-entrant, from a callback
        }
    };
    h.sup->launch(shell(1, "sleep 100 & echo $! > " + (dir / "gpid") + "; echo ready; wait"));
    REQUIRE(h.wait_exit(1));
    CHECK(signalled);
    CHECK(h.exits[1].signal == SIGTERM);
    const pid_t grandchild = read_pid(dir / "gpid");
    REQUIRE(grandchild > 0);
    CHECK(wait_gone(grandchild));
    CHECK_FALSE(h.sup->signal(1, SIGTERM));
}

TEST_CASE("supervisor: terminate_all escalates to SIGKILL after the grace period",
          "[runtime][supervisor]")
{
    harness h;
    int ready = 0;
    h.on_output = [&](rt::puid_t, rt::output_stream, std::string_view line) {
        ready += line == "ready\n" ? 1 : 0;
    };
    h.sup->launch(shell(1, "trap '' TERM; echo ready; sleep 100"));
    h.sup->launch(request(2, "/bin/sleep", {"100"}));
    REQUIRE(h.run_until([&] { return ready == 1; }));

    int done = 0;
    std::size_t exits_at_done = 0;
    const auto start = clock_type::now();
    h.sup->terminate_all(500ms, [&] {
        ++done;
        exits_at_done = h.exits.size();
    });
    // Not its business: launched afterwards.
    h.sup->launch(request(3, "/bin/sleep", {"100"}));
    REQUIRE(h.run_until([&] { return done != 0; }));
    CHECK(exits_at_done == 2);
    CHECK(h.exits[2].signal == SIGTERM);
    CHECK(h.exits[1].signal == SIGKILL);
    CHECK(h.exit_times[1] - start >= 500ms);
    CHECK(h.exit_times[2] - start < 500ms);
    CHECK(h.exits.count(3) == 0);
    CHECK(h.sup->running() == 1);

    h.run_until([] { return false; }, 100ms);
    CHECK(done == 1);

    // With nothing else running, done is posted, not called.
    CHECK(h.sup->signal(3, SIGKILL));
    REQUIRE(h.wait_exit(3));
    int idle_done = 0;
    h.sup->terminate_all(1s, [&] { ++idle_done; });
    CHECK(idle_done == 0);
    REQUIRE(h.run_until([&] { return idle_done != 0; }));
    CHECK(idle_done == 1);
}

TEST_CASE("supervisor: a grandchild holding the pipe delays neither on_exit nor its output",
          "[runtime][supervisor]")
{
    harness h;
    const auto start = clock_type::now();
    h.sup->launch(shell(1, "(sleep 1; echo late) & echo early"));
    REQUIRE(h.wait_exit(1));
    CHECK(h.exit_times[1] - start < 800ms);
    CHECK(h.out_at_exit[1] == 1);
    CHECK(h.out[1].front() == "early\n");
    CHECK(h.sup->running() == 0);
    REQUIRE(h.run_until([&] { return h.out[1].size() == 2; }));
    CHECK(h.out[1].back() == "late\n");
}

TEST_CASE("supervisor: the destructor kills and reaps what still runs, silently",
          "[runtime][supervisor]")
{
    harness h;
    temp_dir dir;
    int ready = 0;
    h.on_output = [&](rt::puid_t, rt::output_stream, std::string_view line) {
        ready += line == "ready\n" ? 1 : 0;
    };
    const pid_t sleeper = h.sup->launch(request(1, "/bin/sleep", {"100"}));
    const pid_t parent = h.sup->launch(
        shell(2, "sleep 100 & echo $! > " + (dir / "gpid") + "; echo ready; wait"));
    const pid_t stubborn = h.sup->launch(shell(3, "trap '' TERM; echo ready; sleep 100"));
    REQUIRE(h.run_until([&] { return ready == 2; }));
    const pid_t grandchild = read_pid(dir / "gpid");
    REQUIRE(grandchild > 0);

    h.sup.reset();
    CHECK(h.exits.empty());
    for (const pid_t pid : {sleeper, parent, stubborn}) {
        CHECK((::kill(pid, 0) != 0 && errno == ESRCH));
    }
    CHECK(wait_gone(grandchild));
    CHECK(our_children() == 0);

    // Handlers cancelled by the destructor run harmlessly.
    h.io.restart();
    h.io.run_for(100ms);
    CHECK(h.exits.empty());
}

TEST_CASE("supervisor: 200 processes, 200 exits", "[runtime][supervisor]")
{
    harness h;
    constexpr rt::puid_t count = 200;
    for (rt::puid_t puid = 1; puid <= count; ++puid) {
        h.sup->launch(request(puid, "/bin/true"));
    }
    REQUIRE(h.run_until([&] { return h.exits.size() == count; }, 60s));
    int failed = 0;
    for (const auto& [puid, status] : h.exits) {
        failed += status.exit_code != 0 || status.signal != 0 ? 1 : 0;
    }
    CHECK(failed == 0);
    CHECK(h.duplicate_exits == 0);
    CHECK(h.sup->running() == 0);
    CHECK(our_children() == 0);
}

TEST_CASE("supervisor: callbacks may launch re-entrantly", "[runtime][supervisor]")
{
    harness h;
    std::string error;
    h.on_exit = [&](rt::puid_t puid, exit_status) {
        if (puid < 5) {
            try {
                h.sup->launch(request(puid + 1, "/bin/echo", {std::to_string(puid + 1)}));
            } catch (const std::exception& e) {
                error = e.what();
            }
        }
    };
    h.sup->launch(request(1, "/bin/echo", {"1"}));
    REQUIRE(h.wait_exit(5));
    CHECK(error.empty());
    for (rt::puid_t puid = 1; puid <= 5; ++puid) {
        CHECK(h.out[puid] == std::vector<std::string>{std::to_string(puid) + "\n"});
    }
    // The same puid may be used again once reported.
    h.exits.erase(1);
    h.out.erase(1);
    h.sup->launch(request(1, "/bin/echo", {"again"}));
    REQUIRE(h.wait_exit(1));
    CHECK(h.out[1] == std::vector<std::string>{"again\n"});
}
