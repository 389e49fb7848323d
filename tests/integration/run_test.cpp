// run_test.cpp - integration: `dragonx run` exit codes, argument passing and output forwarding,
// checked on the real binary.
#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace dragonx::integration;

namespace {

/// A shell command run as the head: dragonx run [options...] /bin/sh -c SCRIPT.
outcome run_shell(const std::string& script, const std::vector<std::string>& options = {})
{
    std::vector<std::string> args{"run"};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), {"/bin/sh", "-c", script});
    return run_dragonx(args);
}

/// Checks a finished run: it exited by itself with `code`. Shows its output when it did not.
void check_exit(const outcome& r, int code)
{
    INFO("stdout: " << r.out);
    INFO("stderr: " << r.err);
    REQUIRE_FALSE(r.timed_out);
    REQUIRE(r.exited);
    CHECK(r.code == code);
}

} // namespace

TEST_CASE("dragonx run exits with the head's exit code", "[integration]")
{
    SECTION("success")
    {
        const auto r = run_dragonx({"run", "/bin/true"});
        check_exit(r, 0);
        CHECK(r.out.empty());
        CHECK(r.err.empty());
    }
    SECTION("a chosen code")
    {
        check_exit(run_shell("exit 7"), 7);
    }
    SECTION("the shorthand without `run`")
    {
        check_exit(run_dragonx({"/bin/sh", "-c", "exit 9"}), 9);
    }
    SECTION("a head killed by SIGKILL: 128 + 9")
    {
        check_exit(run_shell("kill -9 $$"), 137);
    }
    SECTION("a head killed by SIGTERM: 128 + 15")
    {
        check_exit(run_shell("kill -15 $$"), 143);
    }
}

TEST_CASE("dragonx run exits with 127 when the program cannot run", "[integration]")
{
    SECTION("a missing path")
    {
        const auto r = run_dragonx({"run", "/nonexistent-dir/no-such-program"});
        check_exit(r, 127);
        CHECK_THAT(r.err, Catch::Contains("/nonexistent-dir/no-such-program"));
        CHECK(r.out.empty());
    }
    SECTION("a name not in PATH")
    {
        const auto r = run_dragonx({"run", "dragonx-no-such-program-anywhere"});
        check_exit(r, 127);
        CHECK_THAT(r.err, Catch::Contains("dragonx-no-such-program-anywhere"));
    }
    SECTION("a file that is not executable")
    {
        temp_dir dir;
        const auto script = dir.path() / "not-executable.sh";
        write_file(script, "#!/bin/sh\nexit 0\n", 0644);
        const auto r = run_dragonx({"run", script.string()});
        check_exit(r, 127);
        CHECK_THAT(r.err, Catch::Contains(script.string()));
    }
}

TEST_CASE("dragonx run leaves the program's arguments untouched", "[integration]")
{
    SECTION("with run")
    {
        const auto r = run_dragonx({"run", "/bin/echo", "-N", "3", "--help"});
        check_exit(r, 0);
        CHECK(r.out == "-N 3 --help\n");
    }
    SECTION("shorthand")
    {
        const auto r = run_dragonx({"/bin/echo", "-l", "debug", "--wlm", "local", "run"});
        check_exit(r, 0);
        CHECK(r.out == "-l debug --wlm local run\n");
    }
}

TEST_CASE("dragonx run labels output as asked and keeps stderr on stderr", "[integration]")
{
    const std::string script = "echo out; echo err >&2";
    SECTION("none")
    {
        const auto r = run_shell(script, {"--label", "none"});
        check_exit(r, 0);
        CHECK(r.out == "out\n");
        CHECK(r.err == "err\n");
    }
    SECTION("none is the default")
    {
        const auto r = run_shell(script);
        check_exit(r, 0);
        CHECK(r.out == "out\n");
        CHECK(r.err == "err\n");
    }
    SECTION("basic")
    {
        const auto r = run_shell(script, {"--label", "basic"});
        check_exit(r, 0);
        std::smatch out;
        std::smatch err;
        REQUIRE(std::regex_match(r.out, out, std::regex(R"(\[stdout: puid (\d+)\] out\n)")));
        REQUIRE(std::regex_match(r.err, err, std::regex(R"(\[stderr: puid (\d+)\] err\n)")));
        CHECK(out[1] == err[1]);
    }
    SECTION("verbose")
    {
        const auto r = run_shell(script, {"--label", "verbose"});
        check_exit(r, 0);
        std::smatch out;
        std::smatch err;
        REQUIRE(
            std::regex_match(r.out, out, std::regex(R"(\[stdout: puid (\d+) @ node0\] out\n)")));
        REQUIRE(
            std::regex_match(r.err, err, std::regex(R"(\[stderr: puid (\d+) @ node0\] err\n)")));
        CHECK(out[1] == err[1]);
    }
}

TEST_CASE("verbose labels name the node each line comes from", "[integration]")
{
    const auto r = run_dragonx({"run", "--wlm", "local", "-N", "3", "--label", "verbose",
                                program("place_head"), "hostname"});
    check_exit(r, 0);
    // Every line is labelled; a child's report line carries its own puid and node.
    const std::regex labelled(R"(\[stdout: puid (\d+) @ (node\d+)\] (.*))");
    int reports = 0;
    for (const auto& line : lines_of(r.out)) {
        std::smatch m;
        REQUIRE(std::regex_match(line, m, labelled));
        const std::string text = m[3];
        if (text.starts_with("report ")) {
            ++reports;
            CHECK(field(text, "puid").value_or("-") == m[1].str());
            CHECK(field(text, "host").value_or("-") == m[2].str());
        }
    }
    CHECK(reports == 3);
}

TEST_CASE("dragonx run prints a last line without a newline", "[integration]")
{
    SECTION("unlabelled: as written")
    {
        const auto r = run_shell("printf 'a\\nb'");
        check_exit(r, 0);
        CHECK(r.out == "a\nb");
    }
    SECTION("labelled: as a line of its own")
    {
        const auto r = run_shell("printf 'a\\nb'", {"--label", "basic"});
        check_exit(r, 0);
        std::smatch m;
        REQUIRE(std::regex_match(r.out, m,
                                 std::regex(R"(\[stdout: puid (\d+)\] a\n)"
                                            R"(\[stdout: puid (\d+)\] b\n)")));
        CHECK(m[1] == m[2]);
    }
}

TEST_CASE("dragonx run forwards 10000 lines in order and loses none at exit", "[integration]")
{
    // Every line on stdout, every tenth also on stderr; the head exits right after the last.
    const auto r = run_shell("i=1; while [ $i -le 10000 ]; do echo \"line $i\"; "
                             "if [ $((i % 10)) -eq 0 ]; then echo \"err $i\" >&2; fi; "
                             "i=$((i + 1)); done");
    check_exit(r, 0);
    const auto out = lines_of(r.out);
    const auto err = lines_of(r.err);
    REQUIRE(out.size() == 10000);
    REQUIRE(err.size() == 1000);
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] != "line " + std::to_string(i + 1)) {
            FAIL("stdout line " << i + 1 << " is '" << out[i] << "'");
        }
    }
    for (std::size_t i = 0; i < err.size(); ++i) {
        if (err[i] != "err " + std::to_string((i + 1) * 10)) {
            FAIL("stderr line " << i + 1 << " is '" << err[i] << "'");
        }
    }
}
