// log.cpp - named loggers on spdlog's registry.
#include <dragonx/common/log.hpp>

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace dragonx::log {

spdlog::logger& get(const std::string& component)
{
    const std::string name = "dragonx." + component;
    if (auto existing = spdlog::get(name)) {
        return *existing;
    }
    // Two threads may race to create the logger; spdlog's registry rejects the second
    // registration, so serialise creation and look again under the lock.
    static std::mutex creation;
    std::lock_guard guard(creation);
    if (auto existing = spdlog::get(name)) {
        return *existing;
    }
    auto created = spdlog::stderr_color_mt(name);
    created->set_level(spdlog::get_level());  // the level main() chose, if any
    return *created;
}

}  // namespace dragonx::log
