// fi_pingpong.hpp - libfabric's own ping-pong (libfabric-bin) over loopback, as the reference
// the transport benchmarks print beside their figures, measured in the same run.
//
// Notes:
// - Runs `fi_pingpong -p tcp -e rdm` (tcp;ofi_rxm) as server and client on 127.0.0.1, on a
//   port derived from the pid (one after another per call), with a 60 s limit.
// - nullopt when fi_pingpong is not installed or its output cannot be read.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "subprocess.hpp"

namespace dragonx::bench {

struct fi_pingpong_figures {
    double mb_per_s = 0;           // its MB/sec column (1e6 bytes/s)
    double usec_per_transfer = 0;  // half a round trip
    [[nodiscard]] double gbps() const noexcept { return mb_per_s / 1e3; }
};

/// fi_pingpong with messages of `size` bytes, `iters` times.
inline std::optional<fi_pingpong_figures> fi_pingpong(std::size_t size, int iters)
{
    if (!on_path("fi_pingpong")) {
        return std::nullopt;
    }
    static int next_port = 20000 + static_cast<int>(::getpid() % 20000);
    const auto s = std::to_string(size);
    const auto i = std::to_string(iters);
    const auto p = std::to_string(next_port++);
    const pid_t server =
        spawn({"fi_pingpong", "-p", "tcp", "-e", "rdm", "-S", s, "-I", i, "-B", p}, true, true);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int code = 0;
    const auto out = capture({"timeout", "60", "fi_pingpong", "-p", "tcp", "-e", "rdm", "-S", s,
                              "-I", i, "-P", p, "127.0.0.1"},
                             code, true);
    ::kill(server, SIGTERM);
    (void)wait_for(server);
    // "8  1k  =1k  15k  0.04s  0.36  22.30  0.04": MB/sec and usec/xfer are columns 6 and 7.
    for (std::size_t at = 0; at < out.size();) {
        const auto end = out.find('\n', at);
        std::istringstream line(out.substr(at, end - at));
        std::vector<std::string> cols;
        for (std::string c; line >> c;) {
            cols.push_back(c);
        }
        if (cols.size() == 8 && cols[0] != "bytes") {
            return fi_pingpong_figures{std::stod(cols[5]), std::stod(cols[6])};
        }
        at = end == std::string::npos ? out.size() : end + 1;
    }
    return std::nullopt;
}

}  // namespace dragonx::bench
