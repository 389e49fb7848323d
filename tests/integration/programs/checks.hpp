// checks.hpp - what the integration helper programs share: failing with a FAIL line the test
// looks for, and starting copies of the program itself on a chosen node.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace dragonx::integration {

/// Prints "FAIL <why>" and exits with 1.
[[noreturn]] inline void fail(const std::string& why)
{
    std::cout << "FAIL " << why << std::endl;
    std::exit(1);
}

inline void check(bool ok, const std::string& what)
{
    if (!ok) {
        fail(what);
    }
}

inline std::string program_path()
{
    return std::filesystem::read_symlink("/proc/self/exe").string();
}

/// This program again, with `args`, as a managed process on node `node`.
inline process start_on(std::uint32_t node, std::vector<std::string> args)
{
    policy where;
    where.placement_kind = placement::host_id;
    where.host_id = node;
    return process::start({.exe = program_path(), .args = std::move(args), .where = where});
}

}  // namespace dragonx::integration
