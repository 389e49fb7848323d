// options_test.cpp - the `dragonx` command line: subcommands and the shorthand, every option
// and its bad values, PROG's arguments left alone, help, version, host files.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "options.hpp"

namespace fs = std::filesystem;
using dragonx::launcher::cleanup_options;
using dragonx::launcher::command;
using dragonx::launcher::early_exit;
using dragonx::launcher::label_mode;
using dragonx::launcher::parse_command_line;
using dragonx::launcher::run_options;
using dragonx::launcher::wlm_kind;

namespace {

command parse(const std::vector<std::string>& args)
{
    std::vector<const char*> argv{"dragonx"};
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

run_options parse_run(const std::vector<std::string>& args)
{
    const command c = parse(args);
    if (const auto* e = std::get_if<early_exit>(&c)) {
        FAIL_CHECK("unexpected early exit " << e->code << ": " << e->out << e->err);
    }
    REQUIRE(std::holds_alternative<run_options>(c));
    return std::get<run_options>(c);
}

early_exit parse_exit(const std::vector<std::string>& args)
{
    const command c = parse(args);
    REQUIRE(std::holds_alternative<early_exit>(c));
    return std::get<early_exit>(c);
}

/// Checks that `args` is a usage error whose message mentions every one of `words`.
void check_usage_error(const std::vector<std::string>& args, const std::vector<std::string>& words)
{
    const early_exit e = parse_exit(args);
    INFO("error text: " << e.err);
    CHECK(e.code == 2);
    CHECK(e.out.empty());
    CHECK(e.err.find("Run 'dragonx --help' for usage.") != std::string::npos);
    for (const auto& w : words) {
        CHECK(e.err.find(w) != std::string::npos);
    }
}

bool same(const run_options& a, const run_options& b)
{
    return a.nodes == b.nodes && a.wlm == b.wlm && a.hosts == b.hosts &&
           a.single_node == b.single_node && a.label == b.label && a.log_level == b.log_level &&
           a.program == b.program && a.args == b.args;
}

/// A fresh temporary directory, removed with everything in it at the end of the scope.
class temp_dir {
public:
    temp_dir()
    {
        char name[] = "/tmp/dragonx-options-test-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path_ = name;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir()
    {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }

    [[nodiscard]] std::string write(const std::string& name, const std::string& text) const
    {
        const fs::path file = path_ / name;
        std::ofstream(file) << text;
        return file.string();
    }
    [[nodiscard]] const fs::path& path() const noexcept { return path_; }

private:
    fs::path path_;
};

}  // namespace

TEST_CASE("a bare program runs with the defaults", "[launcher][options]")
{
    const run_options o = parse_run({"./prog"});
    CHECK(o.nodes == 0);
    CHECK(o.wlm == wlm_kind::automatic);
    CHECK(o.hosts.empty());
    CHECK_FALSE(o.single_node);
    CHECK(o.label == label_mode::none);
    CHECK(o.log_level == "warning");
    CHECK(o.program == "./prog");
    CHECK(o.args.empty());
}

TEST_CASE("the shorthand and `run` give the same result", "[launcher][options]")
{
    const std::vector<std::vector<std::string>> lines = {
        {"./prog"},
        {"./prog", "a", "b"},
        {"-N", "2", "--wlm", "slurm", "--label", "basic", "-l", "INFO", "./prog", "x"},
        {"--nodes=3", "--hostlist", "a,b", "python3", "-c", "print(1)"},
        {"-s", "--log-level=debug", "/bin/echo", "-N", "3"},
        {"-N", "2", "--", "-weird", "x"},
        {"run"},
        {"cleanup", "--dry-run"},
    };
    for (const auto& line : lines) {
        std::vector<std::string> with_run{"run"};
        with_run.insert(with_run.end(), line.begin(), line.end());
        if (line.front() == "run" || line.front() == "cleanup") {
            // A program named like a subcommand needs `run` (or a path) in front.
            const run_options o = parse_run(with_run);
            CHECK(o.program == line.front());
            continue;
        }
        INFO("command line after 'dragonx [run]': " << line.size() << " args, first "
                                                    << line.front());
        CHECK(same(parse_run(line), parse_run(with_run)));
    }
}

TEST_CASE("everything from PROG on is PROG's, untouched", "[launcher][options]")
{
    const std::vector<std::string> tail = {"-N", "3",  "--help", "-h",  "--version", "--",
                                           "",   "{}", "[1,2]",  "run", "cleanup",   "--wlm=pbs"};
    for (const bool shorthand : {false, true}) {
        std::vector<std::string> args;
        if (!shorthand) {
            args.emplace_back("run");
        }
        args.insert(args.end(), {"-N", "2", "./prog"});
        args.insert(args.end(), tail.begin(), tail.end());
        const run_options o = parse_run(args);
        CHECK(o.nodes == 2);
        CHECK(o.program == "./prog");
        CHECK(o.args == tail);
    }
}

TEST_CASE("-- ends the options", "[launcher][options]")
{
    SECTION("a program that starts with '-'")
    {
        const run_options o = parse_run({"run", "-N", "2", "--", "-weird", "-x", "--", "y"});
        CHECK(o.nodes == 2);
        CHECK(o.program == "-weird");
        CHECK(o.args == std::vector<std::string>{"-x", "--", "y"});
    }
    SECTION("a -- after PROG is PROG's")
    {
        const run_options o = parse_run({"./prog", "a", "--", "b"});
        CHECK(o.program == "./prog");
        CHECK(o.args == std::vector<std::string>{"a", "--", "b"});
    }
    SECTION("shorthand")
    {
        const run_options o = parse_run({"--", "./prog", "--", "-N"});
        CHECK(o.program == "./prog");
        CHECK(o.args == std::vector<std::string>{"--", "-N"});
    }
    SECTION("nothing after it")
    {
        check_usage_error({"run", "-N", "2", "--"}, {"no program specified"});
    }
}

TEST_CASE("-N/--nodes takes a non-negative integer", "[launcher][options]")
{
    CHECK(parse_run({"-N", "0", "p"}).nodes == 0);
    CHECK(parse_run({"-N", "7", "p"}).nodes == 7);
    CHECK(parse_run({"-N5", "p"}).nodes == 5);
    CHECK(parse_run({"--nodes", "4096", "p"}).nodes == 4096);
    CHECK(parse_run({"--nodes=12", "p"}).nodes == 12);
    CHECK(parse_run({"-N", "1", "-N", "3", "p"}).nodes == 3);  // the last one wins

    check_usage_error({"-N", "-1", "p"}, {"--nodes", "-1"});
    check_usage_error({"-N", "x", "p"}, {"--nodes", "'x'", "non-negative integer"});
    check_usage_error({"--nodes=2.5", "p"}, {"--nodes", "2.5"});
    check_usage_error({"-N", "", "p"}, {"--nodes"});
    check_usage_error({"-N", "99999999999", "p"}, {"--nodes", "99999999999", "too large"});
    check_usage_error({"run", "-N"}, {"--nodes"});
}

TEST_CASE("--wlm takes local, slurm, pbs or ssh", "[launcher][options]")
{
    CHECK(parse_run({"--wlm", "local", "p"}).wlm == wlm_kind::local);
    CHECK(parse_run({"--wlm", "slurm", "p"}).wlm == wlm_kind::slurm);
    CHECK(parse_run({"--wlm=pbs", "p"}).wlm == wlm_kind::pbs);
    CHECK(parse_run({"--wlm", "ssh", "p"}).wlm == wlm_kind::ssh);

    check_usage_error({"--wlm", "lsf", "p"}, {"--wlm", "'lsf'", "slurm"});
    check_usage_error({"--wlm", "SLURM", "p"}, {"--wlm", "'SLURM'"});
    check_usage_error({"--wlm", "automatic", "p"}, {"--wlm", "'automatic'"});
    check_usage_error({"run", "--wlm"}, {"--wlm"});
}

TEST_CASE("--hostlist: hosts in order, trimmed, without duplicates", "[launcher][options]")
{
    CHECK(parse_run({"--hostlist", "n1", "p"}).hosts == std::vector<std::string>{"n1"});
    CHECK(parse_run({"--hostlist", "b, a,,b ,c", "p"}).hosts ==
          std::vector<std::string>{"b", "a", "c"});
    check_usage_error({"--hostlist", ",, ", "p"}, {"--hostlist", "no host"});
    check_usage_error({"--hostlist", "a b,c", "p"}, {"--hostlist", "'a b'"});
}

TEST_CASE("--hostfile: one host per line, comments and duplicates skipped", "[launcher][options]")
{
    const temp_dir dir;
    SECTION("parsing")
    {
        const std::string file = dir.write("hosts", "# the allocation\n"
                                                    "\n"
                                                    "  node3  \n"
                                                    "node1 # login node\n"
                                                    "\tnode2\t\n"
                                                    "node3\n"
                                                    "   # indented comment\n"
                                                    "node1");
        const run_options o = parse_run({"--hostfile", file, "./prog"});
        CHECK(o.hosts == std::vector<std::string>{"node3", "node1", "node2"});
        CHECK(parse_run({"--hostfile=" + file, "./prog"}).hosts == o.hosts);
    }
    SECTION("an unreadable file")
    {
        const std::string missing = (dir.path() / "no-such-file").string();
        check_usage_error({"--hostfile", missing, "./prog"}, {"--hostfile", missing});
        check_usage_error({"--hostfile", dir.path().string(), "./prog"},
                          {"--hostfile", dir.path().string()});
    }
    SECTION("a file without hosts")
    {
        const std::string file = dir.write("empty", "# nothing\n\n");
        check_usage_error({"--hostfile", file, "./prog"}, {"--hostfile", file, "no host"});
    }
    SECTION("a line that is not a host name")
    {
        const std::string file = dir.write("slots", "node1\nnode2 slots=4\n");
        check_usage_error({"--hostfile", file, "./prog"}, {"--hostfile", ":2", "node2 slots=4"});
    }
    SECTION("not together with --hostlist")
    {
        const std::string file = dir.write("hosts", "node1\n");
        check_usage_error({"--hostfile", file, "--hostlist", "a", "./prog"},
                          {"--hostfile", "--hostlist"});
        check_usage_error({"run", "--hostlist", "a", "--hostfile", file, "./prog"},
                          {"--hostfile", "--hostlist"});
    }
}

TEST_CASE("-s/--single-node", "[launcher][options]")
{
    CHECK(parse_run({"-s", "p"}).single_node);
    CHECK(parse_run({"--single-node", "p"}).single_node);
    CHECK(parse_run({"-s", "-N", "1", "p"}).single_node);
    CHECK(parse_run({"-s", "-N", "0", "p"}).single_node);

    check_usage_error({"-s", "--wlm", "local", "p"}, {"--single-node", "--wlm"});
    check_usage_error({"--wlm", "slurm", "--single-node", "p"}, {"--single-node", "--wlm"});
    check_usage_error({"-s", "-N", "2", "p"}, {"--single-node", "-N 2"});
}

TEST_CASE("--label takes none, basic or verbose", "[launcher][options]")
{
    CHECK(parse_run({"--label", "none", "p"}).label == label_mode::none);
    CHECK(parse_run({"--label", "basic", "p"}).label == label_mode::basic);
    CHECK(parse_run({"--label=verbose", "p"}).label == label_mode::verbose);

    check_usage_error({"--label", "fancy", "p"}, {"--label", "'fancy'", "verbose"});
    check_usage_error({"run", "--label"}, {"--label"});
}

TEST_CASE("-l/--log-level takes a level, in any case", "[launcher][options]")
{
    for (const char* level : {"debug", "info", "warning", "error", "critical", "none"}) {
        CHECK(parse_run({"-l", level, "p"}).log_level == level);
    }
    CHECK(parse_run({"--log-level", "DEBUG", "p"}).log_level == "debug");
    CHECK(parse_run({"--log-level=Warning", "p"}).log_level == "warning");
    CHECK(parse_run({"-lInfo", "p"}).log_level == "info");

    check_usage_error({"-l", "loud", "p"}, {"--log-level", "'loud'", "critical"});
    check_usage_error({"-l", "warn", "p"}, {"--log-level", "'warn'"});
    check_usage_error({"run", "-l"}, {"--log-level"});
}

TEST_CASE("an unknown option is a usage error", "[launcher][options]")
{
    check_usage_error({"--bogus", "./prog"}, {"--bogus"});
    check_usage_error({"run", "--bogus=3", "./prog"}, {"--bogus=3"});
    check_usage_error({"run", "-x", "./prog"}, {"-x"});
    check_usage_error({"--bogus"}, {"--bogus"});
}

TEST_CASE("a missing program is a usage error", "[launcher][options]")
{
    check_usage_error({}, {"no program specified"});
    check_usage_error({"run"}, {"no program specified"});
    check_usage_error({"-N", "2"}, {"no program specified"});
    check_usage_error({"run", "-s", "--label", "basic"}, {"no program specified"});
    check_usage_error({"run", ""}, {"no program specified"});
}

TEST_CASE("--version prints the version", "[launcher][options]")
{
    const early_exit e = parse_exit({"--version"});
    CHECK(e.code == 0);
    CHECK(e.err.empty());
    REQUIRE(e.out.rfind("dragonx ", 0) == 0);
    CHECK(e.out.size() > std::string("dragonx \n").size());
    CHECK(e.out.back() == '\n');
    CHECK(e.out.find_first_of("0123456789") != std::string::npos);
}

TEST_CASE("-h/--help prints help, at the top and for each subcommand", "[launcher][options]")
{
    for (const char* flag : {"-h", "--help"}) {
        const early_exit top = parse_exit({flag});
        INFO(top.out);
        CHECK(top.code == 0);
        CHECK(top.err.empty());
        CHECK(top.out.find("Usage:") != std::string::npos);
        CHECK(top.out.find("run") != std::string::npos);
        CHECK(top.out.find("cleanup") != std::string::npos);
        CHECK(top.out.find("--version") != std::string::npos);

        for (const auto& args : std::vector<std::vector<std::string>>{
                 {"run", flag}, {"-N", "2", flag}, {"run", "--wlm", "ssh", flag}}) {
            const early_exit run = parse_exit(args);
            INFO(run.out);
            CHECK(run.code == 0);
            CHECK(run.out.find("dragonx run [OPTIONS] PROG [ARGS...]") != std::string::npos);
            for (const char* option : {"--nodes", "--wlm", "--hostfile", "--hostlist",
                                       "--single-node", "--label", "--log-level"}) {
                CHECK(run.out.find(option) != std::string::npos);
            }
        }

        const early_exit cleanup = parse_exit({"cleanup", flag});
        INFO(cleanup.out);
        CHECK(cleanup.code == 0);
        CHECK(cleanup.out.find("--dry-run") != std::string::npos);
    }
}

TEST_CASE("cleanup [--dry-run] [--this-node-only]", "[launcher][options]")
{
    const command plain = parse({"cleanup"});
    REQUIRE(std::holds_alternative<cleanup_options>(plain));
    CHECK_FALSE(std::get<cleanup_options>(plain).dry_run);
    CHECK_FALSE(std::get<cleanup_options>(plain).this_node_only);

    const command dry = parse({"cleanup", "--dry-run"});
    REQUIRE(std::holds_alternative<cleanup_options>(dry));
    CHECK(std::get<cleanup_options>(dry).dry_run);

    const command here = parse({"cleanup", "--this-node-only", "--dry-run"});
    REQUIRE(std::holds_alternative<cleanup_options>(here));
    CHECK(std::get<cleanup_options>(here).dry_run);
    CHECK(std::get<cleanup_options>(here).this_node_only);

    check_usage_error({"cleanup", "extra"}, {"extra"});
    check_usage_error({"cleanup", "--force"}, {"--force"});
    check_usage_error({"cleanup", "-N", "2"}, {"-N"});
}

TEST_CASE("to_string names every enumerator", "[launcher][options]")
{
    using dragonx::launcher::to_string;
    CHECK(std::string(to_string(wlm_kind::automatic)) == "automatic");
    CHECK(std::string(to_string(wlm_kind::local)) == "local");
    CHECK(std::string(to_string(wlm_kind::slurm)) == "slurm");
    CHECK(std::string(to_string(wlm_kind::pbs)) == "pbs");
    CHECK(std::string(to_string(wlm_kind::ssh)) == "ssh");
    CHECK(std::string(to_string(label_mode::none)) == "none");
    CHECK(std::string(to_string(label_mode::basic)) == "basic");
    CHECK(std::string(to_string(label_mode::verbose)) == "verbose");
}

TEST_CASE("-t/--transport takes tcp, ofi or ofi:<provider>", "[launcher][options]")
{
    const auto transport = [](const std::vector<std::string>& args) {
        return parse_run(args).transport;
    };
    CHECK(transport({"./prog"}).empty());
    CHECK(transport({"-t", "tcp", "./prog"}) == "tcp");
    CHECK(transport({"--transport", "ofi", "./prog"}) == "ofi");
    CHECK(transport({"run", "--transport=ofi:verbs", "./prog", "-t", "x"}) == "ofi:verbs");
    CHECK(transport({"-t", "ofi:tcp;ofi_rxm", "./prog"}) == "ofi:tcp;ofi_rxm");
    CHECK(transport({"-t", "ofi", "-t", "tcp", "./prog"}) == "tcp");
    for (const std::string bad : {"hsta", "ofi:", "ofi:a b", "TCP"}) {
        check_usage_error({"-t", bad, "./prog"}, {"-t/--transport", bad});
    }
}
