// placement_test.cpp - integration: where processes started through the API run (round robin,
// block, host names, CPU affinity, GPUs), process groups, and processes started by processes,
// over virtual nodes (`dragonx run --wlm local -N K`).
//
// The expected orders are those evaluator.hpp documents: the head is pinned to node 0 (it
// counts as one request placed there and leaves the cursor at node 0); round robin takes the
// cursor node and advances it; block stays on the cursor node while it has placed fewer
// requests than it has CPUs, then moves to the next node that is not full, and turns to round
// robin for good once every node is full.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace dragonx::integration;

namespace {

struct started_child {
    std::string puid;
    unsigned node = 0;
};

/// The "child <i> puid=<p> node=<n>" lines of place_head, in start order.
std::vector<started_child> children_of(const std::string& out)
{
    std::vector<started_child> children;
    for (const auto& line : lines_starting(out, "child ")) {
        children.push_back({field(line, "puid").value_or("?"),
                            static_cast<unsigned>(std::stoul(field(line, "node").value_or("0")))});
    }
    return children;
}

/// The report lines of the children, by puid.
std::map<std::string, std::string> reports_of(const std::string& out)
{
    std::map<std::string, std::string> reports;
    for (const auto& line : lines_starting(out, "report ")) {
        reports[field(line, "puid").value_or("?")] = line;
    }
    return reports;
}

/// The CPU count of every node, from place_head's "node <i> host=... cpus=<n>" lines.
std::vector<std::size_t> node_cpus(const std::string& out)
{
    std::vector<std::size_t> cpus;
    for (const auto& line : lines_starting(out, "node ")) {
        cpus.push_back(std::stoul(field(line, "cpus").value_or("0")));
    }
    return cpus;
}

std::vector<unsigned> nodes_of(const std::vector<started_child>& children)
{
    std::vector<unsigned> nodes;
    for (const auto& c : children) {
        nodes.push_back(c.node);
    }
    return nodes;
}

void check_exit(const outcome& r, int code)
{
    INFO("stdout: " << r.out);
    INFO("stderr: " << r.err);
    REQUIRE_FALSE(r.timed_out);
    REQUIRE(r.exited);
    REQUIRE(r.code == code);
}

/// Each child printed a report from the node it was placed on (DRAGONX_NODE, DRAGONX_HOSTNAME).
void check_reports(const outcome& r, const std::vector<started_child>& children)
{
    const auto reports = reports_of(r.out);
    for (const auto& c : children) {
        INFO("child puid " << c.puid << " placed on node " << c.node);
        const auto report = reports.find(c.puid);
        REQUIRE(report != reports.end());
        CHECK(field(report->second, "node").value_or("-") == std::to_string(c.node));
        CHECK(field(report->second, "host").value_or("-") == "node" + std::to_string(c.node));
    }
}

/// The nodes that block distribution gives `n` requests after the head, as evaluator.hpp
/// documents it (for 3 nodes of 2 CPUs and 6 requests: 0, 1, 1, 2, 2, 2).
std::vector<unsigned> documented_block_order(const std::vector<std::size_t>& cpus, std::size_t n)
{
    std::vector<std::size_t> placed(cpus.size(), 0);
    placed[0] = 1; // the head
    std::size_t cursor = 0;
    bool overprovision = false;
    std::vector<unsigned> order;
    for (std::size_t r = 0; r < n; ++r) {
        if (!overprovision) {
            bool found = false;
            for (std::size_t step = 0; step < cpus.size() && !found; ++step) {
                const auto i = (cursor + step) % cpus.size();
                if (placed[i] < cpus[i]) {
                    cursor = i;
                    found = true;
                }
            }
            if (found) {
                ++placed[cursor];
                order.push_back(static_cast<unsigned>(cursor));
                continue;
            }
            overprovision = true;
        }
        order.push_back(static_cast<unsigned>(cursor));
        cursor = (cursor + 1) % cpus.size();
    }
    return order;
}

} // namespace

TEST_CASE("round robin places children on the nodes in turn", "[integration]")
{
    const auto r =
        run_dragonx({"run", "--wlm", "local", "-N", "3", program("place_head"), "roundrobin", "6"});
    check_exit(r, 0);
    const auto children = children_of(r.out);
    REQUIRE(children.size() == 6);
    CHECK(nodes_of(children) == std::vector<unsigned>{0, 1, 2, 0, 1, 2});
    check_reports(r, children);
    // Without a CPU affinity a child may use every CPU of its node (this host's).
    for (const auto& [puid, line] : reports_of(r.out)) {
        CHECK(field(line, "cpus").value_or("-") == join_ids(my_cpus()));
    }
    CHECK(lines_starting(r.out, "joined ").size() == 6);
}

TEST_CASE("block fills the CPUs of a node before the next", "[integration]")
{
    // Enough requests to fill every node and spill over into round robin.
    const std::size_t cpus = my_cpus().size();
    const std::size_t n = 2 * cpus + 2;
    const auto r = run_dragonx(
        {"run", "--wlm", "local", "-N", "3", program("place_head"), "block", std::to_string(n)});
    check_exit(r, 0);
    const auto table = node_cpus(r.out);
    REQUIRE(table == std::vector<std::size_t>(3, cpus));
    const auto children = children_of(r.out);
    REQUIRE(children.size() == n);
    CHECK(nodes_of(children) == documented_block_order(table, n));
    check_reports(r, children);
}

TEST_CASE("host name policies give one child on every node", "[integration]")
{
    const auto r =
        run_dragonx({"run", "--wlm", "local", "-N", "3", program("place_head"), "hostname"});
    check_exit(r, 0);
    const auto children = children_of(r.out);
    REQUIRE(children.size() == 3);
    CHECK(nodes_of(children) == std::vector<unsigned>{0, 1, 2});
    check_reports(r, children);
}

TEST_CASE("a CPU affinity policy restricts the child to those CPUs", "[integration]")
{
    const int cpu = my_cpus().back();
    const auto r = run_dragonx({"run", "--wlm", "local", "-N", "2", program("place_head"),
                                "affinity", std::to_string(cpu)});
    check_exit(r, 0);
    const auto children = children_of(r.out);
    REQUIRE(children.size() == 1);
    const auto reports = reports_of(r.out);
    REQUIRE(reports.contains(children[0].puid));
    CHECK(field(reports.at(children[0].puid), "cpus").value_or("-") == std::to_string(cpu));
}

TEST_CASE("GPU policies expose one GPU each, found by nvidia-smi on the PATH", "[integration]")
{
    temp_dir tools;
    const auto env = fake_gpu_env(tools);
    const auto r =
        run_dragonx({"run", "--wlm", "local", "-N", "2", program("place_head"), "gpu"}, 30s, env);
    check_exit(r, 0);
    for (const auto& line : lines_starting(r.out, "node ")) {
        CHECK(field(line, "gpus").value_or("-") == "0,1");
    }
    CHECK(lines_starting(r.out, "gpu_policies ") == std::vector<std::string>{"gpu_policies 4"});
    const auto children = children_of(r.out);
    REQUIRE(children.size() == 4);
    CHECK(nodes_of(children) == std::vector<unsigned>{0, 0, 1, 1});
    check_reports(r, children);
    const auto reports = reports_of(r.out);
    const std::vector<std::string> gpus{"0", "1", "0", "1"};
    for (std::size_t i = 0; i < children.size(); ++i) {
        REQUIRE(reports.contains(children[i].puid));
        CHECK(field(reports.at(children[i].puid), "gpus").value_or("-") == gpus[i]);
    }
}

TEST_CASE("a restarting group keeps its members alive", "[integration]")
{
    const auto r = run_dragonx(
        {"run", "--wlm", "local", "-N", "2", program("place_head"), "group_restart", "3"});
    check_exit(r, 0);
    const auto lines = lines_starting(r.out, "restart ");
    REQUIRE(lines.size() == 1);
    INFO(lines[0]);
    CHECK(field(lines[0], "most") == "3");
    CHECK(std::stoi(field(lines[0], "full_samples").value_or("0")) >= 1);
    CHECK(std::stoi(field(lines[0], "exits").value_or("0")) > 3);
    CHECK(field(lines[0], "running_after_stop") == "0");
}

TEST_CASE("a group's walltime stops its members", "[integration]")
{
    const auto r = run_dragonx({"run", program("place_head"), "group_walltime"});
    check_exit(r, 0);
    const auto lines = lines_starting(r.out, "walltime ");
    REQUIRE(lines.size() == 1);
    INFO(lines[0]);
    const int joined_ms = std::stoi(field(lines[0], "joined_ms").value_or("-1"));
    CHECK(joined_ms >= 1400);
    CHECK(joined_ms <= 1500 + 3000);
    CHECK(field(lines[0], "expired") == "1");
    CHECK(field(lines[0], "exits") == "3");
    CHECK(field(lines[0], "join") == "ok");
}

TEST_CASE("a failing member fails the group's join unless errors are ignored", "[integration]")
{
    const auto r =
        run_dragonx({"run", "--wlm", "local", "-N", "2", program("place_head"), "group_fail"});
    check_exit(r, 0);
    CHECK(lines_starting(r.out, "group ") ==
          std::vector<std::string>{"group ignore=0 join=process_failed", "group ignore=1 join=ok"});
}

TEST_CASE("a process started through the API starts processes itself", "[integration]")
{
    const auto r =
        run_dragonx({"run", "--wlm", "local", "-N", "2", program("place_head"), "grandchild"});
    check_exit(r, 0);
    const auto middle = lines_starting(r.out, "middle ");
    REQUIRE(middle.size() == 1);
    INFO(middle[0]);
    const auto self = field(middle[0], "self").value_or("-");
    const auto grandchild = field(middle[0], "grandchild").value_or("-");
    const auto children = children_of(r.out);
    REQUIRE(children.size() == 1);
    CHECK(children[0].puid == self);
    CHECK(self != grandchild);
    CHECK(field(middle[0], "exit") == "5");
    // The grandchild's own report, from its own process.
    const auto reports = reports_of(r.out);
    REQUIRE(reports.size() == 1);
    CHECK(reports.begin()->first == grandchild);
    CHECK(lines_starting(r.out, "joined ") == std::vector<std::string>{"joined 0 exit=0"});
}

TEST_CASE("processes meet through the run's key-value registry", "[integration]")
{
    const auto r = run_dragonx({"run", "--wlm", "local", "-N", "2", program("place_head"), "kv"});
    check_exit(r, 0);
    CHECK(lines_starting(r.out, "kv_reader ") ==
          std::vector<std::string>{"kv_reader got=hello from the head"});
    CHECK(lines_starting(r.out, "reader ") == std::vector<std::string>{"reader exit=0"});
}

TEST_CASE("a parent reads the output of a child started with piped streams", "[integration]")
{
    const auto r =
        run_dragonx({"run", "--wlm", "local", "-N", "2", program("place_head"), "piped"});
    check_exit(r, 0);
    CHECK(lines_starting(r.out, "piped ") ==
          std::vector<std::string>{"piped out=one|three err=two| node=1 exit=4"});
    // Piped output goes to the parent only, not to the launcher.
    CHECK(r.out.find("one\n") == std::string::npos);
    CHECK(r.err.find("two") == std::string::npos);
}

TEST_CASE("shm objects a process registered are removed when it exits", "[integration]")
{
    const auto r = run_dragonx({"run", program("place_head"), "registered"});
    check_exit(r, 0);
    const auto lines = lines_starting(r.out, "registered ");
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::Contains("name=/dragonx-"));
    CHECK_THAT(lines[0], Catch::EndsWith("exit=0 gone=yes"));
}
