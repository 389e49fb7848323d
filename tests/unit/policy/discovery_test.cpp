// discovery_test.cpp - node discovery: CPUs and memory of this host, and GPUs found through
// fake vendor tools (shell scripts in a temporary directory put first on PATH).
//
// Notes:
// - Each test sets PATH and the three visibility variables itself and restores them, so the
//   host's real tools and settings (a GPU machine's nvidia-smi, CUDA_VISIBLE_DEVICES) do not
//   leak in. The temporary directory is removed at the end of each test.
#include <catch2/catch.hpp>

#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <dragonx/policy/discovery.hpp>

#include "support.hpp"

using dragonx::discovery_options;
using dragonx::gpu_inventory;
using dragonx::gpu_vendor;
using namespace std::chrono_literals;

namespace {

using dragonx::test::env_guard;
using dragonx::test::temp_dir;

// Writes an executable /bin/sh script `name` with `body` into `dir`.
void add_tool(const temp_dir& dir, const std::string& name, const std::string& body)
{
    const auto file = dir.path() / name;
    {
        std::ofstream out(file);
        out << "#!/bin/sh\n" << body << "\n";
    }
    REQUIRE(::chmod(file.c_str(), 0755) == 0);
}

// The test's environment: PATH is only `dir` (the fake scripts name /bin/sh and /bin/sleep
// in full) and no visibility variable is set.
struct probe_environment {
    explicit probe_environment(const temp_dir& dir)
        : path("PATH", dir.path().string()), cuda("CUDA_VISIBLE_DEVICES", std::nullopt),
          rocr("ROCR_VISIBLE_DEVICES", std::nullopt), ze("ZE_AFFINITY_MASK", std::nullopt)
    {
    }
    env_guard path;
    env_guard cuda;
    env_guard rocr;
    env_guard ze;
};

const char* const nvidia_four = "echo 'GPU 0: NVIDIA H200 (UUID: GPU-0000)'\n"
                                "echo 'GPU 1: NVIDIA H200 (UUID: GPU-1111)'\n"
                                "echo '  MIG 1g.18gb     Device  0: (UUID: MIG-aaaa)'\n"
                                "echo 'GPU 2: NVIDIA H200 (UUID: GPU-2222)'\n"
                                "echo 'GPU 3: NVIDIA H200 (UUID: GPU-3333)'\n"
                                "echo 'some warning' >&2";

const char* const rocm_two = "echo 'device,Unique ID'\n"
                             "echo 'card0,0x18f68e602b8a790f'\n"
                             "echo 'card1,0x95a1ca7691e7c391'";

const char* const xpu_two = "echo '+-----------+---------------------------------------------+'\n"
                            "echo '| Device ID | Device Information                          |'\n"
                            "echo '| 0         | Device Name: Intel(R) Data Center GPU Max   |'\n"
                            "echo '|           | Vendor Name: Intel(R) Corporation           |'\n"
                            "echo '| 1         | Device Name: Intel(R) Data Center GPU Max   |'\n"
                            "echo '+-----------+---------------------------------------------+'";

bool process_gone(pid_t pid)
{
    // Gone, or a zombie waiting for init: either way it no longer runs.
    for (int i = 0; i < 200; ++i) {
        if (::kill(pid, 0) != 0 && errno == ESRCH) {
            return true;
        }
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        if (std::getline(stat, line)) {
            const auto close = line.rfind(')');
            if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z') {
                return true;
            }
        }
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

TEST_CASE("nvidia-smi -L: one GPU per 'GPU ' line, restricted by CUDA_VISIBLE_DEVICES",
          "[policy][discovery]")
{
    temp_dir dir;
    add_tool(dir, "nvidia-smi", std::string("[ \"$1\" = -L ] || exit 3\n") + nvidia_four);
    probe_environment env(dir);

    CHECK(dragonx::discover_gpus() == gpu_inventory{gpu_vendor::nvidia, {0, 1, 2, 3}});

    env.cuda.set("1,3");
    CHECK(dragonx::discover_gpus() == gpu_inventory{gpu_vendor::nvidia, {1, 3}});
    env.cuda.set("");
    CHECK(dragonx::discover_gpus().gpus.empty());
    env.cuda.set("3, 0,7");
    CHECK(dragonx::discover_gpus().gpus == std::vector<int>{3, 0});

    // Another vendor's variable does not restrict nvidia GPUs.
    env.cuda.set(std::nullopt);
    env.rocr.set("0");
    CHECK(dragonx::discover_gpus().gpus.size() == 4);
}

TEST_CASE("no tool on PATH: no GPUs, vendor none", "[policy][discovery]")
{
    temp_dir dir;
    probe_environment env(dir);
    const auto start = std::chrono::steady_clock::now();
    CHECK(dragonx::discover_gpus() == gpu_inventory{});
    CHECK(std::chrono::steady_clock::now() - start < 2s);

    const auto node = dragonx::discover_local_node(3, "hostA");
    CHECK(node.gpus.empty());
    CHECK(node.vendor == gpu_vendor::none);

    env.path.set(std::nullopt);  // PATH unset: the default /usr/bin:/bin, no crash
    (void)dragonx::discover_gpus();
}

TEST_CASE("rocm-smi and xpu-smi are asked when nvidia-smi is absent", "[policy][discovery]")
{
    temp_dir dir;
    probe_environment env(dir);

    SECTION("amd")
    {
        add_tool(dir, "rocm-smi", rocm_two);
        CHECK(dragonx::discover_gpus() == gpu_inventory{gpu_vendor::amd, {0, 1}});
        env.rocr.set("1");
        CHECK(dragonx::discover_gpus() == gpu_inventory{gpu_vendor::amd, {1}});
    }
    SECTION("intel")
    {
        add_tool(dir, "xpu-smi", xpu_two);
        CHECK(dragonx::discover_gpus() == gpu_inventory{gpu_vendor::intel, {0, 1}});
        env.ze.set("0");
        CHECK(dragonx::discover_gpus() == gpu_inventory{gpu_vendor::intel, {0}});
    }
    SECTION("nvidia first when several answer")
    {
        add_tool(dir, "rocm-smi", rocm_two);
        add_tool(dir, "nvidia-smi", nvidia_four);
        CHECK(dragonx::discover_gpus().vendor == gpu_vendor::nvidia);
    }
}

TEST_CASE("a failing or empty tool means no GPUs of that vendor", "[policy][discovery]")
{
    temp_dir dir;
    probe_environment env(dir);

    SECTION("non-zero exit, even with GPU lines")
    {
        add_tool(dir, "nvidia-smi", std::string(nvidia_four) + "\nexit 9");
        CHECK(dragonx::discover_gpus() == gpu_inventory{});
    }
    SECTION("no GPU lines: the next vendor is asked")
    {
        add_tool(dir, "nvidia-smi", "echo 'No devices were found'");
        add_tool(dir, "rocm-smi", rocm_two);
        CHECK(dragonx::discover_gpus().vendor == gpu_vendor::amd);
    }
    SECTION("not executable")
    {
        add_tool(dir, "nvidia-smi", nvidia_four);
        REQUIRE(::chmod((dir.path() / "nvidia-smi").c_str(), 0644) == 0);
        CHECK(dragonx::discover_gpus() == gpu_inventory{});
    }
}

TEST_CASE("a hung tool is killed at the timeout, with what it started", "[policy][discovery]")
{
    temp_dir dir;
    probe_environment env(dir);
    const std::string pids = (dir.path() / "pids").string();
    // A grandchild in the background, then the tool itself hangs with stdout open.
    add_tool(dir, "nvidia-smi", "/bin/sleep 30 >/dev/null &\n"
                               "echo $! > " + pids + "\n"
                               "echo $$ >> " + pids + "\n"
                               "echo 'GPU 0: x'\n"
                               "exec /bin/sleep 30");
    add_tool(dir, "rocm-smi", rocm_two);

    const auto start = std::chrono::steady_clock::now();
    const auto found = dragonx::discover_gpus(discovery_options{.tool_timeout = 300ms});
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < 3s);
    CHECK(found == gpu_inventory{gpu_vendor::amd, {0, 1}});  // nvidia gave no answer in time

    std::ifstream in(pids);
    pid_t pid = 0;
    int n = 0;
    while (in >> pid) {
        ++n;
        INFO("pid " << pid);
        CHECK(process_gone(pid));
    }
    CHECK(n == 2);
}

TEST_CASE("discover_local_node: this process's CPUs, memory, and the given identity",
          "[policy][discovery]")
{
    temp_dir dir;
    add_tool(dir, "nvidia-smi", nvidia_four);
    probe_environment env(dir);
    env.cuda.set("2");

    const auto node = dragonx::discover_local_node(7, "nid00007");
    CHECK(node.index == 7U);
    CHECK(node.hostname == "nid00007");
    CHECK(node.vendor == gpu_vendor::nvidia);
    CHECK(node.gpus == std::vector<int>{2});
    CHECK(node.memory_bytes > 0);

    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(::sched_getaffinity(0, sizeof(set), &set) == 0);
    REQUIRE_FALSE(node.cpus.empty());
    CHECK(static_cast<int>(node.cpus.size()) == CPU_COUNT(&set));
    CHECK(std::is_sorted(node.cpus.begin(), node.cpus.end()));
    for (int cpu : node.cpus) {
        CHECK(CPU_ISSET(cpu, &set));
    }
    CHECK(dragonx::discover_cpus() == node.cpus);
}

TEST_CASE("apply_visibility_mask keeps listed, detected ids in the mask's order",
          "[policy][discovery]")
{
    const std::vector<int> four{0, 1, 2, 3};
    using dragonx::apply_visibility_mask;
    CHECK(apply_visibility_mask(four, "1,3") == std::vector<int>{1, 3});
    CHECK(apply_visibility_mask(four, "3,1,3") == std::vector<int>{3, 1});
    CHECK(apply_visibility_mask(four, "").empty());
    CHECK(apply_visibility_mask(four, " 2 ,\t0") == std::vector<int>{2, 0});
    CHECK(apply_visibility_mask(four, "4,-1,1x,GPU-1234,0.1,,1") == std::vector<int>{1});
    CHECK(apply_visibility_mask({}, "0,1").empty());
}
