// run_paths.hpp - where a run keeps its files on a node: the run directory, the daemons'
// Unix sockets, the launcher record; and how run ids are made.
//
//   /tmp/dragonx-<uid>/                 0700, owned by the user (checked, never trusted blindly)
//   /tmp/dragonx-<uid>/<run>/           0700, the run directory (one per run and host)
//   /tmp/dragonx-<uid>/<run>/node<i>.sock   the Unix socket of node i's daemon
//   /tmp/dragonx-<uid>/<run>/launcher   "<pid> <start time> <hostname>" of the launcher
//
// Notes:
// - DRAGONX_TMPDIR replaces /tmp (tests use it to keep runs apart).
// - Shared-memory objects of run R on node i are /dev/shm/dragonx-<R>-n<i>-*; see
//   node_shm_prefix(). A daemon removes its node's objects at teardown; `dragonx cleanup`
//   removes those of crashed runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dragonx::rt::detail {

/// A fresh run id: "r" and 12 random hex digits.
[[nodiscard]] std::string make_run_id();

/// /tmp/dragonx-<uid> (or $DRAGONX_TMPDIR/dragonx-<uid>): created 0700 if missing. Throws
/// dragonx::error(errc::invalid_argument) if it exists but is not a directory owned by this
/// user with mode 0700 (someone else could read or plant sockets there).
[[nodiscard]] std::filesystem::path user_directory();
/// user_directory()/<run>, without creating it.
[[nodiscard]] std::filesystem::path run_directory(const std::string& run);
/// Creates run_directory(run) with mode 0700 (no error if it exists and is ours).
std::filesystem::path create_run_directory(const std::string& run);
[[nodiscard]] std::filesystem::path node_socket_path(const std::string& run, std::uint32_t node);
/// Where node `node`'s transport agent accepts local processes (DRAGONX_AGENT).
[[nodiscard]] std::filesystem::path agent_socket_path(const std::string& run, std::uint32_t node);
[[nodiscard]] std::filesystem::path launcher_record_path(const std::string& run);

/// The name prefix (without the leading '/') of node `node`'s shm objects of run `run`:
/// "dragonx-<run>-n<node>-".
[[nodiscard]] std::string node_shm_prefix(const std::string& run, std::uint32_t node);
/// The prefix of all shm objects of run `run`: "dragonx-<run>-".
[[nodiscard]] std::string run_shm_prefix(const std::string& run);

/// Identifies a process across pid reuse: its pid and start time (field 22 of /proc/pid/stat).
struct process_identity {
    pid_t pid = 0;
    std::uint64_t start_time = 0;
    bool operator==(const process_identity&) const = default;
};
/// This identity of `pid`, or nullopt if no such process exists.
[[nodiscard]] std::optional<process_identity> identify_process(pid_t pid);
/// True if the process `id` names is still alive (same pid, same start time).
[[nodiscard]] bool is_alive(const process_identity& id);
/// True once the process `id` names no longer runs: gone, replaced, or a zombie its parent
/// has not reaped yet (a killed process's sockets close while it is still a zombie).
[[nodiscard]] bool has_exited(const process_identity& id);

/// The launcher record: which process launched the run, on which host.
struct launcher_record {
    process_identity launcher;
    std::string hostname;
};
void write_launcher_record(const std::string& run, const launcher_record& record);
/// The record of run `run`, or nullopt if it is missing or unreadable.
[[nodiscard]] std::optional<launcher_record> read_launcher_record(const std::string& run);

/// Removes every shm object whose name starts with `prefix` (see node_shm_prefix) and is
/// owned by this user; returns how many were removed. Never throws.
std::size_t remove_shm_objects(const std::string& prefix) noexcept;

/// This user's processes, other than the caller, whose environment holds DRAGONX_RUN=<run>:
/// the daemons and every managed process of the run on this host (and their children). Used
/// to make sure nothing of a run survives it. Never throws.
[[nodiscard]] std::vector<pid_t> find_run_processes(const std::string& run) noexcept;

/// This host's name (gethostname), "localhost" if it cannot be read.
[[nodiscard]] std::string host_name();

}  // namespace dragonx::rt::detail
