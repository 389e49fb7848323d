// log.hpp - named spdlog loggers, one per component.
//
// Notes:
// - Libraries call dragonx::log::get("pool") and log through it; they never set levels,
//   patterns or sinks. Only executables (launcher, tools, examples) configure spdlog.
// - A logger is created on first use with spdlog's default sink (stderr, colour) and the
//   global level, and lives in spdlog's registry: the one process-wide state we allow.
// - Thread-safe. Not for hot paths: log at lifecycle and error boundaries.
#pragma once

#include <string>

namespace spdlog {
class logger;
}

namespace dragonx::log {

/// The logger named `component` ("pool", "channels", ...), created on first use.
spdlog::logger& get(const std::string& component);

}  // namespace dragonx::log
