// placement.hpp - where a benchmark's processes run: sampling it (the vCPU and CPU share of
// this process and of a server it calls), and choosing it (pinning), for latency figures
// that depend on whether client and server share a vCPU.
//
// Notes:
// - Linux only: sched_getcpu, sched_setaffinity, /proc/PID/stat. A server that is gone (or
//   never found, pid -1) is reported as not found, never an error.
// - CPU shares come from clock ticks (10 ms): rough over measurements shorter than a second.
// - pinned pins the calling thread only; children it starts meanwhile inherit the mask.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace dragonx::bench {

struct proc_stat {
    int cpu = -1;                  // the vCPU it last ran on
    std::uint64_t user_ticks = 0;  // clock ticks
    std::uint64_t sys_ticks = 0;
};

/// Parses the text of /proc/PID/stat.
inline std::optional<proc_stat> parse_stat(std::string_view text)
{
    const auto close = text.rfind(')');
    if (close == std::string_view::npos || close + 2 > text.size()) {
        return std::nullopt;
    }
    std::istringstream fields{std::string(text.substr(close + 2))};
    std::vector<std::string> f;
    for (std::string w; fields >> w;) {
        f.push_back(w);
    }
    // f[0] is field 3 (state): utime is field 14, stime 15, processor 39.
    if (f.size() < 37) {
        return std::nullopt;
    }
    return proc_stat{std::stoi(f[36]), std::stoull(f[11]), std::stoull(f[12])};
}

inline std::optional<proc_stat> read_stat(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    std::getline(in, text);
    return parse_stat(text);
}

/// CPU seconds used so far: user and system, of this process or of `pid`.
struct cpu_time {
    double user = 0;
    double sys = 0;
};

inline cpu_time own_cpu_time()
{
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const auto secs = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    return {secs(ru.ru_utime), secs(ru.ru_stime)};
}

inline std::optional<cpu_time> cpu_time_of(pid_t pid)
{
    const auto s = read_stat(pid);
    if (!s) {
        return std::nullopt;
    }
    const auto tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return cpu_time{static_cast<double>(s->user_ticks) / tick,
                    static_cast<double>(s->sys_ticks) / tick};
}

/// "busy 88% (sys 40%)": the share of `wall` spent on a CPU between two readings.
inline std::string busy_text(const cpu_time& from, const cpu_time& to, double wall)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "busy %.0f%% (sys %.0f%%)",
                  100 * (to.user + to.sys - from.user - from.sys) / wall,
                  100 * (to.sys - from.sys) / wall);
    return buf;
}

/// Where this process (the "head") and a server process it calls (`peer_pid`, -1 if unknown;
/// `peer` names it) ran from construction to describe(): the vCPU of each, sampled by the
/// caller's timed loops (about once a millisecond), and how busy each was.
class placement_probe {
    using clock_type = std::chrono::steady_clock;

public:
    explicit placement_probe(pid_t peer_pid, std::string peer = "manager")
        : peer_pid_(peer_pid),
          peer_(std::move(peer)),
          t0_(clock_type::now()),
          head0_(own_cpu_time()),
          peer0_(cpu_time_of(peer_pid).value_or(cpu_time{}))
    {
        if (peer_pid_ >= 0) {
            const auto path = "/proc/" + std::to_string(peer_pid_) + "/stat";
            stat_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        }
    }
    placement_probe(const placement_probe&) = delete;
    placement_probe& operator=(const placement_probe&) = delete;
    ~placement_probe()
    {
        if (stat_fd_ >= 0) {
            ::close(stat_fd_);
        }
    }

    /// Notes the vCPU this thread and the peer are on (or were last on). A few µs.
    void sample()
    {
        ++head_cpus_[::sched_getcpu()];
        char buf[1024];
        const auto n = stat_fd_ < 0 ? -1 : ::pread(stat_fd_, buf, sizeof buf, 0);
        if (n > 0) {
            if (const auto st = parse_stat(std::string_view(buf, static_cast<std::size_t>(n)))) {
                ++peer_cpus_[st->cpu];
            }
        }
    }

    [[nodiscard]] std::string describe() const
    {
        const double wall = std::chrono::duration<double>(clock_type::now() - t0_).count();
        std::string out = "head on vCPU" + shares(head_cpus_) + ", " +
                          busy_text(head0_, own_cpu_time(), wall);
        const auto m = cpu_time_of(peer_pid_);
        if (peer_pid_ < 0 || !m) {
            return out + "; " + peer_ + " not found in /proc";
        }
        return out + "; " + peer_ + " (pid " + std::to_string(peer_pid_) + ") on vCPU" +
               shares(peer_cpus_) + ", " + busy_text(peer0_, *m, wall);
    }

private:
    static std::string shares(const std::map<int, std::uint64_t>& cpus)
    {
        std::uint64_t samples = 0;
        for (const auto& [cpu, n] : cpus) {
            samples += n;
        }
        std::string out;
        for (const auto& [cpu, n] : cpus) {
            out += " " + std::to_string(cpu) + " (" +
                   std::to_string(100 * n / std::max<std::uint64_t>(samples, 1)) + "%)";
        }
        return out.empty() ? " ?" : out;
    }

    pid_t peer_pid_;
    std::string peer_;
    clock_type::time_point t0_;
    cpu_time head0_;
    cpu_time peer0_;
    int stat_fd_ = -1;
    std::map<int, std::uint64_t> head_cpus_;
    std::map<int, std::uint64_t> peer_cpus_;
};

/// The share of one CPU (%) that `pid` uses over `wall` while nobody calls it; -1 if unknown.
inline double idle_busy_percent(pid_t pid, std::chrono::milliseconds wall)
{
    const auto from = cpu_time_of(pid);
    std::this_thread::sleep_for(wall);
    const auto to = cpu_time_of(pid);
    if (pid < 0 || !from || !to) {
        return -1;
    }
    return 100 * (to->user + to->sys - from->user - from->sys) /
           std::chrono::duration<double>(wall).count();
}

/// The CPUs this thread may run on, in increasing order.
inline std::vector<int> allowed_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; ++c) {
            if (CPU_ISSET(c, &set)) {
                cpus.push_back(c);
            }
        }
    }
    return cpus;
}

inline void set_affinity(pid_t pid, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(pid, sizeof set, &set) != 0) {
        throw std::runtime_error("sched_setaffinity to vCPU " + std::to_string(cpu) + ": " +
                                 std::strerror(errno));
    }
}

/// Pins the calling thread (and the children it starts meanwhile) to one vCPU; the destructor
/// restores the mask it had.
class pinned {
public:
    explicit pinned(int cpu)
    {
        CPU_ZERO(&saved_);
        if (::sched_getaffinity(0, sizeof saved_, &saved_) != 0) {
            throw std::runtime_error(std::string("sched_getaffinity: ") + std::strerror(errno));
        }
        set_affinity(0, cpu);
    }
    pinned(const pinned&) = delete;
    pinned& operator=(const pinned&) = delete;
    ~pinned() { ::sched_setaffinity(0, sizeof saved_, &saved_); }

private:
    cpu_set_t saved_;
};

/// Where a client and its server run for a pinned figure: the same vCPU, or two different
/// ones.
struct placement_choice {
    const char* name;  // "same_vcpu", "cross_vcpu"
    int client_cpu;
    int server_cpu;
};

/// The pinned placements this machine allows (cross_vcpu needs two CPUs).
inline std::vector<placement_choice> pinned_placements()
{
    const auto cpus = allowed_cpus();
    std::vector<placement_choice> out;
    if (!cpus.empty()) {
        out.push_back({"same_vcpu", cpus[0], cpus[0]});
    }
    if (cpus.size() > 1) {
        out.push_back({"cross_vcpu", cpus[0], cpus[1]});
    }
    return out;
}

}  // namespace dragonx::bench
