// run_paths.cpp - the run directory, sockets, launcher record and shm prefixes of a run.
#include "run_paths.hpp"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/random.hpp>

namespace dragonx::rt::detail {

namespace fs = std::filesystem;

std::string make_run_id()
{
    return fmt::format("r{:012x}", random_u64() & 0xffff'ffff'ffffULL);
}

namespace {

// Creates `dir` with mode 0700 if missing; then insists it is a directory of ours, 0700.
void ensure_private_directory(const fs::path& dir)
{
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        throw_system_error_on(true, "mkdir " + dir.string());
    }
    struct stat st {};
    throw_system_error_on(::lstat(dir.c_str(), &st) != 0, "stat " + dir.string());
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::getuid() || (st.st_mode & 0777) != 0700) {
        throw_error(errc::invalid_argument,
                    fmt::format("{} must be a directory owned by uid {} with mode 0700; "
                                "remove it or set DRAGONX_TMPDIR",
                                dir.string(), ::getuid()));
    }
}

}  // namespace

fs::path user_directory()
{
    const char* base = std::getenv("DRAGONX_TMPDIR");
    const fs::path root = (base != nullptr && *base != '\0') ? fs::path(base) : fs::path("/tmp");
    const fs::path dir = root / fmt::format("dragonx-{}", ::getuid());
    ensure_private_directory(dir);
    return dir;
}

fs::path run_directory(const std::string& run) { return user_directory() / run; }

fs::path create_run_directory(const std::string& run)
{
    const fs::path dir = run_directory(run);
    ensure_private_directory(dir);
    return dir;
}

fs::path node_socket_path(const std::string& run, std::uint32_t node)
{
    return run_directory(run) / fmt::format("node{}.sock", node);
}

fs::path agent_socket_path(const std::string& run, std::uint32_t node)
{
    return run_directory(run) / fmt::format("node{}.agent.sock", node);
}

fs::path launcher_record_path(const std::string& run) { return run_directory(run) / "launcher"; }

std::string node_shm_prefix(const std::string& run, std::uint32_t node)
{
    return fmt::format("dragonx-{}-n{}-", run, node);
}

std::string run_shm_prefix(const std::string& run) { return fmt::format("dragonx-{}-", run); }

namespace {

// The fields of /proc/<pid>/stat after the command name (field 3, the state, comes first),
// or nullopt if there is no such process. The name is in parentheses and may hold spaces
// and parentheses itself, hence the last ')'.
std::optional<std::string> stat_fields_after_name(pid_t pid)
{
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string stat;
    if (pid <= 0 || !std::getline(in, stat)) {
        return std::nullopt;
    }
    const auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) {
        return std::nullopt;
    }
    return stat.substr(close + 2);
}

}  // namespace

std::optional<process_identity> identify_process(pid_t pid)
{
    const auto fields = stat_fields_after_name(pid);
    if (!fields) {
        return std::nullopt;
    }
    std::istringstream rest(*fields);
    std::string field;
    for (int i = 3; i < 22 && rest >> field; ++i) {
    }
    std::uint64_t start = 0;
    if (!(rest >> start)) {
        return std::nullopt;
    }
    return process_identity{pid, start};
}

bool is_alive(const process_identity& id)
{
    const auto now = identify_process(id.pid);
    return now && *now == id;
}

bool has_exited(const process_identity& id)
{
    if (!is_alive(id)) {
        return true;
    }
    const auto fields = stat_fields_after_name(id.pid);
    const char state = fields ? fields->front() : 'X';
    return state == 'Z' || state == 'X' || state == 'x';
}

void write_launcher_record(const std::string& run, const launcher_record& record)
{
    const fs::path path = launcher_record_path(run);
    std::ofstream out(path, std::ios::trunc);
    out << record.launcher.pid << ' ' << record.launcher.start_time << ' ' << record.hostname
        << '\n';
    throw_system_error_on(!out.flush(), "write " + path.string());
}

std::optional<launcher_record> read_launcher_record(const std::string& run)
{
    std::ifstream in(launcher_record_path(run));
    launcher_record r;
    if (!(in >> r.launcher.pid >> r.launcher.start_time >> r.hostname)) {
        return std::nullopt;
    }
    return r;
}

std::size_t remove_shm_objects(const std::string& prefix) noexcept
{
    std::size_t removed = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/dev/shm", ec)) {
        const std::string name = entry.path().filename().string();
        struct stat st {};
        if (name.rfind(prefix, 0) != 0 || ::lstat(entry.path().c_str(), &st) != 0 ||
            st.st_uid != ::getuid()) {
            continue;
        }
        if (::shm_unlink(("/" + name).c_str()) == 0) {
            ++removed;
        }
    }
    return removed;
}

std::vector<pid_t> find_run_processes(const std::string& run) noexcept
{
    std::vector<pid_t> found;
    try {
        const std::string wanted = "DRAGONX_RUN=" + run;
        const pid_t self = ::getpid();
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator("/proc", ec)) {
            const std::string name = entry.path().filename().string();
            if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
                continue;
            }
            const pid_t pid = static_cast<pid_t>(std::stol(name));
            struct stat st {};
            if (pid == self || ::stat(entry.path().c_str(), &st) != 0 ||
                st.st_uid != ::getuid()) {
                continue;
            }
            std::ifstream in(entry.path() / "environ", std::ios::binary);
            std::string variable;
            while (std::getline(in, variable, '\0')) {
                if (variable == wanted) {
                    found.push_back(pid);
                    break;
                }
            }
        }
    } catch (...) {
        // Best effort: a process table we cannot read has nothing we can kill either.
    }
    return found;
}

std::string host_name()
{
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
        return "localhost";
    }
    return name;
}

}  // namespace dragonx::rt::detail
