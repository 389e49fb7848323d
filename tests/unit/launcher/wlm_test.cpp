// wlm_test.cpp - the launcher's workload-manager logic without a cluster: detection, node
// files, -N limits, launch templates, and the commands each back end would run (what they
// contain, and that the run secret is never on a command line).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <dragonx/common/error.hpp>

#include "wlm.hpp"

namespace fs = std::filesystem;
using namespace dragonx::launcher;

static_assert(std::has_virtual_destructor_v<workload_manager>);
static_assert(!std::is_copy_constructible_v<child_set>);

namespace {

/// A host environment made of a map of variables and a set of programs on PATH.
struct fake_host {
    std::map<std::string, std::string> variables;
    std::vector<std::string> programs;

    [[nodiscard]] host_environment environment() const
    {
        return {
            .variable = [this](const std::string& name) -> std::optional<std::string> {
                const auto it = variables.find(name);
                return it == variables.end() ? std::nullopt
                                             : std::optional<std::string>(it->second);
            },
            .on_path =
                [this](const std::string& program) {
                    return std::find(programs.begin(), programs.end(), program) !=
                           programs.end();
                },
        };
    }
};

run_options options_with(wlm_kind wlm, std::uint32_t nodes = 0,
                         std::vector<std::string> hosts = {})
{
    run_options o;
    o.wlm = wlm;
    o.nodes = nodes;
    o.hosts = std::move(hosts);
    o.program = "prog";
    return o;
}

const daemon_launch launch{.runtime_exe = "/opt/dx/dragonx-runtime",
                           .run = "r0123456789ab",
                           .launcher_address = "10.0.0.1:4567",
                           .secret_hex = std::string(64, 'f'),
                           .log_level = "warning",
                           .cwd = "/home/me/my dir"};

bool has(const std::vector<std::string>& words, const std::string& word)
{
    return std::find(words.begin(), words.end(), word) != words.end();
}

/// The word after `option` in `words`, or "" when there is none.
std::string after(const std::vector<std::string>& words, const std::string& option)
{
    const auto it = std::find(words.begin(), words.end(), option);
    return it == words.end() || it + 1 == words.end() ? std::string() : *(it + 1);
}

bool secret_only_where_allowed(const spawn_request& r)
{
    for (const auto& word : r.argv) {
        if (word.find(launch.secret_hex) != std::string::npos) {
            return false;
        }
    }
    return true;
}

std::string error_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        return e.what();
    }
    return "(no error)";
}

/// A PBS node file in a temporary directory, removed at the end of the test.
struct temp_nodefile {
    fs::path dir;
    fs::path path;
    explicit temp_nodefile(const std::string& text)
    {
        char name[] = "/tmp/dragonx-wlm-test.XXXXXX";
        dir = ::mkdtemp(name);
        path = dir / "nodefile";
        std::ofstream(path) << text;
    }
    ~temp_nodefile() { fs::remove_all(dir); }
    temp_nodefile(const temp_nodefile&) = delete;
    temp_nodefile& operator=(const temp_nodefile&) = delete;
};

}  // namespace

TEST_CASE("choose_wlm: -s, --wlm, hosts, Slurm, PBS, else local", "[launcher][wlm]")
{
    fake_host host;
    auto o = options_with(wlm_kind::automatic);
    CHECK(choose_wlm(o, host.environment()) == wlm_kind::local);

    SECTION("Slurm needs SLURM_JOB_ID and srun on PATH")
    {
        host.variables["SLURM_JOB_ID"] = "12";
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::local);
        host.programs.push_back("srun");
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::slurm);
        host.variables["SLURM_JOB_ID"] = "";  // set but empty counts as unset
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::local);
    }
    SECTION("PBS needs PBS_JOBID and PBS_NODEFILE")
    {
        host.variables["PBS_JOBID"] = "7.server";
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::local);
        host.variables["PBS_NODEFILE"] = "/var/spool/pbs/aux/7.server";
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::pbs);
    }
    SECTION("Slurm comes before PBS (Slurm's PBS compatibility sets PBS_JOBID too)")
    {
        host.variables = {{"SLURM_JOB_ID", "3"}, {"PBS_JOBID", "3"}, {"PBS_NODEFILE", "/f"}};
        host.programs = {"srun"};
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::slurm);
    }
    SECTION("hosts on the command line mean ssh, even inside an allocation")
    {
        host.variables = {{"SLURM_JOB_ID", "3"}};
        host.programs = {"srun"};
        o.hosts = {"a", "b"};
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::ssh);
    }
    SECTION("--wlm and -s win")
    {
        host.variables = {{"SLURM_JOB_ID", "3"}};
        host.programs = {"srun"};
        o.wlm = wlm_kind::pbs;
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::pbs);
        o.wlm = wlm_kind::local;
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::local);
        o.wlm = wlm_kind::automatic;
        o.single_node = true;
        CHECK(choose_wlm(o, host.environment()) == wlm_kind::local);
    }
}

TEST_CASE("unique_hosts reads node files and command output", "[launcher][wlm]")
{
    CHECK(unique_hosts("") == std::vector<std::string>{});
    CHECK(unique_hosts("n1\nn2\nn3\n") == std::vector<std::string>{"n1", "n2", "n3"});
    // PBS repeats a host once per MPI slot; order of first appearance is kept
    CHECK(unique_hosts("b\nb\na\na\nb\nc") == std::vector<std::string>{"b", "a", "c"});
    CHECK(unique_hosts("  x1  \r\n\n# comment\nx2 slots=4\n\tx3 # trailing\n") ==
          std::vector<std::string>{"x1", "x2", "x3"});
}

TEST_CASE("select_nodes: all, the first K, a subset; errors name the numbers",
          "[launcher][wlm]")
{
    const std::vector<std::string> offered = {"n1", "n2", "n3"};
    CHECK(select_nodes(offered, {}, 0, "the job") == offered);
    CHECK(select_nodes(offered, {}, 2, "the job") == std::vector<std::string>{"n1", "n2"});
    CHECK(select_nodes(offered, {}, 3, "the job") == offered);
    // a subset keeps the allocation's order
    CHECK(select_nodes(offered, {"n3", "n1"}, 0, "the job") ==
          std::vector<std::string>{"n1", "n3"});
    CHECK(select_nodes(offered, {"n3", "n1"}, 1, "the job") == std::vector<std::string>{"n1"});

    const auto too_many = error_of([&] { (void)select_nodes(offered, {}, 5, "the Slurm job"); });
    CHECK_THAT(too_many, Catch::Contains("-N 5 asks for 5 nodes, but the Slurm job has only 3"));
    const auto stranger = error_of([&] { (void)select_nodes(offered, {"n9"}, 0, "job 4"); });
    CHECK_THAT(stranger, Catch::Contains("'n9' is not a node of job 4 (n1, n2, n3)"));
    CHECK_THAT(error_of([] { (void)select_nodes({}, {}, 0, "job 5"); }),
               Catch::Contains("job 5 names no node"));
}

TEST_CASE("expand_launch_template: words, placeholders, errors", "[launcher][wlm]")
{
    const std::vector<std::string> nodes = {"h1", "h2", "h3"};
    CHECK(expand_launch_template(
              "mpiexec --np {nnodes} --ppn 1 --cpu-bind none --hosts {nodelist} --line-buffer",
              nodes) == std::vector<std::string>{"mpiexec", "--np", "3", "--ppn", "1",
                                                 "--cpu-bind", "none", "--hosts", "h1,h2,h3",
                                                 "--line-buffer"});
    CHECK(expand_launch_template("  run\t-n{nnodes}  --hosts={nodelist}x ", nodes) ==
          std::vector<std::string>{"run", "-n3", "--hosts=h1,h2,h3x"});
    CHECK(expand_launch_template("pbsdsh --", nodes) == std::vector<std::string>{"pbsdsh", "--"});

    CHECK_THAT(error_of([&] { (void)expand_launch_template("mpiexec -n {ranks}", nodes); }),
               Catch::Contains("{ranks}") && Catch::Contains("{nnodes}"));
    CHECK_THAT(error_of([&] { (void)expand_launch_template("mpiexec {nodelist", nodes); }),
               Catch::Contains("{nodelist"));
    CHECK_THAT(error_of([&] { (void)expand_launch_template("   ", nodes); }),
               Catch::Contains("empty"));
}

TEST_CASE("shell_quote survives any word", "[launcher][wlm]")
{
    CHECK(shell_quote("plain") == "'plain'");
    CHECK(shell_quote("") == "''");
    CHECK(shell_quote("it's $HOME") == "'it'\\''s $HOME'");
}

TEST_CASE("local: K virtual nodes, the secret on each daemon's stdin", "[launcher][wlm]")
{
    fake_host host;
    const auto wlm = make_workload_manager(options_with(wlm_kind::local, 3), host.environment());
    CHECK(wlm->name() == "local");
    CHECK_FALSE(wlm->spans_hosts());
    CHECK(wlm->nodes() == std::vector<std::string>{"node0", "node1", "node2"});
    const auto commands = wlm->daemon_commands(launch);
    REQUIRE(commands.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto& argv = commands[i].argv;
        CHECK(argv.front() == launch.runtime_exe);
        CHECK(after(argv, "--node") == std::to_string(i));
        CHECK(after(argv, "--hostname") == "node" + std::to_string(i));
        CHECK(after(argv, "--nnodes") == "3");
        CHECK(after(argv, "--launcher") == launch.launcher_address);
        CHECK(commands[i].stdin_data == launch.secret_hex + "\n");
        CHECK(secret_only_where_allowed(commands[i]));
        CHECK(has(commands[i].env, "DRAGONX_NODE=" + std::to_string(i)));
    }
    CHECK(wlm->on_every_node({"dragonx", "cleanup"}) == std::nullopt);

    SECTION("without --wlm local, -N above 1 names the way out")
    {
        const auto e = error_of([&] {
            (void)make_workload_manager(options_with(wlm_kind::automatic, 2),
                                        host.environment());
        });
        CHECK_THAT(e, Catch::Contains("2 nodes requested") &&
                          Catch::Contains("--wlm local -N 2"));
    }
    SECTION("hosts make no sense for local")
    {
        const auto e = error_of([&] {
            (void)make_workload_manager(options_with(wlm_kind::local, 0, {"a"}),
                                        host.environment());
        });
        CHECK_THAT(e, Catch::Contains("--wlm local"));
    }
}

TEST_CASE("slurm: outside an allocation, a clear error", "[launcher][wlm]")
{
    fake_host host;
    host.programs = {"srun"};
    const auto no_job = error_of(
        [&] { (void)make_workload_manager(options_with(wlm_kind::slurm), host.environment()); });
    CHECK_THAT(no_job, Catch::Contains("not inside a Slurm allocation") &&
                           Catch::Contains("salloc") && Catch::Contains("sbatch"));
    host.programs.clear();
    host.variables["SLURM_JOB_ID"] = "4";
    const auto no_srun = error_of(
        [&] { (void)make_workload_manager(options_with(wlm_kind::slurm), host.environment()); });
    CHECK_THAT(no_srun, Catch::Contains("srun is not on PATH"));
}

TEST_CASE("pbs: hosts of PBS_NODEFILE, the launch template, identity by rank",
          "[launcher][wlm]")
{
    const temp_nodefile nodefile("c1\nc1\nc2\nc2\nc3\nc3\n");
    fake_host host;
    host.variables = {{"PBS_JOBID", "77.pbs"}, {"PBS_NODEFILE", nodefile.path.string()}};

    SECTION("the default PALS mpiexec, one rank per host")
    {
        const auto wlm = make_workload_manager(options_with(wlm_kind::automatic),
                                               host.environment());
        CHECK(wlm->name() == "pbs");
        CHECK(wlm->spans_hosts());
        CHECK(wlm->nodes() == std::vector<std::string>{"c1", "c2", "c3"});
        const auto commands = wlm->daemon_commands(launch);
        REQUIRE(commands.size() == 1);
        const auto& argv = commands[0].argv;
        CHECK(std::vector<std::string>(argv.begin(), argv.begin() + 10) ==
              std::vector<std::string>{"mpiexec", "--np", "3", "--ppn", "1", "--cpu-bind",
                                       "none", "--hosts", "c1,c2,c3", "--line-buffer"});
        CHECK(argv[10] == launch.runtime_exe);
        CHECK(after(argv, "--node-from") ==
              "PALS_NODEID,PMI_RANK,OMPI_COMM_WORLD_RANK,PMIX_RANK");
        CHECK(after(argv, "--hostnames") == "c1,c2,c3");
        CHECK(after(argv, "--address") == "0.0.0.0");
        CHECK_FALSE(has(argv, "--node"));
        CHECK(secret_only_where_allowed(commands[0]));
        CHECK(has(commands[0].env, "DRAGONX_RUN_SECRET=" + launch.secret_hex));
        CHECK(has(commands[0].env, "DRAGONX_RUN=" + launch.run));

        const auto cleanup = wlm->on_every_node({"/x/dragonx", "cleanup", "--this-node-only"});
        REQUIRE(cleanup);
        CHECK(cleanup->argv.front() == "mpiexec");
        CHECK(cleanup->argv.back() == "--this-node-only");
    }
    SECTION("DRAGONX_PBS_LAUNCH replaces the template; -N takes the first hosts")
    {
        host.variables["DRAGONX_PBS_LAUNCH"] = "mpirun -np {nnodes} --host {nodelist}";
        const auto wlm =
            make_workload_manager(options_with(wlm_kind::pbs, 2), host.environment());
        const auto argv = wlm->daemon_commands(launch).at(0).argv;
        CHECK(std::vector<std::string>(argv.begin(), argv.begin() + 5) ==
              std::vector<std::string>{"mpirun", "-np", "2", "--host", "c1,c2"});
        CHECK(after(argv, "--hostnames") == "c1,c2");
    }
    SECTION("a bad template is reported when the allocation is read")
    {
        host.variables["DRAGONX_PBS_LAUNCH"] = "mpirun -np {n}";
        CHECK_THAT(error_of([&] {
                       (void)make_workload_manager(options_with(wlm_kind::pbs), host.environment());
                   }),
                   Catch::Contains("{n}"));
    }
    SECTION("-N above the hosts of the node file")
    {
        CHECK_THAT(error_of([&] {
                       (void)make_workload_manager(options_with(wlm_kind::pbs, 4),
                                                   host.environment());
                   }),
                   Catch::Contains("-N 4 asks for 4 nodes") && Catch::Contains("only 3"));
    }
    SECTION("outside a job, or with a missing node file")
    {
        fake_host none;
        CHECK_THAT(error_of([&] {
                       (void)make_workload_manager(options_with(wlm_kind::pbs), none.environment());
                   }),
                   Catch::Contains("not inside a PBS job") && Catch::Contains("PBS_JOBID"));
        host.variables["PBS_NODEFILE"] = (nodefile.dir / "missing").string();
        CHECK_THAT(error_of([&] {
                       (void)make_workload_manager(options_with(wlm_kind::pbs), host.environment());
                   }),
                   Catch::Contains("cannot read PBS_NODEFILE"));
    }
}

TEST_CASE("ssh: one BatchMode ssh per host, in order, the secret on stdin", "[launcher][wlm]")
{
    fake_host host;
    host.programs = {"ssh"};
    const auto wlm = make_workload_manager(options_with(wlm_kind::automatic, 0, {"b", "a", "c"}),
                                           host.environment());
    CHECK(wlm->name() == "ssh");
    CHECK(wlm->nodes() == std::vector<std::string>{"b", "a", "c"});
    const auto commands = wlm->daemon_commands(launch);
    REQUIRE(commands.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        const auto& argv = commands[i].argv;
        REQUIRE(argv.size() == 4);
        CHECK(argv[0] == "ssh");
        CHECK(argv[1] == "-oBatchMode=yes");
        CHECK(argv[2] == wlm->nodes()[i]);
        const std::string& remote = argv[3];
        CHECK(remote.starts_with("cd '/home/me/my dir' && exec env "));
        CHECK_THAT(remote, Catch::Contains("'DRAGONX_RUN=" + launch.run + "'"));
        CHECK_THAT(remote, Catch::Contains("'" + launch.runtime_exe + "'"));
        CHECK_THAT(remote, Catch::Contains("'--node' '" + std::to_string(i) + "'"));
        CHECK_THAT(remote, Catch::Contains("'--hostname' '" + wlm->nodes()[i] + "'"));
        CHECK(commands[i].stdin_data == launch.secret_hex + "\n");
        CHECK(secret_only_where_allowed(commands[i]));
    }
    CHECK(wlm->on_every_node({"dragonx"}) == std::nullopt);

    SECTION("-N takes the first hosts; too many is an error")
    {
        const auto two = make_workload_manager(options_with(wlm_kind::ssh, 2, {"b", "a", "c"}),
                                               host.environment());
        CHECK(two->nodes() == std::vector<std::string>{"b", "a"});
        CHECK_THAT(error_of([&] {
                       (void)make_workload_manager(options_with(wlm_kind::ssh, 4, {"b", "a", "c"}),
                                                   host.environment());
                   }),
                   Catch::Contains("-N 4 asks for 4 nodes, but the host list has only 3"));
    }
    SECTION("--wlm ssh without hosts, or without ssh")
    {
        CHECK_THAT(error_of([&] {
                       (void)make_workload_manager(options_with(wlm_kind::ssh), host.environment());
                   }),
                   Catch::Contains("--hostfile") && Catch::Contains("--hostlist"));
        fake_host no_ssh;
        CHECK_THAT(error_of([&] {
                       (void)make_workload_manager(options_with(wlm_kind::ssh, 0, {"a"}),
                                                   no_ssh.environment());
                   }),
                   Catch::Contains("ssh is not on PATH"));
    }
}

TEST_CASE("child processes: output capture, exit reports, stopping", "[launcher][wlm]")
{
    CHECK(capture_output({"/bin/sh", "-c", "echo one; echo two"}, std::chrono::seconds(10)) ==
          "one\ntwo\n");
    CHECK_THAT(error_of([] {
                   (void)capture_output({"/bin/sh", "-c", "echo oops >&2; exit 3"},
                                        std::chrono::seconds(10));
               }),
               Catch::Contains("exited with status 3: oops"));
    CHECK_THAT(error_of([] {
                   (void)capture_output({"/bin/sleep", "10"}, std::chrono::milliseconds(100));
               }),
               Catch::Contains("did not finish within 100 ms"));
    CHECK_THAT(error_of([] {
                   (void)capture_output({"dragonx-no-such-program"}, std::chrono::seconds(1));
               }),
               Catch::Contains("dragonx-no-such-program"));

    child_set children;
    children.start({{.label = "quick", .argv = {"/bin/sh", "-c", "exit 4"},
                     .env = environment_with({}, {})},
                    {.label = "slow", .argv = {"/bin/sleep", "30"},
                     .env = environment_with({}, {}), .terminate_first = true,
                     .stop_grace = std::chrono::milliseconds(200)}});
    std::vector<child_set::exit_report> exited;
    for (int i = 0; i < 500 && exited.empty(); ++i) {
        exited = children.poll_exited();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(exited.size() == 1);
    CHECK(exited[0].label == "quick");
    CHECK(describe_wait_status(exited[0].status) == "exited with status 4");
    CHECK_FALSE(children.reap(std::chrono::milliseconds(50)));
    const auto before = std::chrono::steady_clock::now();
    children.stop();  // SIGTERM ends sleep at once
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(5));
    CHECK(children.reap(std::chrono::milliseconds(0)));
}
