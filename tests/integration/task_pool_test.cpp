// task_pool_test.cpp - integration: task pools under `dragonx run` over virtual nodes
// (programs/task_pool_check, which is its own worker).
#include <catch2/catch.hpp>

#include "program_checks.hpp"

using namespace dragonx::integration;

TEST_CASE("task pools map, starmap, apply and imap in order, with an initializer",
          "[integration][tasks]")
{
    expect_pass(run_program("task_pool_check", "2", {"basic"}, 60s), "basic");
}

TEST_CASE("a task that throws and workers killed by SIGKILL fail only their task",
          "[integration][tasks]")
{
    const auto r = run_program("task_pool_check", "2", {"failures"}, 60s);
    expect_pass(r, "failures");
    CHECK(lines_starting(r.out, "self-kill: task 'die' lost: worker ").size() == 1);
    CHECK(lines_starting(r.out, "throw: task 'fail_on_13' failed on worker ").size() == 1);
}

TEST_CASE("a task can create a task pool of its own", "[integration][tasks]")
{
    expect_pass(run_program("task_pool_check", "2", {"nested"}, 60s), "nested");
}

TEST_CASE("task pool workers run where their CPU policies say", "[integration][tasks]")
{
    expect_pass(run_program("task_pool_check", "3", {"cpus"}, 60s), "cpus");
}

TEST_CASE("task pool workers over GPU policies see one GPU each", "[integration][tasks]")
{
    temp_dir tools;
    const auto env = fake_gpu_env(tools);
    std::vector<std::string> args = {"run", "--wlm", "local", "-N", "2", "-t", "tcp",
                                     program("task_pool_check"), "gpus"};
    expect_pass(run_dragonx(args, 60s, env), "gpus");
}
