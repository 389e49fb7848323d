// mpi_group.cpp - an MPI program (mpi_hello, built with MPICH's mpicc) run as a process
// group of 4 ranks over the nodes, with PMI-1 served by dragonx (the C++ take on DragonHPC's
// workshop example 2_dragon_mpi_process_group).
//
//   dragonx run --wlm local -N 2 build/examples/mpi_group [ranks]
//
// The ranks are placed round robin over the nodes; each prints its rank, the group's size,
// its node and its local rank there, and checks the sum of an MPI_Allreduce. The head joins
// the group: join() throws errc::process_failed if a rank exited non-zero (a wrong sum), and
// this program then exits 1.
//
// Notes:
// - mpi_hello is looked for beside this program.
// - MPICH (Debian's 4.0.2, ch4:ucx) needs nothing set for ranks on one host or several:
//   ranks on different dragonx nodes of one host talk through UCX as on different hosts.
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>

#include <dragonx/dragonx.hpp>

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // our lines interleave with the ranks'
    const std::uint32_t ranks = argc > 1 ? static_cast<std::uint32_t>(std::stoul(argv[1])) : 4;
    const auto hello = std::filesystem::absolute(argv[0]).parent_path() / "mpi_hello";
    if (!std::filesystem::exists(hello)) {
        std::fprintf(stderr, "mpi_group: %s not found (built with MPICH's mpicc)\n",
                     hello.c_str());
        return 2;
    }
    const auto sys = dragonx::system::current();
    dragonx::policy round_robin;
    round_robin.distribution_kind = dragonx::distribution::roundrobin;
    dragonx::process_group group({.where = round_robin, .pmi = dragonx::pmi_mode::pmi1});
    group.add(ranks, {.exe = hello.string()});
    std::printf("mpi_group: %u MPI ranks of %s over %u node(s)\n", ranks, hello.c_str(),
                sys.nnodes());
    try {
        group.start();
        group.join(std::chrono::seconds(60));
    } catch (const dragonx::error& e) {
        std::fprintf(stderr, "mpi_group: %s\n", e.what());
        group.close();
        return 1;
    }
    group.close();
    std::printf("mpi_group: all %u ranks agreed on the sum\n", ranks);
    return 0;
}
