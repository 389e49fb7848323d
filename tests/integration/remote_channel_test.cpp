// remote_channel_test.cpp - integration: channels between processes on different virtual
// nodes (`dragonx run --wlm local -N 3`), through the nodes' transport agents: exactly once
// and in order under stress, every timeout and error end to end, and a peer daemon killed
// under a blocked receive; each with both transports (-t tcp, -t ofi: libfabric tcp;ofi_rxm).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "harness.hpp"

using namespace dragonx::integration;

namespace {

// Runs remote_channels MODE over three virtual nodes with the transport `transport`.
outcome run_remote(const std::string& transport, const std::vector<std::string>& mode,
                   millis limit = 120s)
{
    std::vector<std::string> args = {"run",       "--wlm", "local",
                                     "-N",        "3",     "-t",
                                     transport,   program("remote_channels")};
    args.insert(args.end(), mode.begin(), mode.end());
    return run_dragonx(args, limit);
}

}  // namespace

TEST_CASE("remote channels deliver every message exactly once, in each sender's order",
          "[integration][transport]")
{
    const auto transport = GENERATE(as<std::string>{}, "tcp", "ofi");
    INFO("transport " << transport);
    const auto r = run_remote(transport, {"stress", "6", "500"});
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 0);
    CHECK(lines_starting(r.out, "PASS stress").size() == 1);
}

TEST_CASE("remote channel operations honour their timeouts and report errors",
          "[integration][transport]")
{
    const auto transport = GENERATE(as<std::string>{}, "tcp", "ofi");
    INFO("transport " << transport);
    const auto r = run_remote(transport, {"timeouts"});
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 0);
    CHECK(lines_starting(r.out, "PASS timeouts").size() == 1);
}

TEST_CASE("a remote receive fails naming the node when that node's daemon dies",
          "[integration][transport]")
{
    const auto transport = GENERATE(as<std::string>{}, "tcp", "ofi");
    INFO("transport " << transport);
    const auto r = run_remote(transport, {"kill_peer"}, 60s);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exited);
    // The head's receive failed with peer_lost naming node 2 (kill_peer checks both). Whether
    // the run then fails too (exit 1) depends on whether the launcher hears of the lost
    // daemon before the head's own exit: not checked here (teardown_test covers it).
    CHECK(lines_starting(r.out, "PASS kill_peer").size() == 1);
    CHECK_THAT(r.out, Catch::Contains("node 2 (node2) was lost"));
}

TEST_CASE("garbage in the transport agent's gateway and bad sessions are dropped; it keeps serving",
          "[integration][transport]")
{
    const auto r = run_remote("tcp", {"gateway_abuse"}, 60s);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 0);
    CHECK(lines_starting(r.out, "PASS gateway_abuse").size() == 1);
}
