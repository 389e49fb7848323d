// identity.cpp - run identity from the environment.
#include <dragonx/common/identity.hpp>

#include <unistd.h>

#include <charconv>
#include <cstdlib>

#include <dragonx/common/error.hpp>

namespace dragonx {

bool is_valid_run_id(std::string_view run) noexcept
{
    if (run.empty() || run.size() > 24) {
        return false;
    }
    for (char c : run) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

run_identity run_identity::from_environment()
{
    run_identity id;
    if (const char* run = std::getenv("DRAGONX_RUN"); run != nullptr && *run != '\0') {
        if (!is_valid_run_id(run)) {
            throw_error(errc::invalid_argument,
                        std::string("DRAGONX_RUN='") + run + "' is not a valid run id");
        }
        id.run = run;
        id.in_run = true;
    } else {
        id.run = "solo" + std::to_string(::getpid());
    }
    if (const char* node = std::getenv("DRAGONX_NODE"); node != nullptr && *node != '\0') {
        const std::string_view text(node);
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id.node);
        if (ec != std::errc{} || end != text.data() + text.size()) {
            throw_error(errc::invalid_argument,
                        std::string("DRAGONX_NODE='") + node + "' is not a node index");
        }
    }
    return id;
}

}  // namespace dragonx
