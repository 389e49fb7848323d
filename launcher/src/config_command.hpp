// config_command.hpp - `dragonx config`: the user's settings, as DragonHPC's dragon-config.
//
//   dragonx config add --ofi-runtime-lib DIR   load DIR/libfabric.so.1 instead of the system's
//   dragonx config add --tcp-runtime           prefer TCP between nodes (no fallback notice)
//   dragonx config show                        print the settings and the file they are in
//   dragonx config clear | --clean             remove the file
//
// Notes:
// - The settings live in the file of runtime/src/config_file.hpp ($DRAGONX_CONFIG, else
//   ${XDG_CONFIG_HOME:-$HOME/.config}/dragonx/config); daemons read it when they choose a
//   transport.
// - `add --ofi-runtime-lib` refuses a directory that holds no libfabric.so*, and records it as
//   an absolute path (a run's daemons do not share the caller's working directory).
// - Results go to `out`, errors to `err` as one "dragonx: config: ..." line each.
#pragma once

#include <ostream>

#include "options.hpp"

namespace dragonx::launcher {

/// Does what `options` says; returns the exit code (0, or 1 with a message on `err`).
int run_config(const config_options& options, std::ostream& out, std::ostream& err);

}  // namespace dragonx::launcher
