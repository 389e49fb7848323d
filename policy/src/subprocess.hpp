// subprocess.hpp - run a probe tool (nvidia-smi, ...) found on PATH and capture its stdout.
//
// Notes:
// - No shell: the tool is looked up in PATH (empty PATH entries are skipped; /usr/bin:/bin
//   when PATH is unset) and started with posix_spawn, stdin and stderr on /dev/null, in a
//   process group of its own with default signal handling and an empty signal mask.
// - Never blocks past `limit`: at the limit the tool's process group is SIGKILLed and reaped.
// - Not finding the tool, failing to start it, a non-zero exit, a signal or the time limit all
//   read as "no answer" (std::nullopt), never an exception: probing is best effort.
// - Reads the environment (PATH): do not call while another thread changes it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace dragonx::policy_detail {

/// The absolute path of an executable `name` in PATH, or std::nullopt.
[[nodiscard]] std::optional<std::string> find_in_path(const std::string& name);

/// The stdout (at most 1 MiB) of `name args...` if it exits 0 within `limit`.
[[nodiscard]] std::optional<std::string> run_tool(const std::string& name,
                                                  const std::vector<std::string>& args,
                                                  std::chrono::milliseconds limit);

}  // namespace dragonx::policy_detail
