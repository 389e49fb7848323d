// place_head.cpp - integration helper: a head program that starts `report` children (found
// next to itself) through the API, in one of several modes, and prints what the tests check.
//
//   place_head nodes                 the node table: "node <i> host=<h> cpus=<n> gpus=<list>"
//   place_head roundrobin N          N children, distribution roundrobin
//   place_head block N               N children, distribution block
//   place_head hostname              one child per system::hostname_policies() entry
//   place_head affinity CPU          one child with cpu_affinity {CPU}
//   place_head gpu                   one child per system::gpu_policies() entry
//   place_head group_restart N       a restarting group of N short-lived members
//   place_head group_walltime        a group of `sleep 100` members with a 1.5 s walltime
//   place_head group_fail            a group with a failing member, then the same ignoring it
//   place_head teardown exit|sleep|child   a disowned pool, then exit / sleep / sleep with a
//                                    sleeping child
//   place_head grandchild            a child (mode middle) that starts a grandchild
//   place_head kv                    a child (mode kv_reader) waits for a key the head puts
//
// Every started child is printed as "child <i> puid=<p> node=<n>" in start order; every join
// as "joined <i> exit=<code>". Errors go to stderr and exit 1.
//
// Notes:
// - Joins and group joins always have limits: a broken runtime fails the test, never hangs it
//   (the test also kills the whole run at its own limit).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;

constexpr auto join_limit = 20s;

std::string program_beside_me(const std::string& name)
{
    return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / name).string();
}

dragonx::process_template report_template(std::vector<std::string> args = {})
{
    return dragonx::process_template{.exe = program_beside_me("report"), .args = std::move(args)};
}

std::string join_ids(const std::vector<int>& ids)
{
    std::string out;
    for (const int id : ids) {
        out += (out.empty() ? "" : ",") + std::to_string(id);
    }
    return out.empty() ? "-" : out;
}

void print_nodes()
{
    const auto sys = dragonx::system::current();
    for (const auto& n : sys.nodes()) {
        std::cout << "node " << n.index << " host=" << n.hostname << " cpus=" << n.cpus.size()
                  << " gpus=" << join_ids(n.gpus) << std::endl;
    }
}

/// Starts one process per template (in order), prints them, joins them all, prints the codes.
/// Returns 0 if every child exited 0.
int start_and_join(const std::vector<dragonx::process_template>& templates)
{
    std::vector<dragonx::process> children;
    for (std::size_t i = 0; i < templates.size(); ++i) {
        children.push_back(dragonx::process::start(templates[i]));
        std::cout << "child " << i << " puid=" << children.back().puid()
                  << " node=" << children.back().node() << std::endl;
    }
    int result = 0;
    for (std::size_t i = 0; i < children.size(); ++i) {
        const auto code = children[i].join(join_limit);
        std::cout << "joined " << i << " exit=" << (code ? std::to_string(*code) : "timeout")
                  << std::endl;
        if (!code || *code != 0) {
            children[i].kill();
            result = 1;
        }
    }
    return result;
}

int distribute(dragonx::distribution how, int n)
{
    print_nodes();
    dragonx::policy p;
    p.distribution_kind = how;
    return start_and_join(
        std::vector(static_cast<std::size_t>(n), report_template().with_policy(p)));
}

int per_policy(const std::vector<dragonx::policy>& policies)
{
    std::vector<dragonx::process_template> templates;
    for (const auto& p : policies) {
        templates.push_back(report_template().with_policy(p));
    }
    return start_and_join(templates);
}

int affinity(int cpu)
{
    dragonx::policy p;
    p.cpu_affinity = std::vector<int>{cpu};
    return start_and_join({report_template().with_policy(p)});
}

int gpu()
{
    print_nodes();
    const auto policies = dragonx::system::current().gpu_policies();
    std::cout << "gpu_policies " << policies.size() << std::endl;
    return per_policy(policies);
}

int group_restart(std::uint32_t n)
{
    dragonx::process_group group({.restart = true});
    group.add(n, report_template({"0", "200"}));
    group.start();
    // Members live 200 ms; sample how many run over 1.5 s, then stop.
    std::size_t most = 0;
    std::size_t full = 0;
    for (int i = 0; i < 15; ++i) {
        std::this_thread::sleep_for(100ms);
        const auto running = group.puids().size();
        most = std::max(most, running);
        full += running == n ? 1 : 0;
    }
    group.stop(1s);
    std::cout << "restart most=" << most << " full_samples=" << full
              << " exits=" << group.exit_status().size()
              << " running_after_stop=" << group.puids().size() << std::endl;
    group.close(1s);
    return 0;
}

int group_walltime()
{
    dragonx::process_group group({.walltime = 1500ms});
    group.add(3, {.exe = "/bin/sleep", .args = {"100"}});
    const auto start = std::chrono::steady_clock::now();
    group.start();
    std::string outcome = "ok";
    try {
        group.join(20s);
    } catch (const dragonx::error& e) {
        outcome = e.what();
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    std::cout << "walltime joined_ms=" << took.count()
              << " expired=" << (group.walltime_expired() ? 1 : 0)
              << " exits=" << group.exit_status().size() << " join=" << outcome << std::endl;
    group.close(1s);
    return 0;
}

/// "ok", "process_failed", or the error's message for anything else.
std::string join_outcome(dragonx::process_group& group)
{
    try {
        group.join(20s);
        return "ok";
    } catch (const dragonx::error& e) {
        return e.is(dragonx::errc::process_failed) ? "process_failed"
                                                   : std::string("other: ") + e.what();
    }
}

int group_fail()
{
    for (const bool ignore : {false, true}) {
        dragonx::process_group group({.ignore_error_on_exit = ignore});
        group.add(2, report_template({"0"}));
        group.add(1, report_template({"3"}));
        group.start();
        std::cout << "group ignore=" << (ignore ? 1 : 0) << " join=" << join_outcome(group)
                  << std::endl;
        group.close(1s);
    }
    return 0;
}

int teardown(const std::string& how)
{
    auto pool = dragonx::pool::pool::create({.size = 1 << 20});
    pool.disown();
    std::cout << "run=" << dragonx::runtime::current().run_id() << " pool=" << pool.name()
              << std::endl;
    if (how == "child") {
        auto child = dragonx::process::start({.exe = "/bin/sleep", .args = {"100"}});
        std::cout << "child 0 puid=" << child.puid() << " node=" << child.node() << std::endl;
    }
    std::cout << "ready" << std::endl;
    if (how == "exit") {
        return 0;
    }
    for (;;) {
        ::pause();
    }
}

int grandchild()
{
    return start_and_join({{.exe = program_beside_me("place_head"), .args = {"middle"}}});
}

int middle()
{
    auto child = dragonx::process::start(report_template({"5"}));
    const auto code = child.join(join_limit);
    std::cout << "middle self=" << dragonx::runtime::current().puid()
              << " grandchild=" << child.puid()
              << " exit=" << (code ? std::to_string(*code) : "timeout") << std::endl;
    return code == 5 ? 0 : 1;
}

int kv()
{
    auto reader =
        dragonx::process::start({.exe = program_beside_me("place_head"), .args = {"kv_reader"}});
    dragonx::runtime::current().kv_put("integration/greeting", "hello from the head");
    const auto code = reader.join(join_limit);
    std::cout << "reader exit=" << (code ? std::to_string(*code) : "timeout") << std::endl;
    return code == 0 ? 0 : 1;
}

int kv_reader()
{
    const auto value = dragonx::runtime::current().kv_get("integration/greeting", 10s);
    std::cout << "kv_reader got=" << value << std::endl;
    return 0;
}

// Starts a child on the last node (across nodes when there are several) whose stdout
// and stderr are pipes, reads both to the end, and prints what came, escaped on one line each.
int piped()
{
    dragonx::policy on_last;
    on_last.placement_kind = dragonx::placement::host_id;
    on_last.host_id = dragonx::runtime::current().nnodes() - 1;
    auto child = dragonx::process::start(
        {.exe = "/bin/sh",
         .args = {"-c", "echo one; echo two >&2; sleep 0.2; printf 'three'; exit 4"},
         .where = on_last,
         .out = dragonx::stdio::pipe(),
         .err = dragonx::stdio::pipe()});
    const auto drain = [&](dragonx::rt::output_stream s) {
        std::string all;
        while (auto chunk = child.read(s, 10s)) {
            all += *chunk;
        }
        for (auto& c : all) {
            c = c == '\n' ? '|' : c;
        }
        return all;
    };
    const std::string out = drain(dragonx::rt::output_stream::out);
    const std::string err = drain(dragonx::rt::output_stream::err);
    const auto code = child.join(join_limit);
    std::cout << "piped out=" << out << " err=" << err << " node=" << child.node()
              << " exit=" << (code ? std::to_string(*code) : "timeout") << std::endl;
    return 0;
}

// A child creates a pool, leaves it behind on purpose (disown) after registering it with its
// node's daemon, and exits; once the head has joined it, the pool must be gone.
int registered()
{
    auto child = dragonx::process::start({.exe = program_beside_me("place_head"),
                                          .args = {"registered_child"},
                                          .out = dragonx::stdio::pipe()});
    std::string name;
    while (auto chunk = child.read(dragonx::rt::output_stream::out, 10s)) {
        name += *chunk;
    }
    while (!name.empty() && name.back() == '\n') {
        name.pop_back();
    }
    const auto code = child.join(join_limit);
    const bool gone = !std::filesystem::exists("/dev/shm" + name);
    std::cout << "registered name=" << name
              << " exit=" << (code ? std::to_string(*code) : "timeout")
              << " gone=" << (gone ? "yes" : "no") << std::endl;
    return 0;
}

int registered_child()
{
    auto pool = dragonx::pool::pool::create({.size = 1 << 20});
    pool.disown();
    dragonx::runtime::current().register_shm(pool.name());
    std::cout << pool.name() << std::endl;
    return std::filesystem::exists("/dev/shm" + pool.name()) ? 0 : 1;
}

int dispatch(const std::vector<std::string>& a)
{
    const auto number = [&](std::size_t i) { return i < a.size() ? std::stoi(a[i]) : 0; };
    const std::string mode = a.empty() ? "" : a[0];
    if (mode == "nodes") {
        print_nodes();
        return 0;
    }
    if (mode == "roundrobin") {
        return distribute(dragonx::distribution::roundrobin, number(1));
    }
    if (mode == "block") {
        return distribute(dragonx::distribution::block, number(1));
    }
    if (mode == "hostname") {
        return per_policy(dragonx::system::current().hostname_policies());
    }
    if (mode == "affinity") {
        return affinity(number(1));
    }
    if (mode == "gpu") {
        return gpu();
    }
    if (mode == "group_restart") {
        return group_restart(static_cast<std::uint32_t>(number(1)));
    }
    if (mode == "group_walltime") {
        return group_walltime();
    }
    if (mode == "group_fail") {
        return group_fail();
    }
    if (mode == "teardown") {
        return teardown(a.size() > 1 ? a[1] : "exit");
    }
    if (mode == "grandchild") {
        return grandchild();
    }
    if (mode == "middle") {
        return middle();
    }
    if (mode == "kv") {
        return kv();
    }
    if (mode == "kv_reader") {
        return kv_reader();
    }
    if (mode == "piped") {
        return piped();
    }
    if (mode == "registered") {
        return registered();
    }
    if (mode == "registered_child") {
        return registered_child();
    }
    std::cerr << "place_head: unknown mode '" << mode << "'" << std::endl;
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return dispatch(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const std::exception& e) {
        std::cerr << "place_head: " << e.what() << std::endl;
        return 1;
    }
}
