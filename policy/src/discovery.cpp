// discovery.cpp - CPUs (sched_getaffinity), GPUs (vendor tools + visibility variable), memory.
#include <dragonx/policy/discovery.hpp>

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

#include "subprocess.hpp"

namespace dragonx {

namespace {

struct cpu_set_deleter {
    void operator()(cpu_set_t* set) const noexcept { CPU_FREE(set); }
};

bool starts_with(std::string_view s, std::string_view prefix)
{
    return s.substr(0, prefix.size()) == prefix;
}

// Calls f(line) for every line of `text`, without its '\n' (and '\r').
template <class F>
void for_each_line(std::string_view text, F&& f)
{
    while (!text.empty()) {
        const std::size_t end = std::min(text.find('\n'), text.size());
        std::string_view line = text.substr(0, end);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        f(line);
        text.remove_prefix(std::min(end + 1, text.size()));
    }
}

std::vector<int> first_ids(std::size_t n)
{
    std::vector<int> ids(n);
    for (std::size_t i = 0; i < n; ++i) {
        ids[i] = static_cast<int>(i);
    }
    return ids;
}

// GPU count from each tool's output (0 when the tool says nothing we recognise).
std::size_t count_nvidia(std::string_view out)
{
    std::size_t n = 0;
    for_each_line(out, [&](std::string_view line) { n += starts_with(line, "GPU ") ? 1 : 0; });
    return n;
}

std::size_t count_amd(std::string_view out)
{
    std::size_t n = 0;
    for_each_line(out, [&](std::string_view line) { n += starts_with(line, "card") ? 1 : 0; });
    return n;
}

std::size_t count_intel(std::string_view out)
{
    std::size_t n = 0;
    for_each_line(out, [&](std::string_view line) {
        n += line.find("Device Name") != std::string_view::npos ? 1 : 0;
    });
    return n;
}

struct probe {
    gpu_vendor vendor;
    const char* tool;
    std::vector<std::string> args;
    std::size_t (*count)(std::string_view);
};

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

std::vector<int> apply_visibility_mask(const std::vector<int>& detected, std::string_view mask)
{
    std::vector<int> out;
    std::size_t begin = 0;
    while (begin <= mask.size()) {
        std::size_t end = mask.find(',', begin);
        if (end == std::string_view::npos) {
            end = mask.size();
        }
        const std::string_view entry = trim(mask.substr(begin, end - begin));
        begin = end + 1;
        int id = -1;
        const auto [ptr, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), id);
        const bool plain = !entry.empty() && ec == std::errc() &&
                           ptr == entry.data() + entry.size() && id >= 0;
        if (plain && std::find(detected.begin(), detected.end(), id) != detected.end() &&
            std::find(out.begin(), out.end(), id) == out.end()) {
            out.push_back(id);
        }
    }
    return out;
}

gpu_inventory discover_gpus(const discovery_options& options)
{
    const probe probes[] = {
        {gpu_vendor::nvidia, "nvidia-smi", {"-L"}, count_nvidia},
        {gpu_vendor::amd, "rocm-smi", {"--showuniqueid", "--csv"}, count_amd},
        {gpu_vendor::intel, "xpu-smi", {"discovery"}, count_intel},
    };
    for (const auto& p : probes) {
        const auto out = policy_detail::run_tool(p.tool, p.args, options.tool_timeout);
        if (!out) {
            continue;
        }
        const std::size_t n = p.count(*out);
        if (n == 0) {
            continue;
        }
        gpu_inventory inv{p.vendor, first_ids(n)};
        const std::string variable(gpu_visibility_variable(p.vendor));
        if (const char* mask = std::getenv(variable.c_str()); mask != nullptr) {
            inv.gpus = apply_visibility_mask(inv.gpus, mask);
            log::get("policy").debug("{} GPUs found by {}, {} visible through {}='{}'", n,
                                     p.tool, inv.gpus.size(), variable, mask);
        }
        return inv;
    }
    return {};
}

std::vector<int> discover_cpus()
{
    // Start with the static set size and grow: sched_getaffinity fails with EINVAL when the
    // kernel's CPU mask is larger than the buffer.
    for (int count = CPU_SETSIZE;; count *= 2) {
        const std::unique_ptr<cpu_set_t, cpu_set_deleter> set(CPU_ALLOC(count));
        if (!set) {
            throw std::bad_alloc();
        }
        const std::size_t size = CPU_ALLOC_SIZE(count);
        CPU_ZERO_S(size, set.get());
        if (::sched_getaffinity(0, size, set.get()) != 0) {
            if (errno == EINVAL && count < (1 << 20)) {
                continue;
            }
            throw_system_error_on(true, "sched_getaffinity");
        }
        std::vector<int> cpus;
        for (int cpu = 0; cpu < count; ++cpu) {
            if (CPU_ISSET_S(static_cast<std::size_t>(cpu), size, set.get())) {
                cpus.push_back(cpu);
            }
        }
        return cpus;
    }
}

std::uint64_t physical_memory_bytes() noexcept
{
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page_size = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page_size <= 0) {
        return 0;
    }
    return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
}

node_resources discover_local_node(std::uint32_t index, std::string hostname,
                                   const discovery_options& options)
{
    node_resources node;
    node.index = index;
    node.hostname = std::move(hostname);
    node.cpus = discover_cpus();
    auto gpus = discover_gpus(options);
    node.gpus = std::move(gpus.gpus);
    node.vendor = gpus.vendor;
    node.memory_bytes = physical_memory_bytes();
    log::get("policy").debug("node {} ({}): {} cpus, {} {} gpus, {} bytes of memory", index,
                             node.hostname, node.cpus.size(), node.gpus.size(),
                             to_string(node.vendor), node.memory_bytes);
    return node;
}

}  // namespace dragonx
