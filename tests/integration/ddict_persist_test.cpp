// ddict_persist_test.cpp - integration: DDict checkpoints, persistence, restart and copies
// under `dragonx run` over virtual nodes (programs/ddict_persist_check).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "program_checks.hpp"

using namespace dragonx::integration;

namespace {

outcome run_check(const std::string& nodes, const std::vector<std::string>& mode)
{
    return run_program("ddict_persist_check", nodes, mode);
}

// /dev/shm objects kept for a restart of dictionaries whose names start with `name`.
std::vector<std::string> kept_objects(const std::string& name)
{
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
        const auto f = e.path().filename().string();
        if (f.starts_with("dragonx-kept-" + name)) {
            out.push_back(f);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("checkpoint reads and writes block and unblock across processes and nodes",
          "[integration][ddict][checkpoints]")
{
    expect_pass(run_check("2", {"checkpoints"}), "checkpoints");
}

TEST_CASE("checkpoints persist, restore, replay read-only, and corrupt files are refused",
          "[integration][ddict][persist]")
{
    temp_dir dir;
    expect_pass(run_check("2", {"persist", dir.path().string()}), "persist");
}

TEST_CASE("a dictionary destroyed with allow_restart comes back in a later run, and with a "
          "node missing is repaired by synchronize",
          "[integration][ddict][restart]")
{
    temp_dir dir;
    const std::string name = "rs" + std::to_string(::getpid());
    expect_pass(run_check("3", {"keep", name, dir.path().string()}), "keep");
    CHECK(kept_objects(name).size() == 12);  // 2 dictionaries x 3 managers x (pool + state)
    expect_pass(run_check("3", {"resume", name, dir.path().string(), "-", "keep"}), "resume");
    CHECK(kept_objects(name).size() == 12);
    // Node 2 is gone: manager 2 of the first dictionary comes back empty.
    expect_pass(run_check("2", {"resume", name, dir.path().string(), "2", "drop"}), "resume");
    CHECK(kept_objects(name).empty());
    CHECK_FALSE(std::filesystem::exists(dir.path() / (name + ".ddict-restart")));
    for (const auto& f : kept_objects(name)) {
        std::filesystem::remove("/dev/shm/" + f);  // only after a failure above
    }
}

TEST_CASE("clone and copy make exact copies with every checkpoint",
          "[integration][ddict][clone]")
{
    expect_pass(run_check("2", {"clone"}), "clone");
}
