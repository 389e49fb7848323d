// hostname_group.cpp - a process group placed by host-name policies, with CPU affinities:
// two members on every node, each pinned to one CPU of it (the C++ take on DragonHPC's
// workshop example of policies by host name).
//
//   dragonx run --wlm local -N 3 build/examples/hostname_group
//
// system::hostname_policies() gives one policy per node (by host name; by node index when
// virtual nodes share a host name). Each is merged with a CPU affinity and given to the group;
// each member prints where it runs and checks that it is the node and CPU it was promised.
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

int member(const std::string& want_host, int want_cpu)
{
    const auto& rt = dragonx::runtime::current();
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    const bool pinned = CPU_COUNT(&set) == 1 && CPU_ISSET(want_cpu, &set);
    std::printf("member puid %llu: host %s, node %u, pinned to CPU %d: %s\n",
                static_cast<unsigned long long>(rt.puid()), rt.hostname().c_str(), rt.node(),
                want_cpu, pinned ? "yes" : "NO");
    return rt.hostname() == want_host && pinned ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc == 4 && std::string(argv[1]) == "--member") {
        return member(argv[2], std::stoi(argv[3]));
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // our lines interleave with the members' in time
    const auto sys = dragonx::system::current();
    const auto by_host = sys.hostname_policies();
    std::printf("%u node(s): %zu host-name policies\n", sys.nnodes(), by_host.size());
    dragonx::process_group group;
    for (std::size_t i = 0; i < by_host.size(); ++i) {
        const auto& node = sys.nodes().at(i);
        for (std::size_t k = 0; k < 2; ++k) {
            const int cpu = node.cpus.at(k % node.cpus.size());
            dragonx::policy pinned_cpu;
            pinned_cpu.cpu_affinity = std::vector<int>{cpu};
            group.add(1, {.exe = argv[0],
                          .args = {"--member", node.hostname, std::to_string(cpu)},
                          .where = dragonx::merge(by_host[i], pinned_cpu)});
        }
    }
    group.start();
    group.join(std::chrono::seconds(30));  // throws if a member is not where it should be
    group.close();
    std::printf("every member ran on its host and CPU\n");
    return 0;
}
