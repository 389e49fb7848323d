// ddict_test.cpp - integration: the distributed dictionary under `dragonx run`, on one node
// and across three virtual nodes, with clients in separate processes (programs/ddict_check).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "program_checks.hpp"

using namespace dragonx::integration;

namespace {

outcome run_check(const std::string& nodes, const std::vector<std::string>& mode)
{
    return run_program("ddict_check", nodes, mode);
}

}  // namespace

TEST_CASE("every ddict operation works, on one node and across three", "[integration][ddict]")
{
    const auto nodes = GENERATE(as<std::string>{}, "1", "3");
    INFO("nodes " << nodes);
    expect_pass(run_check(nodes, {"ops"}), "ops");
}

TEST_CASE("client processes on every node share a ddict by descriptor", "[integration][ddict]")
{
    expect_pass(run_check("3", {"clients", "6"}), "clients");
}

TEST_CASE("a full ddict refuses puts with ddict_full and keeps serving", "[integration][ddict]")
{
    expect_pass(run_check("1", {"full"}), "full");
}

TEST_CASE("bad ddict options, placements and descriptors fail cleanly", "[integration][ddict]")
{
    expect_pass(run_check("2", {"failures"}), "failures");
}

TEST_CASE("a killed ddict manager is an error naming it, and the others keep serving",
          "[integration][ddict]")
{
    const auto nodes = GENERATE(as<std::string>{}, "1", "2");
    INFO("nodes " << nodes);
    expect_pass(run_check(nodes, {"dead_manager"}), "dead_manager");
}
