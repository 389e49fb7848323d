// mpi_test.cpp - integration: MPICH programs (mpi_hello, built with mpicc) run as process
// groups with pmi = pmi1 over virtual nodes (`dragonx run --wlm local -N 2`): ranks, sizes,
// nodes and local ranks as placed, an MPI_Allreduce that crosses the nodes, and a failing
// rank reported by join() without hanging the others.
//
// Skipped (with a warning) when mpi_hello was not built: meson found no mpicc (install
// mpich and libmpich-dev, scripts/install-deps.sh).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "harness.hpp"
#include "program_checks.hpp"

using namespace dragonx::integration;

namespace {

bool mpi_built()
{
    if (std::filesystem::exists(program("mpi_hello"))) {
        return true;
    }
    WARN("MPI tests skipped: " << program("mpi_hello")
                               << " was not built (no mpicc at configure time; install mpich "
                                  "and libmpich-dev, then reconfigure)");
    return false;
}

/// /dev/shm objects that are not dragonx's (MPICH's and UCX's shared memory).
std::set<std::string> foreign_shm_objects()
{
    std::set<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
        const auto name = e.path().filename().string();
        if (!name.starts_with("dragonx-")) {
            names.insert(name);
        }
    }
    return names;
}

/// Runs mpi_head with `args` over 2 virtual nodes; checks that the run exited 0 and left
/// nothing behind (its processes, its and MPICH's shared memory). Returns its "group" line.
std::string run_mpi_head(const std::vector<std::string>& args, outcome& r)
{
    const auto shm_before = foreign_shm_objects();
    run_cleanup cleanup;
    r = run_program("mpi_head", "2", args, 120s);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE_FALSE(r.timed_out);
    REQUIRE(r.exited);
    CHECK(r.code == 0);
    const auto run_lines = lines_starting(r.out, "run=");
    REQUIRE(run_lines.size() == 1);
    const auto run = field(run_lines[0], "run").value_or("");
    REQUIRE_FALSE(run.empty());
    cleanup.watch(run);
    CHECK(leftovers_after(run, 5s) == "");
    std::set<std::string> new_shm;
    for (const auto& name : foreign_shm_objects()) {
        if (!shm_before.contains(name)) {
            new_shm.insert(name);
        }
    }
    CHECK(new_shm.empty());
    const auto group = lines_starting(r.out, "group ");
    REQUIRE(group.size() == 1);
    return group[0];
}

}  // namespace

TEST_CASE("an MPI program runs as a pmi1 group of 4 ranks over 2 nodes", "[integration][mpi]")
{
    if (!mpi_built()) {
        return;
    }
    outcome r;
    const auto group = run_mpi_head({"hello", "4"}, r);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(field(group, "join") == "ok");
    CHECK(field(group, "codes") == "0,0,0,0");
    const auto ranks = lines_starting(r.out, "mpi_hello rank=");
    REQUIRE(ranks.size() == 4);
    std::set<int> seen;
    for (const auto& line : ranks) {
        INFO(line);
        const int rank = std::stoi(field(line, "rank").value_or("-1"));
        seen.insert(rank);
        CHECK(field(line, "size") == "4");
        CHECK(field(line, "sum") == "10");  // 1 + 2 + 3 + 4, summed across both nodes
        CHECK(field(line, "ok") == "1");
        CHECK_FALSE(field(line, "host").value_or("").empty());
        // Round robin from node 0 (the head's node): ranks 0 and 2 there, 1 and 3 on node 1.
        CHECK(field(line, "node") == std::to_string(rank % 2));
        CHECK(field(line, "local_rank") == std::to_string(rank / 2));
        CHECK(field(line, "local_size") == "2");
    }
    CHECK(seen == std::set<int>{0, 1, 2, 3});
}

TEST_CASE("a rank that exits non-zero fails the pmi1 group's join, naming it",
          "[integration][mpi]")
{
    if (!mpi_built()) {
        return;
    }
    SECTION("after MPI_Finalize")
    {
        outcome r;
        const auto group = run_mpi_head({"exit_code", "4", "2", "3"}, r);
        INFO("stdout: " << r.out << "\nstderr: " << r.err);
        CHECK(field(group, "join") == "process_failed");
        CHECK(field(group, "codes") == "0,0,0,3");
        CHECK(field(group, "named") == "1");
        // The puid join() named is the one rank 2 printed.
        for (const auto& line : lines_starting(r.out, "mpi_hello rank=")) {
            if (field(line, "rank") == "2") {
                CHECK(field(line, "puid") == field(group, "failed_puid"));
            }
        }
    }
    SECTION("before MPI_Init, while the other ranks wait for it")
    {
        outcome r;
        const auto group = run_mpi_head({"exit_early", "4", "1", "5"}, r);
        INFO("stdout: " << r.out << "\nstderr: " << r.err);
        CHECK(field(group, "join") == "process_failed");
        CHECK(field(group, "named") == "1");
        // The others never got past MPI_Init: they were killed (or failed by their PMI
        // connection closing) instead of waiting forever; only rank 1 counts as failed (join
        // names it), whatever the others' codes.
        CHECK(lines_starting(r.out, "mpi_hello rank=").empty());
        const auto codes = field(group, "codes").value_or("");
        CHECK(std::count(codes.begin(), codes.end(), ',') == 3);
        CHECK((codes.starts_with("5,") || codes.find(",5,") != std::string::npos ||
               codes.ends_with(",5")));
        CHECK(std::stoi(field(group, "joined_ms").value_or("99999")) < 30000);
    }
}

TEST_CASE("MPI_Abort in one rank ends the pmi1 group, naming that rank", "[integration][mpi]")
{
    if (!mpi_built()) {
        return;
    }
    outcome r;
    const auto group = run_mpi_head({"abort", "4", "3", "7"}, r);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    // MPICH's PMI_Abort waits to be killed, and the other ranks wait for rank 3 in
    // MPI_Allreduce, where PMI cannot reach them: all are killed, and join() reports rank 3
    // (exit code 137) alone.
    CHECK(field(group, "join") == "process_failed");
    CHECK(field(group, "codes") == "137,137,137,137");
    const auto aborted = lines_starting(r.out, "mpi_hello abort ");
    REQUIRE(aborted.size() == 1);
    CHECK(field(aborted[0], "rank") == "3");
    const auto message = lines_starting(r.out, "message: ");
    REQUIRE(message.size() == 1);
    CHECK_THAT(message[0], Catch::Contains("puid " + field(aborted[0], "puid").value_or("?") +
                                           " "));
    CHECK(lines_starting(r.out, "mpi_hello rank=").empty());
    CHECK(std::stoi(field(group, "joined_ms").value_or("99999")) < 30000);
}

TEST_CASE("a pmi1 group cannot restart its members", "[integration][mpi]")
{
    if (!mpi_built()) {
        return;
    }
    const auto r = run_program("mpi_head", "1", {"restart"}, 60s);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 0);
    CHECK(lines_starting(r.out, "group ") ==
          std::vector<std::string>{"group mode=restart start=invalid_argument"});
}
