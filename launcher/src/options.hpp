// options.hpp - the `dragonx` command line: what to do, parsed and checked.
//
//   dragonx run [options] PROG [ARGS...]    start a run with PROG as the head process
//   dragonx [options] PROG [ARGS...]        the same (DragonHPC-style shorthand)
//   dragonx cleanup [--dry-run] [--this-node-only]
//                                           remove what crashed runs left on the nodes of the
//                                           allocation (Slurm, PBS), or on this node
//   dragonx config add|show|clear [...]     the user's settings: which libfabric, TCP or not
//   dragonx --version | -h | --help
//
// Notes:
// - Everything after PROG belongs to PROG, untouched, even arguments that look like options
//   ("dragonx run ./prog -N 3 --help" gives prog "-N 3 --help").
// - Never exits and never prints: --version, help and usage errors come back as an
//   early_exit holding the text and the exit code (0 for help/version, 2 for usage errors),
//   so main() decides and tests can check.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace dragonx::launcher {

enum class wlm_kind { automatic, local, slurm, pbs, ssh };
enum class label_mode { none, basic, verbose };

struct run_options {
    std::uint32_t nodes = 0;             // -N/--nodes; 0: all the allocation offers
    wlm_kind wlm = wlm_kind::automatic;  // --wlm local|slurm|pbs|ssh
    std::vector<std::string> hosts;      // --hostlist a,b / --hostfile F, in order, unique
    bool single_node = false;            // -s/--single-node
    label_mode label = label_mode::none; // --label none|basic|verbose
    std::string log_level = "warning";   // -l/--log-level: debug|info|warning|error|critical|none
    std::string transport;               // -t/--transport tcp|ofi|ofi:<provider>; "": automatic
    std::string program;                 // PROG, as given
    std::vector<std::string> args;       // ARGS
};

struct cleanup_options {
    bool dry_run = false;         // --dry-run: only print what would be removed
    bool this_node_only = false;  // --this-node-only: not on the allocation's other nodes
};

/// Print `out` on stdout and `err` on stderr, then exit with `code`.
struct early_exit {
    int code = 0;
    std::string out;
    std::string err;
};

/// `dragonx config`: add settings, show them, or clear them all (see config_command.hpp).
struct config_options {
    enum class action { show, add, clear };
    action what = action::show;
    std::string ofi_runtime_lib;  // add --ofi-runtime-lib DIR ("": not given)
    bool tcp_runtime = false;     // add --tcp-runtime
};

using command = std::variant<run_options, cleanup_options, early_exit, config_options>;

/// Parses argv (argv[0] is the program name).
[[nodiscard]] command parse_command_line(int argc, const char* const* argv);

[[nodiscard]] const char* to_string(wlm_kind w) noexcept;
[[nodiscard]] const char* to_string(label_mode l) noexcept;

}  // namespace dragonx::launcher
