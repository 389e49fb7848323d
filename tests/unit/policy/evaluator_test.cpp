// evaluator_test.cpp - placement_evaluator: the expected outcomes of spec/runtime.md §5.3,
// the persistent cursor, pinning, CPU/GPU lists, errors, and the GPU/host policy lists.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <dragonx/policy/evaluator.hpp>

#include "support.hpp"

using dragonx::distribution;
using dragonx::errc;
using dragonx::gpu_vendor;
using dragonx::layout;
using dragonx::node_resources;
using dragonx::placement;
using dragonx::placement_evaluator;
using dragonx::policy;
using dragonx::test::errc_of;

static_assert(std::is_nothrow_move_constructible_v<placement_evaluator>);
static_assert(std::is_nothrow_move_constructible_v<layout>);

namespace {

// `n` nodes "node<i>" with CPUs 0..cpus-1 and GPUs 0..gpus-1 (nvidia when there are any).
std::vector<node_resources> make_nodes(std::uint32_t n, int cpus, int gpus = 0)
{
    std::vector<node_resources> nodes;
    for (std::uint32_t i = 0; i < n; ++i) {
        node_resources r;
        r.index = i;
        r.hostname = "node" + std::to_string(i);
        for (int c = 0; c < cpus; ++c) {
            r.cpus.push_back(c);
        }
        for (int g = 0; g < gpus; ++g) {
            r.gpus.push_back(g);
        }
        r.vendor = gpus > 0 ? gpu_vendor::nvidia : gpu_vendor::none;
        nodes.push_back(std::move(r));
    }
    return nodes;
}

policy with_distribution(distribution d)
{
    policy p;
    p.distribution_kind = d;
    return p;
}

const policy rr = with_distribution(distribution::roundrobin);
const policy block = with_distribution(distribution::block);

// How many of `layouts` landed on each of `n` nodes.
std::vector<int> per_node(const std::vector<layout>& layouts, std::size_t n)
{
    std::vector<int> counts(n, 0);
    for (const auto& l : layouts) {
        counts.at(l.node) += 1;
    }
    return counts;
}

std::vector<std::uint32_t> nodes_of(const std::vector<layout>& layouts)
{
    std::vector<std::uint32_t> out;
    for (const auto& l : layouts) {
        out.push_back(l.node);
    }
    return out;
}

}  // namespace

TEST_CASE("spec §5.3: 8 roundrobin on 4 nodes x 4 CPUs gives 2 per node", "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(4, 4));
    const auto layouts = eval.evaluate(std::vector<policy>(8, rr));
    REQUIRE(layouts.size() == 8);
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{0, 1, 2, 3, 0, 1, 2, 3});
    CHECK(per_node(layouts, 4) == std::vector<int>{2, 2, 2, 2});
    CHECK(eval.placed() == std::vector<std::uint32_t>{2, 2, 2, 2});
}

TEST_CASE("spec §5.3: 8 block on 4 nodes x 4 CPUs fills nodes 0 and 1", "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(4, 4));
    const auto layouts = eval.evaluate(std::vector<policy>(8, block));
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{0, 0, 0, 0, 1, 1, 1, 1});
    CHECK(per_node(layouts, 4) == std::vector<int>{4, 4, 0, 0});
}

TEST_CASE("spec §5.3: 16 block on 2 nodes x 4 CPUs overprovisions to 8 each",
          "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(2, 4));
    const auto layouts = eval.evaluate(std::vector<policy>(16, block));
    CHECK(per_node(layouts, 2) == std::vector<int>{8, 8});
    // The first 8 fill the nodes in turn; the rest alternate (round robin).
    const auto nodes = nodes_of(layouts);
    CHECK(std::vector<std::uint32_t>(nodes.begin(), nodes.begin() + 8) ==
          std::vector<std::uint32_t>{0, 0, 0, 0, 1, 1, 1, 1});
    for (std::size_t i = 9; i < nodes.size(); ++i) {
        CHECK(nodes[i] != nodes[i - 1]);
    }
}

TEST_CASE("spec §5.3: mixed RR,B,B,B,RR,B,RR,B gives per-node counts 1,4,2,1",
          "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(4, 4));
    const auto layouts = eval.evaluate({rr, block, block, block, rr, block, rr, block});
    CHECK(per_node(layouts, 4) == std::vector<int>{1, 4, 2, 1});
}

TEST_CASE("the cursor persists across evaluate() calls", "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(3, 2));
    std::vector<std::uint32_t> nodes;
    for (int i = 0; i < 7; ++i) {
        nodes.push_back(eval.evaluate(rr).node);
    }
    CHECK(nodes == std::vector<std::uint32_t>{0, 1, 2, 0, 1, 2, 0});

    SECTION("block continues from the cursor and counts earlier placements")
    {
        // Placed so far: 3, 2, 2 on nodes of 2 CPUs; the cursor is at node 1 (full), so block
        // finds every node full and goes round robin from node 1.
        CHECK(eval.evaluate(block).node == 1U);
        CHECK(eval.evaluate(block).node == 2U);
    }
}

TEST_CASE("an unset distribution is round robin (the global policy's)", "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(2, 4));
    const auto layouts = eval.evaluate(std::vector<policy>(4, policy{}));
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{0, 1, 0, 1});
}

TEST_CASE("block skips a full node to the next one with a free CPU", "[policy][evaluator]")
{
    auto nodes = make_nodes(3, 2);
    nodes[1].cpus = {0};  // node 1 has one slot
    placement_evaluator eval(nodes);
    const auto layouts = eval.evaluate(std::vector<policy>(6, block));
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{0, 0, 1, 2, 2, 2});
}

TEST_CASE("host_name and host_id pin a node without moving the cursor", "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(4, 4));
    policy by_name;
    by_name.placement_kind = placement::host_name;
    by_name.host_name = "node2";
    policy by_id;
    by_id.placement_kind = placement::host_id;
    by_id.host_id = 3;

    const auto layouts = eval.evaluate({by_name, rr, by_id, by_id, rr});
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{2, 0, 3, 3, 1});
    CHECK(layouts[0].hostname == "node2");
    CHECK(layouts[0].node_specified);
    CHECK(layouts[2].node_specified);
    CHECK_FALSE(layouts[1].node_specified);
    CHECK(eval.placed() == std::vector<std::uint32_t>{1, 1, 1, 2});

    SECTION("pinned requests count against block's slots")
    {
        placement_evaluator fresh(make_nodes(2, 2));
        policy pin0;
        pin0.placement_kind = placement::host_id;
        pin0.host_id = 0;
        const auto l = fresh.evaluate({pin0, block, block});
        CHECK(nodes_of(l) == std::vector<std::uint32_t>{0, 0, 1});
    }
    SECTION("host_id names a node index, not a position in the table")
    {
        auto nodes = make_nodes(2, 1);
        nodes[0].index = 5;
        nodes[1].index = 9;
        placement_evaluator sparse(nodes);
        policy p;
        p.placement_kind = placement::host_id;
        p.host_id = 9;
        const layout l = sparse.evaluate(p);
        CHECK(l.node == 9U);
        CHECK(l.hostname == "node1");
    }
}

TEST_CASE("unknown hosts are not_found, named in the message, and change nothing",
          "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(2, 2));
    policy ghost;
    ghost.placement_kind = placement::host_name;
    ghost.host_name = "ghost17";
    std::string what;
    CHECK(errc_of([&] { (void)eval.evaluate({rr, ghost}); }, &what) == errc::not_found);
    CHECK_THAT(what, Catch::Contains("ghost17"));

    policy far;
    far.placement_kind = placement::host_id;
    far.host_id = 42;
    CHECK(errc_of([&] { (void)eval.evaluate({rr, rr, far}); }, &what) == errc::not_found);
    CHECK_THAT(what, Catch::Contains("42"));

    // The round-robin requests before the failures were not committed.
    CHECK(eval.placed() == std::vector<std::uint32_t>{0, 0});
    CHECK(eval.evaluate(rr).node == 0U);
}

TEST_CASE("invalid requests are invalid_argument", "[policy][evaluator]")
{
    placement_evaluator eval(make_nodes(2, 2));
    policy no_name;
    no_name.placement_kind = placement::host_name;
    CHECK(errc_of([&] { (void)eval.evaluate(no_name); }) == errc::invalid_argument);
    policy no_id;
    no_id.placement_kind = placement::host_id;
    CHECK(errc_of([&] { (void)eval.evaluate(no_id); }) == errc::invalid_argument);
    CHECK(eval.placed() == std::vector<std::uint32_t>{0, 0});
}

TEST_CASE("the node table must be non-empty with unique indices", "[policy][evaluator]")
{
    CHECK(errc_of([] { placement_evaluator e({}); }) == errc::invalid_argument);
    auto nodes = make_nodes(2, 1);
    nodes[1].index = 0;
    std::string what;
    CHECK(errc_of([&] { placement_evaluator e(nodes); }, &what) == errc::invalid_argument);
    CHECK_THAT(what, Catch::Contains("0"));
}

TEST_CASE("cpu list: node cpus in node order, restricted by cpu_affinity", "[policy][evaluator]")
{
    auto nodes = make_nodes(1, 0);
    nodes[0].cpus = {4, 5, 6, 7, 0, 1};
    placement_evaluator eval(nodes);

    CHECK(eval.evaluate(policy{}).cpus == std::vector<int>{4, 5, 6, 7, 0, 1});
    policy p;
    p.cpu_affinity = std::vector<int>{1, 7, 99, 4};
    CHECK(eval.evaluate(p).cpus == std::vector<int>{4, 7, 1});
    p.cpu_affinity = std::vector<int>{};
    CHECK(eval.evaluate(p).cpus == std::vector<int>{4, 5, 6, 7, 0, 1});
    p.cpu_affinity = std::vector<int>{42};
    CHECK(eval.evaluate(p).cpus.empty());
}

TEST_CASE("gpu list: gpu_affinity within the node's GPUs, or all, or none",
          "[policy][evaluator]")
{
    auto nodes = make_nodes(2, 2, 4);
    nodes[1].gpus.clear();
    nodes[1].vendor = gpu_vendor::none;
    placement_evaluator eval(nodes);
    policy on0;
    on0.placement_kind = placement::host_id;
    on0.host_id = 0;
    policy on1 = on0;
    on1.host_id = 1;

    const layout all = eval.evaluate(on0);
    CHECK(all.gpus == std::vector<int>{0, 1, 2, 3});
    CHECK(all.vendor == gpu_vendor::nvidia);

    on0.gpu_affinity = std::vector<int>{3, 1, 3, 8};
    CHECK(eval.evaluate(on0).gpus == std::vector<int>{3, 1});

    on1.gpu_affinity = std::vector<int>{0};
    const layout none = eval.evaluate(on1);
    CHECK(none.gpus.empty());
    CHECK(none.vendor == gpu_vendor::none);
}

TEST_CASE("gpu_environment names the vendor variable and joins the GPU ids", "[policy]")
{
    layout l;
    CHECK_FALSE(dragonx::gpu_environment(l));
    l.gpus = {1, 3};
    CHECK_FALSE(dragonx::gpu_environment(l));  // no vendor, no variable
    l.vendor = gpu_vendor::nvidia;
    const auto env = dragonx::gpu_environment(l);
    REQUIRE(env);
    CHECK(env->first == "CUDA_VISIBLE_DEVICES");
    CHECK(env->second == "1,3");
    l.vendor = gpu_vendor::amd;
    CHECK(dragonx::gpu_environment(l)->first == "ROCR_VISIBLE_DEVICES");
    l.vendor = gpu_vendor::intel;
    l.gpus = {2};
    CHECK(*dragonx::gpu_environment(l) == std::pair<std::string, std::string>{"ZE_AFFINITY_MASK",
                                                                              "2"});
    l.gpus.clear();
    CHECK_FALSE(dragonx::gpu_environment(l));
    CHECK(dragonx::gpu_visibility_variable(gpu_vendor::none).empty());
}

TEST_CASE("gpu_policies: one pinned policy per GPU of every node", "[policy][evaluator]")
{
    auto nodes = make_nodes(3, 4, 2);
    nodes[1].gpus.clear();
    nodes[2].gpus = {1, 3};
    const auto policies = dragonx::gpu_policies(nodes);
    REQUIRE(policies.size() == 4);
    CHECK(policies[0].placement_kind == placement::host_name);
    CHECK(policies[0].host_name == "node0");
    CHECK(policies[0].gpu_affinity == std::vector<int>{0});
    CHECK(policies[1].gpu_affinity == std::vector<int>{1});
    CHECK(policies[2].host_name == "node2");
    CHECK(policies[2].gpu_affinity == std::vector<int>{1});
    CHECK(policies[3].gpu_affinity == std::vector<int>{3});

    // Evaluated, they land on their node with exactly their GPU.
    placement_evaluator eval(nodes);
    const auto layouts = eval.evaluate(policies);
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{0, 0, 2, 2});
    CHECK(layouts[3].gpus == std::vector<int>{3});
    CHECK(layouts[3].node_specified);
}

TEST_CASE("cpu_policies: one pinned policy per CPU of every node", "[policy][evaluator]")
{
    auto nodes = make_nodes(2, 3);
    nodes[1].cpus = {4, 6};
    const auto policies = dragonx::cpu_policies(nodes);
    REQUIRE(policies.size() == 5);
    CHECK(policies[0].placement_kind == placement::host_name);
    CHECK(policies[0].host_name == "node0");
    CHECK(policies[2].cpu_affinity == std::vector<int>{2});
    CHECK(policies[3].host_name == "node1");
    CHECK(policies[4].cpu_affinity == std::vector<int>{6});

    placement_evaluator eval(nodes);
    const auto layouts = eval.evaluate(policies);
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{0, 0, 0, 1, 1});
    CHECK(layouts[4].cpus == std::vector<int>{6});
}

TEST_CASE("hostname_policies: one per node; shared hostnames pin by host_id",
          "[policy][evaluator]")
{
    auto nodes = make_nodes(3, 1);
    auto policies = dragonx::hostname_policies(nodes);
    REQUIRE(policies.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(policies[i].placement_kind == placement::host_name);
        CHECK(policies[i].host_name == nodes[i].hostname);
    }

    // Virtual nodes on one host share a hostname: a host_name policy could not tell them apart.
    for (auto& n : nodes) {
        n.hostname = "laptop";
    }
    policies = dragonx::hostname_policies(nodes);
    placement_evaluator eval(nodes);
    const auto layouts = eval.evaluate(policies);
    CHECK(nodes_of(layouts) == std::vector<std::uint32_t>{0, 1, 2});
    CHECK(policies[1].placement_kind == placement::host_id);
}
