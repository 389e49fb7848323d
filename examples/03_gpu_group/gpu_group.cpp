// gpu_group.cpp - one process per GPU of the run, each told which GPU it may use (the C++
// take on DragonHPC's workshop example of a process group over GPU policies).
//
//   dragonx run --wlm local -N 2 build/examples/gpu_group [--require-gpus]
//
// system::gpu_policies() gives one policy per GPU of every node: each pins a node and sets
// gpu_affinity to one GPU, so the runtime starts the member on that node with
// CUDA_VISIBLE_DEVICES (ROCR_VISIBLE_DEVICES, ZE_AFFINITY_MASK) naming its GPU. On a machine
// without GPUs the example does the same with one policy per CPU of every node (cpu_affinity),
// and each member checks the affinity it runs with. Every member prints where it runs and what
// it sees; the head checks that all of them exited 0.
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

std::string cpus_of_this_process()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    std::string out;
    for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) {
            out += (out.empty() ? "" : ",") + std::to_string(c);
        }
    }
    return out;
}

std::string env_or_dash(const char* name)
{
    const char* v = std::getenv(name);
    return v != nullptr ? v : "-";
}

// A member: report, and check what the policy promised (argv: "gpu" ID or "cpu" ID).
int member(const std::string& kind, const std::string& id)
{
    const auto& rt = dragonx::runtime::current();
    const std::string cpus = cpus_of_this_process();
    const std::string gpus = env_or_dash("CUDA_VISIBLE_DEVICES") != "-"
                                 ? env_or_dash("CUDA_VISIBLE_DEVICES")
                             : env_or_dash("ROCR_VISIBLE_DEVICES") != "-"
                                 ? env_or_dash("ROCR_VISIBLE_DEVICES")
                                 : env_or_dash("ZE_AFFINITY_MASK");
    std::printf("member puid %llu on %s (node %u): visible GPUs %s, CPUs %s\n",
                static_cast<unsigned long long>(rt.puid()), rt.hostname().c_str(), rt.node(),
                gpus.c_str(), cpus.c_str());
    const bool ok = kind == "gpu" ? gpus == id : cpus == id;
    if (!ok) {
        std::fprintf(stderr, "member puid %llu: expected %s %s\n",
                     static_cast<unsigned long long>(rt.puid()), kind.c_str(), id.c_str());
    }
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc == 4 && std::string(argv[1]) == "--member") {
        return member(argv[2], argv[3]);
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // our lines interleave with the members' in time
    const auto sys = dragonx::system::current();
    dragonx::process_group group;
    auto policies = sys.gpu_policies();
    if (argc == 2 && std::string(argv[1]) == "--require-gpus" && policies.empty()) {
        std::fprintf(stderr, "no GPUs found, and --require-gpus was given\n");
        return 1;
    }
    std::size_t members = 0;
    if (!policies.empty()) {
        std::printf("%zu GPU(s) in the run: one member per GPU\n", policies.size());
        for (const auto& p : policies) {
            group.add(1, {.exe = argv[0],
                          .args = {"--member", "gpu", std::to_string(p.gpu_affinity->at(0))},
                          .where = p});
            ++members;
        }
    } else {
        std::printf("no GPUs in the run: one member per CPU of every node instead\n");
        for (const auto& p : sys.cpu_policies()) {
            group.add(1, {.exe = argv[0],
                          .args = {"--member", "cpu", std::to_string(p.cpu_affinity->at(0))},
                          .where = p});
            ++members;
        }
    }
    group.start();
    group.join(std::chrono::seconds(30));  // throws if a member failed its check
    group.close();
    std::printf("all %zu members ran where their policies said\n", members);
    return 0;
}
