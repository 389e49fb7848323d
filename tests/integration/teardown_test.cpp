// teardown_test.cpp - integration: however a run ends, nothing of it is left on the host: no
// process with its DRAGONX_RUN, no /dev/shm/dragonx-<run>-* object, no run directory.
//
// The head (place_head teardown ...) creates a pool and disowns it, so the runtime has an shm
// object to clean up, prints "run=<id> pool=<name>", then "ready".
#include <catch2/catch.hpp>

#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace dragonx::integration;

namespace {

constexpr millis ready_limit = 20s;
constexpr millis gone_limit = 5s; // from the launcher's exit to nothing left

/// The run id from the head's "run=<id> pool=<name>" line ("" if there is none).
std::string run_id_of(const std::string& out)
{
    const auto lines = lines_starting(out, "run=");
    return lines.empty() ? "" : field(lines.front(), "run").value_or("");
}

/// Starts `dragonx args` with a head that prints "ready"; waits for it and checks that the run
/// is there (processes, the head's pool). Returns the run id.
std::string wait_until_ready(launcher_run& launcher, run_cleanup& cleanup)
{
    const bool ready = launcher.wait_for_line("ready", ready_limit);
    INFO("stdout: " << launcher.out());
    INFO("stderr: " << launcher.err());
    REQUIRE(ready);
    const auto run = run_id_of(launcher.out());
    REQUIRE_FALSE(run.empty());
    cleanup.watch(run);
    CHECK_FALSE(run_processes(run).empty());
    CHECK_FALSE(run_shm_objects(run).empty());
    return run;
}

void check_nothing_left(const std::string& run)
{
    INFO("run " << run);
    CHECK(leftovers_after(run, gone_limit) == "");
}

} // namespace

TEST_CASE("a run that ends normally leaves nothing", "[integration]")
{
    run_cleanup cleanup;
    const auto r = run_dragonx({"run", program("place_head"), "teardown", "exit"});
    INFO("stdout: " << r.out);
    INFO("stderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 0);
    const auto run = run_id_of(r.out);
    REQUIRE_FALSE(run.empty());
    cleanup.watch(run);
    const auto pool = lines_starting(r.out, "run=").front();
    CHECK(field(pool, "pool").value_or("").starts_with("/dragonx-" + run + "-n0-"));
    check_nothing_left(run);
}

TEST_CASE("an interrupted run exits 130 and leaves nothing", "[integration]")
{
    run_cleanup cleanup;
    launcher_run launcher(
        {"run", "--wlm", "local", "-N", "2", program("place_head"), "teardown", "sleep"});
    const auto run = wait_until_ready(launcher, cleanup);
    launcher.send(SIGINT);
    const auto& r = launcher.finish(20s);
    INFO("stderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 130);
    check_nothing_left(run);
}

TEST_CASE("a terminated launcher exits 143 and leaves nothing", "[integration]")
{
    run_cleanup cleanup;
    launcher_run launcher({"run", program("place_head"), "teardown", "sleep"});
    const auto run = wait_until_ready(launcher, cleanup);
    launcher.send(SIGTERM);
    const auto& r = launcher.finish(20s);
    INFO("stderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 143);
    check_nothing_left(run);
}

TEST_CASE("the daemons clean up after a launcher killed with SIGKILL", "[integration]")
{
    run_cleanup cleanup;
    launcher_run launcher(
        {"run", "--wlm", "local", "-N", "2", program("place_head"), "teardown", "child"});
    const auto run = wait_until_ready(launcher, cleanup);
    // Two daemons, the head and its sleeping child (which may still be between fork and
    // exec, when its environment cannot be read yet, as the head prints "ready").
    auto processes = run_processes(run);
    for (int i = 0; i < 50 && processes.size() < 4; ++i) {
        std::this_thread::sleep_for(100ms);
        processes = run_processes(run);
    }
    INFO("processes of the run: " << describe_processes(processes));
    CHECK(processes.size() == 4);
    launcher.send(SIGKILL);
    const auto& r = launcher.finish(5s, 0s);
    CHECK(r.signal == SIGKILL);
    check_nothing_left(run);
}

TEST_CASE("a lost daemon fails the run with a message naming its node", "[integration]")
{
    run_cleanup cleanup;
    launcher_run launcher(
        {"run", "--wlm", "local", "-N", "2", program("place_head"), "teardown", "sleep"});
    const auto run = wait_until_ready(launcher, cleanup);
    const auto daemon = daemon_pid(run, 1);
    REQUIRE(daemon.has_value());
    REQUIRE(::kill(*daemon, SIGKILL) == 0);
    const auto& r = launcher.finish(20s);
    INFO("stderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("node 1 (node1)"));
    check_nothing_left(run);
}
