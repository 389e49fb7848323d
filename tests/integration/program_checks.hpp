// program_checks.hpp - running an integration helper program (programs/*.cpp) under
// `dragonx run` on virtual nodes, and checking that it printed "PASS <mode>" and exited 0.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "harness.hpp"

namespace dragonx::integration {

/// `dragonx run --wlm local -N <nodes> -t tcp <program> <args...>` to the end.
inline outcome run_program(const std::string& name, const std::string& nodes,
                           const std::vector<std::string>& args, millis limit = 180s)
{
    std::vector<std::string> all = {"run", "--wlm", "local", "-N", nodes, "-t", "tcp",
                                    program(name)};
    all.insert(all.end(), args.begin(), args.end());
    return run_dragonx(all, limit);
}

/// The program exited 0 and printed exactly one "PASS <mode>" line.
inline void expect_pass(const outcome& r, const std::string& mode)
{
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exited);
    CHECK(r.code == 0);
    CHECK(lines_starting(r.out, "PASS " + mode).size() == 1);
}

}  // namespace dragonx::integration
