// catch_main.cpp - the Catch2 main shared by every test executable, with a leak check.
//
// Notes:
// - The tests run as a dragonx run of their own: DRAGONX_RUN=t<pid>, DRAGONX_NODE=0, inherited
//   by forked children. Every pool a test (or its children) creates is therefore named
//   /dev/shm/dragonx-t<pid>-*.
// - After the run, any such object left behind is reported, removed, and fails the run: no
//   test may leave anything in /dev/shm.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

int main(int argc, char* argv[])
{
    const std::string run = "t" + std::to_string(::getpid());
    ::setenv("DRAGONX_RUN", run.c_str(), 1);
    ::setenv("DRAGONX_NODE", "0", 1);

    const int failed = Catch::Session().run(argc, argv);

    const std::string prefix = "dragonx-" + run + "-";
    int leftovers = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) == 0) {
            std::cerr << "leak: the tests left /dev/shm/" << name << " behind (removed now)\n";
            ::shm_unlink(("/" + name).c_str());
            ++leftovers;
        }
    }
    return failed != 0 ? failed : (leftovers != 0 ? 1 : 0);
}
