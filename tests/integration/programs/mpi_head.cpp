// mpi_head.cpp - integration helper: a head program that runs mpi_hello (examples/08_mpi,
// built with MPICH's mpicc, found beside this program) as a pmi1 process group and reports
// what happened, one line of space-separated fields, for mpi_test.cpp to check.
//
//   mpi_head hello N               N ranks that all succeed
//   mpi_head exit_code N R C       rank R exits with C after MPI_Finalize
//   mpi_head exit_early N R C      rank R exits with C before MPI_Init (the others wait for it)
//   mpi_head abort N R C           rank R calls MPI_Abort(C) (the others wait in MPI_Allreduce)
//   mpi_head restart               a pmi1 group that asks for restarts (refused)
//
// Prints "run=<id>", then
//   "group mode=<m> join=<ok|process_failed|timeout|error> joined_ms=<t> codes=<c,c,..>
//    failed_puid=<p> named=<0|1>"
// where codes are the members' exit codes (sorted), failed_puid the puid of the member that
// exited with C, named whether join()'s message names that puid; then "message: <what join
// threw>" if it threw. Exit code 0 unless the program itself failed.
//
// Notes:
// - join() has a limit of 60 s: a hung job fails the test, never hangs it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;

std::string hello_path(const char* argv0)
{
    return (std::filesystem::absolute(argv0).parent_path() / "mpi_hello").string();
}

int run_group(const std::string& mode, const std::string& hello, std::uint32_t ranks,
              std::vector<std::string> args, int failing_code)
{
    dragonx::process_group group({.pmi = dragonx::pmi_mode::pmi1});
    group.add(ranks, {.exe = hello, .args = std::move(args)});
    std::string outcome = "ok";
    std::string message;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        group.start();
        group.join(60s);
    } catch (const dragonx::error& e) {
        message = e.what();
        outcome = e.is(dragonx::errc::process_failed) ? "process_failed"
                  : e.is(dragonx::errc::timeout)      ? "timeout"
                                                      : "error";
    }
    const auto joined_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                              t0)
            .count();
    std::vector<int> codes;
    dragonx::puid_t failed = 0;
    for (const auto& [puid, code] : group.exit_status()) {
        codes.push_back(code);
        if (failing_code != 0 && code == failing_code) {
            failed = puid;
        }
    }
    std::sort(codes.begin(), codes.end());
    std::string code_list;
    for (const auto c : codes) {
        code_list += (code_list.empty() ? "" : ",") + std::to_string(c);
    }
    const bool named = failed != 0 && message.find(std::to_string(failed)) != std::string::npos;
    group.close(1s);
    std::cout << "group mode=" << mode << " join=" << outcome << " joined_ms=" << joined_ms
              << " codes=" << code_list << " failed_puid=" << failed
              << " named=" << (named ? 1 : 0) << std::endl;
    if (!message.empty()) {
        std::cout << "message: " << message << std::endl;
    }
    return 0;
}

int restart_refused(const std::string& hello)
{
    dragonx::process_group group({.restart = true, .pmi = dragonx::pmi_mode::pmi1});
    group.add(2, {.exe = hello});
    std::string outcome = "ok";
    try {
        group.start();
    } catch (const dragonx::error& e) {
        outcome = e.is(dragonx::errc::invalid_argument) ? "invalid_argument" : "other";
        std::cout << "message: " << e.what() << std::endl;
    }
    std::cout << "group mode=restart start=" << outcome << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    const std::vector<std::string> a(argv + 1, argv + argc);
    std::cout << "run=" << dragonx::runtime::current().run_id() << std::endl;
    const auto hello = hello_path(argv[0]);
    if (a.size() == 2 && a[0] == "hello") {
        return run_group(a[0], hello, static_cast<std::uint32_t>(std::stoul(a[1])), {}, 0);
    }
    if (a.size() == 4 && (a[0] == "exit_code" || a[0] == "exit_early" || a[0] == "abort")) {
        const std::string flag = a[0] == "exit_code"    ? "--exit-code"
                                 : a[0] == "exit_early" ? "--exit-early"
                                                        : "--abort";
        return run_group(a[0], hello, static_cast<std::uint32_t>(std::stoul(a[1])),
                         {flag, a[2], a[3]}, std::stoi(a[3]));
    }
    if (a.size() == 1 && a[0] == "restart") {
        return restart_refused(hello);
    }
    std::cerr << "usage: mpi_head hello N | exit_code|exit_early|abort N R C | restart\n";
    return 2;
}
