// process.hpp - dragonx::process_template and dragonx::process: start a program anywhere in
// the run, placed by policy, and follow it.
//
//   dragonx::process_template t{.exe = "./worker", .args = {"--id", "3"}};
//   t.where = p;                                    // a dragonx::policy (optional)
//   auto proc = dragonx::process::start(t);
//   if (auto code = proc.join(std::chrono::seconds(10))) { ... } else { proc.terminate(); }
//
// Notes:
// - Runs through the node's daemon to global services: placement (policy ⊕ global policy,
//   spec/runtime.md §5.3), then the chosen node's daemon starts it with the CPU affinity and
//   GPU variable of its layout, the template's cwd and env on top of the node's environment,
//   and DRAGONX_* variables so it can use the API itself.
// - A relative exe with a '/' ("./worker") is resolved against the template's cwd, and an
//   empty cwd is the creating process's working directory, both when start() is called.
// - start() returns once the process runs (or throws: errc::not_found / invalid_argument for
//   a program that cannot run, errc::not_found for a policy naming no node, errc::peer_lost
//   for a lost node).
// - Exit codes: a process killed by signal N reports 128+N (and signal() == N).
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <dragonx/common/deadline.hpp>
#include <dragonx/policy/policy.hpp>
#include <dragonx/runtime/messages.hpp>
#include <dragonx/runtime/runtime.hpp>

namespace dragonx {

/// Where a stream of a managed process goes.
struct stdio {
    static rt::stdio_spec forward() { return {rt::stdio_target::forward, {}}; }  // to dragonx
    static rt::stdio_spec null() { return {rt::stdio_target::null, {}}; }
    static rt::stdio_spec file(std::string path)
    {
        return {rt::stdio_target::file, std::move(path)};
    }
    /// Kept for whoever holds the process to read (process::read), from any node.
    static rt::stdio_spec pipe() { return {rt::stdio_target::pipe, {}}; }
};

struct process_template {
    std::string exe;                         // a path, or a name looked up in PATH
    std::vector<std::string> args;           // argv[1...]
    std::string cwd;                         // empty: the creating process's directory
    std::map<std::string, std::string> env;  // on top of the node's environment
    std::optional<policy> where;             // placement; unset: the global policy
    rt::stdio_spec out = stdio::forward();
    rt::stdio_spec err = stdio::forward();

    /// A copy with `p` as its policy.
    [[nodiscard]] process_template with_policy(const policy& p) const
    {
        auto copy = *this;
        copy.where = p;
        return copy;
    }
    /// The wire form, with exe and cwd resolved as the Notes say.
    [[nodiscard]] rt::process_spec to_spec() const;
};

class process {
public:
    /// Starts a process from `t` (see Notes).
    [[nodiscard]] static process start(const process_template& t);
    /// A handle on an existing process of the run. Throws errc::not_found.
    [[nodiscard]] static process attach(puid_t puid);

    [[nodiscard]] puid_t puid() const noexcept { return puid_; }
    [[nodiscard]] std::uint32_t node() const noexcept { return node_; }

    /// Waits up to `limit` for the process to exit; its exit code, or nullopt if it still
    /// runs at the limit.
    std::optional<int> join(timeout limit = forever);
    /// Sends `sig` to the process (and its process group). No-op once it has exited.
    void kill(int sig = SIGKILL);
    void terminate() { kill(SIGTERM); }
    [[nodiscard]] bool alive();
    /// The exit code once it has exited (128+N for signal N), else nullopt.
    [[nodiscard]] std::optional<int> exit_code();
    /// The signal that killed it (0 if none or still running).
    [[nodiscard]] int signal();

    /// Output of a stream started as stdio::pipe(): what it wrote since the last read,
    /// waiting up to `limit` for some; std::nullopt once the process has exited and all was
    /// read (output its own children write after it exited goes to the launcher). Throws
    /// errc::timeout when nothing came in time. Read only from one place per stream.
    [[nodiscard]] std::optional<std::string> read(rt::output_stream stream = rt::output_stream::out,
                                                  timeout limit = forever);

private:
    process(puid_t puid, std::uint32_t node) : puid_(puid), node_(node) {}
    rt::process_info query();
    puid_t puid_ = 0;
    std::uint32_t node_ = 0;
};

}  // namespace dragonx
