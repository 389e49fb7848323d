// cleanup.cpp - `dragonx cleanup`: find the runs of this user on this node that are not live
// any more, stop their stray daemons, unlink their shm objects, remove their run directories.
//
// Notes:
// - Candidate runs are the run ids named by /dev/shm/dragonx-<id>-* objects of this uid, by
//   directories in user_directory(), and by the command lines of this uid's dragonx-runtime
//   processes ("--run <id>" or "--run=<id>"). Only ids of our shapes are considered: "r" and
//   12 lowercase hex digits (made by the runtime), "t<pid>" (tests), "solo<pid>".
// - Liveness is as cleanup.hpp says, plus one rule: a daemon started with another
//   DRAGONX_TMPDIR (read from /proc/<pid>/environ) keeps its launcher record where we cannot
//   see it, so its run counts as live, like a run launched from another host. Without this a
//   `dragonx cleanup` run with the wrong DRAGONX_TMPDIR would kill live runs.
// - A daemon is identified by pid and start time; before a signal is sent it is checked to be
//   the same process. It counts as gone once it no longer exists or is a zombie (its parent
//   may not have reaped it yet). SIGTERM first; after `grace`, SIGKILL, then up to another
//   second for it to go.
// - Single-threaded, blocking (at most about grace + 1 s). What cannot be read is skipped;
//   what cannot be removed or stopped is printed and makes the exit code 1.
#include "cleanup.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include "run_paths.hpp"

namespace dragonx::launcher {
namespace {

namespace fs = std::filesystem;
namespace rd = dragonx::rt::detail;

constexpr std::string_view shm_prefix = "dragonx-";
constexpr std::string_view daemon_name = "dragonx-runtime";
constexpr auto poll_step = std::chrono::milliseconds(10);
constexpr auto kill_wait = std::chrono::seconds(1);

/// The pid in the digits of "t<pid>" / "solo<pid>", or nullopt if they are not a valid pid.
std::optional<pid_t> parse_pid(std::string_view digits)
{
    pid_t pid = 0;
    const char* end = digits.data() + digits.size();
    const auto [ptr, ec] = std::from_chars(digits.data(), end, pid);
    if (digits.empty() || digits.front() == '0' || ec != std::errc{} || ptr != end || pid <= 0) {
        return std::nullopt;
    }
    return pid;
}

bool is_launched_run(std::string_view id)
{
    return id.size() == 13 && id.front() == 'r' &&
           std::all_of(id.begin() + 1, id.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// For "t<pid>" and "solo<pid>", the pid the run lives with.
std::optional<pid_t> pid_bound_run(std::string_view id)
{
    if (id.starts_with("solo")) {
        return parse_pid(id.substr(4));
    }
    if (id.starts_with("t")) {
        return parse_pid(id.substr(1));
    }
    return std::nullopt;
}

bool is_our_run_id(std::string_view id)
{
    return is_launched_run(id) || pid_bound_run(id);
}

/// The root DRAGONX_TMPDIR selects ("/tmp" when unset or empty), normalised for comparison.
fs::path tmp_root(const char* value)
{
    const fs::path root = (value != nullptr && *value != '\0') ? fs::path(value) : fs::path("/tmp");
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(root, ec);
    return ec ? root.lexically_normal() : canonical;
}

std::string read_file(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The NUL-separated strings of a /proc/<pid>/cmdline or environ.
std::vector<std::string> split_nul(const std::string& data)
{
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start < data.size()) {
        const auto end = std::min(data.find('\0', start), data.size());
        parts.emplace_back(data, start, end - start);
        start = end + 1;
    }
    return parts;
}

/// The run id a daemon's command line names, if any.
std::optional<std::string> run_of_command_line(const std::vector<std::string>& args)
{
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--run" && i + 1 < args.size()) {
            return args[i + 1];
        }
        if (args[i].starts_with("--run=")) {
            return args[i].substr(6);
        }
    }
    return std::nullopt;
}

/// True if `pid`'s executable is named dragonx-runtime (deleted or not).
bool runs_daemon_executable(pid_t pid)
{
    std::error_code ec;
    std::string exe = fs::read_symlink(fs::path("/proc") / std::to_string(pid) / "exe", ec);
    if (ec) {
        return false;
    }
    constexpr std::string_view deleted = " (deleted)";
    if (exe.ends_with(deleted)) {
        exe.resize(exe.size() - deleted.size());
    }
    return fs::path(exe).filename() == daemon_name;
}

/// The host part of a daemon's "--launcher HOST:PORT" argument, if any.
std::optional<std::string> launcher_host_of(const std::vector<std::string>& args)
{
    for (std::size_t i = 1; i + 1 < args.size(); ++i) {
        if (args[i] == "--launcher") {
            const auto colon = args[i + 1].rfind(':');
            return args[i + 1].substr(0, colon);
        }
    }
    return std::nullopt;
}

/// True if `address` (IPv4 or IPv6 text) is loopback or an address of this host's interfaces.
/// Anything that cannot be read counts as this host's (the cautious answer for cleanup).
bool is_address_of_this_host(const std::string& address)
{
    in_addr v4{};
    in6_addr v6{};
    const bool is_v4 = ::inet_pton(AF_INET, address.c_str(), &v4) == 1;
    const bool is_v6 = !is_v4 && ::inet_pton(AF_INET6, address.c_str(), &v6) == 1;
    if (!is_v4 && !is_v6) {
        return true;
    }
    if ((is_v4 && (ntohl(v4.s_addr) >> 24) == 127) || (is_v6 && IN6_IS_ADDR_LOOPBACK(&v6))) {
        return true;
    }
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
        return true;
    }
    bool found = false;
    for (const ifaddrs* i = list; i != nullptr && !found; i = i->ifa_next) {
        if (i->ifa_addr == nullptr) {
            continue;
        }
        if (is_v4 && i->ifa_addr->sa_family == AF_INET) {
            found = reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr ==
                    v4.s_addr;
        } else if (is_v6 && i->ifa_addr->sa_family == AF_INET6) {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
            found = IN6_ARE_ADDR_EQUAL(&in6->sin6_addr, &v6);
        }
    }
    ::freeifaddrs(list);
    return found;
}

struct stray_daemon {
    rd::process_identity id;
    std::string run;
    fs::path tmp_root;           // the DRAGONX_TMPDIR it was started with
    bool remote_launcher = false;  // its launcher is on another host (see cleanup.hpp)
};

/// This uid's dragonx-runtime processes that name one of our run ids.
std::vector<stray_daemon> find_daemons()
{
    std::vector<stray_daemon> found;
    std::error_code ec;
    // Explicit increments: a range-for would throw if reading the directory fails.
    for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
        const fs::directory_entry& entry = *it;
        const auto pid = parse_pid(entry.path().filename().string());
        struct stat st {};
        if (!pid || *pid == ::getpid() || ::stat(entry.path().c_str(), &st) != 0 ||
            st.st_uid != ::getuid() || !runs_daemon_executable(*pid)) {
            continue;
        }
        const auto args = split_nul(read_file(entry.path() / "cmdline"));
        const auto run = run_of_command_line(args);
        const auto launcher_host = launcher_host_of(args);
        const auto id = rd::identify_process(*pid);
        if (!run || !is_our_run_id(*run) || !id) {
            continue;
        }
        const char* tmpdir = nullptr;
        const auto environment = split_nul(read_file(entry.path() / "environ"));
        for (const auto& variable : environment) {
            if (variable.starts_with("DRAGONX_TMPDIR=")) {
                tmpdir = variable.c_str() + std::strlen("DRAGONX_TMPDIR=");
            }
        }
        found.push_back({*id, *run, tmp_root(tmpdir),
                         launcher_host && !is_address_of_this_host(*launcher_host)});
    }
    return found;
}

/// This uid's /dev/shm/dragonx-<id>-* objects of our run ids, by run.
std::map<std::string, std::vector<std::string>> find_shm_objects()
{
    std::map<std::string, std::vector<std::string>> found;
    std::error_code ec;
    // Explicit increments: a range-for would throw if reading the directory fails.
    for (fs::directory_iterator it("/dev/shm", ec), end; !ec && it != end; it.increment(ec)) {
        const fs::directory_entry& entry = *it;
        const std::string name = entry.path().filename().string();
        if (!name.starts_with(shm_prefix)) {
            continue;
        }
        const auto dash = name.find('-', shm_prefix.size());
        if (dash == std::string::npos) {
            continue;
        }
        std::string run = name.substr(shm_prefix.size(), dash - shm_prefix.size());
        struct stat st {};
        if (!is_our_run_id(run) || ::lstat(entry.path().c_str(), &st) != 0 ||
            st.st_uid != ::getuid()) {
            continue;
        }
        found[run].push_back(name);
    }
    return found;
}

/// The run directories in `user_dir`, by run.
std::map<std::string, fs::path> find_run_directories(const fs::path& user_dir)
{
    std::map<std::string, fs::path> found;
    std::error_code ec;
    // Explicit increments: a range-for would throw if reading the directory fails.
    for (fs::directory_iterator it(user_dir, ec), end; !ec && it != end; it.increment(ec)) {
        const fs::directory_entry& entry = *it;
        std::error_code status_ec;
        const std::string name = entry.path().filename().string();
        if (is_our_run_id(name) && entry.is_directory(status_ec) && !entry.is_symlink(status_ec)) {
            found.emplace(name, entry.path());
        }
    }
    return found;
}

bool is_live(const std::string& run, const std::vector<stray_daemon>& daemons,
             const fs::path& our_root)
{
    if (const auto pid = pid_bound_run(run)) {
        return rd::identify_process(*pid).has_value();
    }
    for (const auto& d : daemons) {
        if (d.run == run && d.tmp_root != our_root) {
            return true;
        }
    }
    std::optional<rd::launcher_record> record;
    try {
        record = rd::read_launcher_record(run);
    } catch (const std::exception&) {
        return true;  // the user directory is unusable (reported): we cannot tell
    }
    if (!record) {
        return std::any_of(daemons.begin(), daemons.end(), [&](const stray_daemon& d) {
            return d.run == run && d.remote_launcher;
        });
    }
    return record->hostname != rd::host_name() || rd::is_alive(record->launcher);
}

/// Polls until every daemon in `pending` (indexes into `daemons`) has gone or `limit` has
/// passed; returns the ones left.
std::vector<std::size_t> wait_gone(const std::vector<stray_daemon>& daemons,
                                   std::vector<std::size_t> pending,
                                   std::chrono::milliseconds limit)
{
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        std::erase_if(pending, [&](std::size_t i) { return rd::has_exited(daemons[i].id); });
        if (pending.empty() || std::chrono::steady_clock::now() >= until) {
            return pending;
        }
        std::this_thread::sleep_for(poll_step);
    }
}

/// Sends `signal` to each pending daemon that is still the same process.
void signal_daemons(const std::vector<stray_daemon>& daemons,
                    const std::vector<std::size_t>& pending, int signal)
{
    for (const std::size_t i : pending) {
        if (rd::is_alive(daemons[i].id)) {
            ::kill(daemons[i].id.pid, signal);
        }
    }
}

/// Stops `daemons` (SIGTERM, SIGKILL after `grace`) and prints one line for each.
bool stop_daemons(const std::vector<stray_daemon>& daemons, std::chrono::milliseconds grace,
                  std::ostream& out)
{
    std::vector<std::size_t> all(daemons.size());
    for (std::size_t i = 0; i < all.size(); ++i) {
        all[i] = i;
    }
    signal_daemons(daemons, all, SIGTERM);
    const std::vector<std::size_t> stubborn = wait_gone(daemons, all, grace);
    signal_daemons(daemons, stubborn, SIGKILL);
    const std::vector<std::size_t> left = wait_gone(daemons, stubborn, kill_wait);

    bool ok = true;
    for (std::size_t i = 0; i < daemons.size(); ++i) {
        const auto& d = daemons[i];
        const std::string what =
            std::string(daemon_name) + " pid " + std::to_string(d.id.pid) + " (run " + d.run + ")";
        if (std::find(left.begin(), left.end(), i) != left.end()) {
            out << "could not stop " << what << ": still running after SIGKILL\n";
            ok = false;
        } else if (std::find(stubborn.begin(), stubborn.end(), i) != stubborn.end()) {
            out << "killed " << what << " (it ignored SIGTERM for " << grace.count() << " ms)\n";
        } else {
            out << "stopped " << what << '\n';
        }
    }
    return ok;
}

/// Unlinks the shm objects of `run` (names as found) and prints one line for each.
bool remove_objects(const std::string& run, const std::vector<std::string>& names,
                    std::ostream& out)
{
    rd::remove_shm_objects(rd::run_shm_prefix(run));
    bool ok = true;
    for (const auto& name : names) {
        const fs::path path = fs::path("/dev/shm") / name;
        std::error_code ec;
        if (fs::exists(fs::symlink_status(path, ec))) {
            out << "could not remove " << path.string() << '\n';
            ok = false;
        } else {
            out << "removed " << path.string() << '\n';
        }
    }
    return ok;
}

}  // namespace

int run_cleanup(const cleanup_options& options, std::ostream& out, std::chrono::milliseconds grace)
{
    bool ok = true;
    const fs::path our_root = tmp_root(std::getenv("DRAGONX_TMPDIR"));
    std::map<std::string, fs::path> directories;
    try {
        directories = find_run_directories(rd::user_directory());
    } catch (const std::exception& e) {
        out << "cannot look for run directories: " << e.what() << '\n';
        ok = false;
    }
    const std::vector<stray_daemon> all_daemons = find_daemons();
    const auto objects = find_shm_objects();

    std::set<std::string> runs;
    for (const auto& d : all_daemons) {
        runs.insert(d.run);
    }
    for (const auto& [run, names] : objects) {
        runs.insert(run);
    }
    for (const auto& [run, path] : directories) {
        runs.insert(run);
    }
    std::erase_if(runs,
                  [&](const std::string& run) { return is_live(run, all_daemons, our_root); });

    // What to do, in the order it is done and printed: daemons, shm objects, directories.
    std::vector<stray_daemon> daemons;
    for (const auto& d : all_daemons) {
        if (runs.contains(d.run)) {
            daemons.push_back(d);
        }
    }
    std::sort(daemons.begin(), daemons.end(), [](const stray_daemon& a, const stray_daemon& b) {
        return a.run != b.run ? a.run < b.run : a.id.pid < b.id.pid;
    });
    std::vector<std::pair<std::string, std::vector<std::string>>> run_objects;
    std::vector<fs::path> run_directories;
    for (const auto& run : runs) {
        if (const auto it = objects.find(run); it != objects.end()) {
            std::vector<std::string> names = it->second;
            std::sort(names.begin(), names.end());
            run_objects.emplace_back(run, std::move(names));
        }
        if (const auto it = directories.find(run); it != directories.end()) {
            run_directories.push_back(it->second);
        }
    }
    if (daemons.empty() && run_objects.empty() && run_directories.empty()) {
        out << "nothing to clean up\n";
        return ok ? 0 : 1;
    }

    if (options.dry_run) {
        for (const auto& d : daemons) {
            out << "would stop " << daemon_name << " pid " << d.id.pid << " (run " << d.run
                << ")\n";
        }
        for (const auto& [run, names] : run_objects) {
            for (const auto& name : names) {
                out << "would remove " << (fs::path("/dev/shm") / name).string() << '\n';
            }
        }
        for (const auto& dir : run_directories) {
            out << "would remove " << dir.string() << '\n';
        }
        return ok ? 0 : 1;
    }

    ok = stop_daemons(daemons, grace, out) && ok;
    for (const auto& [run, names] : run_objects) {
        ok = remove_objects(run, names, out) && ok;
    }
    for (const auto& dir : run_directories) {
        std::error_code ec;
        fs::remove_all(dir, ec);
        if (ec) {
            out << "could not remove " << dir.string() << ": " << ec.message() << '\n';
            ok = false;
        } else {
            out << "removed " << dir.string() << '\n';
        }
    }
    return ok ? 0 : 1;
}

}  // namespace dragonx::launcher
