// report.cpp - integration helper: prints where it runs, in one line, and exits.
//
//   report [CODE [SLEEP_MS]]
//   -> report node=1 host=node1 puid=7 cpus=0,1 gpus=-
//
// Sleeps SLEEP_MS milliseconds after printing (default 0), then exits with CODE (default 0).
// node and host are DRAGONX_NODE and DRAGONX_HOSTNAME, puid the runtime's, cpus the
// sched_getaffinity list, gpus CUDA_VISIBLE_DEVICES; an unset variable prints "-".
#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <dragonx/dragonx.hpp>

namespace {

std::string affinity_list()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof(set), &set) != 0) {
        return "?";
    }
    std::string out;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) {
            out += (out.empty() ? "" : ",") + std::to_string(cpu);
        }
    }
    return out;
}

std::string env_or_dash(const char* name)
{
    const char* value = std::getenv(name);
    return value != nullptr ? value : "-";
}

} // namespace

int main(int argc, char** argv)
{
    const int code = argc > 1 ? std::atoi(argv[1]) : 0;
    const int sleep_ms = argc > 2 ? std::atoi(argv[2]) : 0;
    const auto& rt = dragonx::runtime::current();
    std::cout << "report node=" << env_or_dash("DRAGONX_NODE")
              << " host=" << env_or_dash("DRAGONX_HOSTNAME") << " puid=" << rt.puid()
              << " cpus=" << affinity_list() << " gpus=" << env_or_dash("CUDA_VISIBLE_DEVICES")
              << std::endl;
    if (sleep_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    }
    return code;
}
