// node_identity_test.cpp - how dragonx-runtime learns its node: given, or from the variables
// a workload manager's launch command sets (SLURM_NODEID, PALS_NODEID, PMI_RANK, ...).
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include <dragonx/common/error.hpp>

#include "node_identity.hpp"

using dragonx::rt::detail::node_identity_options;
using dragonx::rt::detail::resolve_node_identity;

namespace {

struct fake_environment {
    std::map<std::string, std::string> variables;
    std::optional<std::string> operator()(const std::string& name) const
    {
        const auto it = variables.find(name);
        return it == variables.end() ? std::nullopt : std::optional<std::string>(it->second);
    }
};

std::string error_of(const node_identity_options& o, std::uint32_t nnodes,
                     const fake_environment& env)
{
    try {
        (void)resolve_node_identity(o, nnodes, env);
    } catch (const dragonx::error& e) {
        CHECK(e.is(dragonx::errc::invalid_argument));
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("node identity given on the command line", "[runtime][node_identity]")
{
    node_identity_options o;
    o.node = 2;
    o.hostname = "node2";
    const auto id = resolve_node_identity(o, 3, fake_environment{});
    CHECK(id.node == 2);
    CHECK(id.hostname == "node2");
    CHECK_THAT(error_of(o, 2, {}), Catch::Contains("node index 2 is not below --nnodes 2"));
}

TEST_CASE("node identity from Slurm's variables", "[runtime][node_identity]")
{
    node_identity_options o;
    o.node_from = "SLURM_NODEID";
    o.hostname_from = "SLURMD_NODENAME";
    fake_environment env{{{"SLURM_NODEID", "1"}, {"SLURMD_NODENAME", "n2"}}};
    const auto id = resolve_node_identity(o, 3, env);
    CHECK(id.node == 1);
    CHECK(id.hostname == "n2");

    env.variables.erase("SLURMD_NODENAME");
    CHECK_THAT(error_of(o, 3, env), Catch::Contains("SLURMD_NODENAME"));
    env.variables = {{"SLURMD_NODENAME", "n2"}};
    CHECK_THAT(error_of(o, 3, env), Catch::Contains("--node-from SLURM_NODEID: none of these"));
    env.variables = {{"SLURM_NODEID", "1x"}, {"SLURMD_NODENAME", "n2"}};
    CHECK_THAT(error_of(o, 3, env), Catch::Contains("SLURM_NODEID='1x' is not a node index"));
}

TEST_CASE("node identity from MPI-style ranks and a host list", "[runtime][node_identity]")
{
    node_identity_options o;
    o.node_from = "PALS_NODEID,PMI_RANK,OMPI_COMM_WORLD_RANK";
    o.hostnames = "c1,c2,c3";
    // the first variable that is set (and not empty) counts
    CHECK(resolve_node_identity(o, 3, fake_environment{{{"PMI_RANK", "2"}}}).hostname == "c3");
    CHECK(resolve_node_identity(o, 3, fake_environment{{{"PALS_NODEID", ""},
                                                        {"OMPI_COMM_WORLD_RANK", "1"}}})
              .node == 1);
    CHECK(resolve_node_identity(o, 3, fake_environment{{{"PALS_NODEID", "0"},
                                                        {"PMI_RANK", "2"}}})
              .hostname == "c1");
    CHECK_THAT(error_of(o, 3, {{{"PMI_RANK", "3"}}}), Catch::Contains("not below --nnodes 3"));
    CHECK_THAT(error_of(o, 4, {{{"PMI_RANK", "0"}}}),
               Catch::Contains("--hostnames names 3 nodes, but --nnodes is 4"));
}

TEST_CASE("node identity: exactly one source each", "[runtime][node_identity]")
{
    node_identity_options o;
    o.hostname = "x";
    CHECK_THAT(error_of(o, 1, {}), Catch::Contains("--node and --node-from"));
    o.node = 0;
    o.node_from = "PMI_RANK";
    CHECK_THAT(error_of(o, 1, {}), Catch::Contains("--node and --node-from"));
    o.node_from.clear();
    o.hostnames = "x";
    CHECK_THAT(error_of(o, 1, {}), Catch::Contains("--hostname, --hostname-from and --hostnames"));
    o.hostnames.clear();
    o.hostname.reset();
    CHECK_THAT(error_of(o, 1, {}), Catch::Contains("--hostname, --hostname-from and --hostnames"));
}
