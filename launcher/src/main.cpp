// main.cpp - the `dragonx` command: parse the command line and do what it says.
#include <csignal>
#include <iostream>
#include <variant>

#include <spdlog/spdlog.h>

#include "cleanup.hpp"
#include "config_command.hpp"
#include "options.hpp"
#include "run_session.hpp"

namespace {

void configure_logging(const std::string& level)
{
    spdlog::set_pattern("dragonx: %l: %v");
    spdlog::set_level(spdlog::level::from_str(level == "warning" ? "warn"
                                              : level == "none"  ? "off"
                                                                 : level));
}

} // namespace

int main(int argc, char** argv)
{
    std::signal(SIGPIPE, SIG_IGN);
    const auto command = dragonx::launcher::parse_command_line(argc, argv);
    return std::visit(
        [](const auto& c) -> int {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, dragonx::launcher::early_exit>) {
                std::cout << c.out << std::flush;
                std::cerr << c.err << std::flush;
                return c.code;
            } else if constexpr (std::is_same_v<T, dragonx::launcher::cleanup_options>) {
                configure_logging("warning");
                return dragonx::launcher::run_cleanup_everywhere(c, std::cout);
            } else if constexpr (std::is_same_v<T, dragonx::launcher::config_options>) {
                configure_logging("warning");
                return dragonx::launcher::run_config(c, std::cout, std::cerr);
            } else {
                configure_logging(c.log_level);
                return dragonx::launcher::run_session(c);
            }
        },
        command);
}
