// wlm.cpp - choosing the workload manager, and the parts its back ends share.
#include "wlm.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>

namespace dragonx::launcher {

namespace {

bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/// The words of `text`, split at white space.
std::vector<std::string> words_of(std::string_view text)
{
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_space(text[i])) {
            ++i;
        }
        const std::size_t start = i;
        while (i < text.size() && !is_space(text[i])) {
            ++i;
        }
        if (i > start) {
            words.emplace_back(text.substr(start, i - start));
        }
    }
    return words;
}

bool is_on_path(const std::string& program)
{
    const char* path = std::getenv("PATH");
    if (path == nullptr) {
        return false;
    }
    std::string_view rest = path;
    for (;;) {
        const auto colon = rest.find(':');
        const std::string_view dir = rest.substr(0, colon);
        const auto candidate =
            std::filesystem::path(dir.empty() ? std::string_view(".") : dir) / program;
        std::error_code ec;
        if (std::filesystem::is_regular_file(candidate, ec) &&
            ::access(candidate.c_str(), X_OK) == 0) {
            return true;
        }
        if (colon == std::string_view::npos) {
            return false;
        }
        rest.remove_prefix(colon + 1);
    }
}

} // namespace

host_environment host_environment::current()
{
    return {
        .variable = [](const std::string& name) -> std::optional<std::string> {
            const char* value = std::getenv(name.c_str());
            return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
        },
        .on_path = is_on_path,
    };
}

wlm_kind choose_wlm(const run_options& options, const host_environment& env)
{
    if (options.single_node) {
        return wlm_kind::local;
    }
    if (options.wlm != wlm_kind::automatic) {
        return options.wlm;
    }
    if (!options.hosts.empty()) {
        return wlm_kind::ssh;  // hosts named on the command line are reached by ssh
    }
    if (env.get("SLURM_JOB_ID") && env.on_path("srun")) {
        return wlm_kind::slurm;
    }
    if (env.get("PBS_JOBID") && env.get("PBS_NODEFILE")) {
        return wlm_kind::pbs;
    }
    return wlm_kind::local;
}

std::unique_ptr<workload_manager> make_workload_manager(const run_options& options,
                                                        const host_environment& env)
{
    switch (choose_wlm(options, env)) {
    case wlm_kind::slurm:
        return make_slurm_wlm(options, env);
    case wlm_kind::pbs:
        return make_pbs_wlm(options, env);
    case wlm_kind::ssh:
        return make_ssh_wlm(options, env);
    case wlm_kind::automatic:
    case wlm_kind::local:
        break;
    }
    return make_local_wlm(options);
}

std::vector<std::string> select_nodes(const std::vector<std::string>& offered,
                                      const std::vector<std::string>& wanted,
                                      std::uint32_t count, const std::string& allocation)
{
    if (offered.empty()) {
        throw_error(errc::not_found, allocation + " names no node");
    }
    std::vector<std::string> nodes;
    if (wanted.empty()) {
        nodes = offered;
    } else {
        for (const auto& host : wanted) {
            if (std::find(offered.begin(), offered.end(), host) == offered.end()) {
                throw_error(errc::invalid_argument,
                            fmt::format("host '{}' is not a node of {} ({})", host, allocation,
                                        join(offered, ", ")));
            }
        }
        for (const auto& node : offered) {
            if (std::find(wanted.begin(), wanted.end(), node) != wanted.end()) {
                nodes.push_back(node);
            }
        }
    }
    if (count > nodes.size()) {
        throw_error(errc::invalid_argument,
                    fmt::format("-N {} asks for {} nodes, but {} has only {} ({})", count, count,
                                allocation, nodes.size(), join(nodes, ", ")));
    }
    if (count > 0) {
        nodes.resize(count);
    }
    return nodes;
}

std::vector<std::string> unique_hosts(std::string_view text)
{
    std::vector<std::string> hosts;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto end = std::min(text.find('\n', start), text.size());
        std::string_view line = text.substr(start, end - start);
        if (const auto hash = line.find('#'); hash != std::string_view::npos) {
            line = line.substr(0, hash);
        }
        const auto words = words_of(line);
        if (!words.empty() &&
            std::find(hosts.begin(), hosts.end(), words.front()) == hosts.end()) {
            hosts.push_back(words.front());
        }
        start = end + 1;
    }
    return hosts;
}

std::vector<std::string> expand_launch_template(std::string_view text,
                                                std::span<const std::string> nodes)
{
    std::vector<std::string> words = words_of(text);
    if (words.empty()) {
        throw_error(errc::invalid_argument, "the launch command template is empty");
    }
    const std::string nnodes = std::to_string(nodes.size());
    const std::string nodelist = join(nodes, ",");
    for (auto& word : words) {
        std::string expanded;
        std::size_t i = 0;
        while (i < word.size()) {
            const auto open = word.find('{', i);
            if (open == std::string::npos) {
                expanded.append(word, i);
                break;
            }
            expanded.append(word, i, open - i);
            const auto close = word.find('}', open);
            const std::string name = close == std::string::npos
                                         ? word.substr(open)
                                         : word.substr(open, close - open + 1);
            if (name == "{nnodes}") {
                expanded += nnodes;
            } else if (name == "{nodelist}") {
                expanded += nodelist;
            } else {
                throw_error(errc::invalid_argument,
                            fmt::format("the launch command template '{}' uses {}, which is not "
                                        "a placeholder (known: {{nnodes}}, {{nodelist}})",
                                        text, name));
            }
            i = open + name.size();
        }
        word = std::move(expanded);
    }
    return words;
}

std::string shell_quote(std::string_view word)
{
    std::string quoted = "'";
    for (const char c : word) {
        if (c == '\'') {
            quoted += "'\\''";
        } else {
            quoted += c;
        }
    }
    quoted += '\'';
    return quoted;
}

std::string join(std::span<const std::string> words, std::string_view separator)
{
    std::string joined;
    for (const auto& w : words) {
        if (!joined.empty()) {
            joined += separator;
        }
        joined += w;
    }
    return joined;
}

spawn_request one_command_for_all_daemons(std::vector<std::string> prefix,
                                          const daemon_launch& launch, std::size_t nnodes,
                                          const std::vector<std::string>& identity,
                                          std::string label)
{
    const auto daemon = daemon_arguments(launch, nnodes);
    prefix.insert(prefix.end(), daemon.begin(), daemon.end());
    prefix.insert(prefix.end(), identity.begin(), identity.end());
    prefix.insert(prefix.end(), {"--address", "0.0.0.0"});
    return {.label = std::move(label),
            .argv = std::move(prefix),
            .env = environment_with({"DRAGONX_RUN=" + launch.run,
                                     "DRAGONX_RUN_SECRET=" + launch.secret_hex},
                                    {"DRAGONX_NODE"}),
            .terminate_first = true};
}

std::vector<std::string> daemon_arguments(const daemon_launch& launch, std::size_t nnodes)
{
    return {
        launch.runtime_exe, "--run",      launch.run,
        "--nnodes",         std::to_string(nnodes),
        "--launcher",       launch.launcher_address,
        "--log-level",      launch.log_level,
        "--transport",      launch.transport,
    };
}

} // namespace dragonx::launcher
