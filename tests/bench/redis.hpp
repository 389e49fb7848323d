// redis.hpp - Redis as the reference the DDict benchmark prints beside its figures: a private
// redis-server, and redis-benchmark's --csv output read back, measured in the same run.
//
// Notes:
// - redis_server::start() runs `redis-server --port P --bind 127.0.0.1 --save "" --appendonly
//   no` on a free loopback port as a child of this process; its destructor (or stop()) ends it
//   by pid (SIGTERM, SIGKILL after 5 s) and waits for it, also when a measurement throws.
// - nullopt, with a line on stdout saying why, when redis-server or redis-benchmark is not on
//   PATH (Debian packages redis-server, redis-tools) or the server does not come up.
// - redis-benchmark failing throws std::runtime_error.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "subprocess.hpp"

namespace dragonx::bench {

/// A loopback TCP port nobody listens on now (bound to port 0, then released).
inline int free_port()
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    if (fd >= 0) {
        ::close(fd);
    }
    if (!ok) {
        throw std::runtime_error("no free loopback port for redis-server");
    }
    return ntohs(a.sin_port);
}

inline bool accepts_connections(int port)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (fd >= 0) {
        ::close(fd);
    }
    return ok;
}

/// A private redis-server (no persistence) on a free loopback port, a child of this
/// process; the destructor stops it by pid and waits for it.
class redis_server {
    using clock_type = std::chrono::steady_clock;

public:
    /// Starts one and waits until it accepts connections; nullopt, with a message saying
    /// why, when redis-server or redis-benchmark is not on PATH or the server does not come up.
    static std::optional<redis_server> start()
    {
        if (!on_path("redis-server") || !on_path("redis-benchmark")) {
            std::printf("redis-server or redis-benchmark not on PATH (Debian packages "
                        "redis-server, redis-tools): no Redis reference\n");
            return std::nullopt;
        }
        const int port = free_port();
        redis_server r(spawn({"redis-server", "--port", std::to_string(port), "--bind",
                              "127.0.0.1", "--save", "", "--appendonly", "no"},
                             true, true),
                       port);
        const auto until = clock_type::now() + std::chrono::seconds(10);
        while (!accepts_connections(port)) {
            int status = 0;
            if (::waitpid(r.pid_, &status, WNOHANG) == r.pid_) {
                r.pid_ = -1;
                std::printf("redis-server exited at start: no Redis reference\n");
                return std::nullopt;
            }
            if (clock_type::now() > until) {
                std::printf("redis-server did not accept connections in 10 s: no Redis "
                            "reference\n");
                return std::nullopt;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return r;
    }

    redis_server(redis_server&& o) noexcept
        : pid_(std::exchange(o.pid_, -1)), port_(o.port_)
    {
    }
    redis_server& operator=(redis_server&&) = delete;
    ~redis_server() { stop(); }

    [[nodiscard]] int port() const noexcept { return port_; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// SIGTERM, then SIGKILL after 5 s; waits for it either way.
    void stop() noexcept
    {
        if (pid_ < 0) {
            return;
        }
        ::kill(pid_, SIGTERM);
        const auto until = clock_type::now() + std::chrono::seconds(5);
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (clock_type::now() > until) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        pid_ = -1;
    }

private:
    redis_server(pid_t pid, int port) : pid_(pid), port_(port) {}
    pid_t pid_;
    int port_;
};

/// One test of one redis-benchmark run, from its --csv output (latencies 0 when the CSV has
/// no latency columns, redis < 7).
using redis_row = rate_latency;

/// Runs redis-benchmark with `args` (after -p PORT) and --csv; the rows by test name
/// ("SET", "GET"). Throws if it fails or prints no row.
inline std::map<std::string, redis_row> redis_benchmark(int port,
                                                        const std::vector<std::string>& args)
{
    std::vector<std::string> cmd = {"redis-benchmark", "-p", std::to_string(port)};
    cmd.insert(cmd.end(), args.begin(), args.end());
    cmd.push_back("--csv");
    int code = 0;
    const auto out = capture(cmd, code);
    std::map<std::string, redis_row> rows;
    std::vector<std::string> header;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        std::vector<std::string> cells;
        std::istringstream in(line);
        for (std::string cell; std::getline(in, cell, ',');) {
            std::erase(cell, '"');
            std::erase(cell, '\r');
            cells.push_back(cell);
        }
        if (cells.size() < 2) {
            continue;
        }
        if (cells[0] == "test") {
            header = cells;
            continue;
        }
        redis_row r;
        for (std::size_t i = 1; i < cells.size(); ++i) {
            const std::string column = i < header.size() ? header[i] : (i == 1 ? "rps" : "");
            const double v = std::strtod(cells[i].c_str(), nullptr);
            if (column == "rps") {
                r.per_s = v;
            } else if (column == "p50_latency_ms") {
                r.p50_us = v * 1000;
            } else if (column == "p99_latency_ms") {
                r.p99_us = v * 1000;
            }
        }
        rows[cells[0]] = r;
    }
    if (code != 0 || rows.empty()) {
        throw std::runtime_error("redis-benchmark failed (exit " + std::to_string(code) +
                                 "): " + out);
    }
    return rows;
}

/// The median, over `reps` runs, of each test's figures.
inline std::map<std::string, redis_row> redis_median(int port, const std::vector<std::string>& args,
                                                     int reps)
{
    std::map<std::string, std::vector<redis_row>> runs;
    for (int r = 0; r < reps; ++r) {
        for (const auto& [test, row] : redis_benchmark(port, args)) {
            runs[test].push_back(row);
        }
    }
    std::map<std::string, redis_row> out;
    for (const auto& [test, rows] : runs) {
        out[test] = median_of(rows);
    }
    return out;
}

}  // namespace dragonx::bench
