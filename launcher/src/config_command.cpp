// config_command.cpp - `dragonx config add|show|clear` over runtime/src/config_file.hpp.
#include "config_command.hpp"

#include <filesystem>
#include <string>
#include <system_error>

#include <dragonx/common/error.hpp>

#include "config_file.hpp"

namespace dragonx::launcher {
namespace {

namespace fs = std::filesystem;
using rt::detail::config_file;

/// DIR as an absolute path, checked to hold a libfabric shared library.
std::string libfabric_dir(const std::string& dir)
{
    std::error_code ec;
    const fs::path path = fs::absolute(dir, ec).lexically_normal();
    if (ec || !fs::is_directory(path, ec)) {
        throw error(errc::invalid_argument, "--ofi-runtime-lib: '" + dir + "' is not a directory");
    }
    for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.path().filename().string().rfind("libfabric.so", 0) == 0) {
            return path.string();
        }
    }
    if (ec) {
        throw error(ec, "--ofi-runtime-lib: cannot list '" + path.string() + "'");
    }
    throw error(errc::invalid_argument, "--ofi-runtime-lib: '" + path.string() +
                                            "' holds no libfabric.so* (give the directory "
                                            "of the libfabric shared library)");
}

void show(const config_file& config, std::ostream& out)
{
    out << "config file: " << config.path().string()
        << (fs::exists(config.path()) ? "" : " (none yet)") << '\n';
    if (config.settings().empty()) {
        out << "no settings: libfabric.so.1 from the system's library path; tcp only where "
               "libfabric has no provider\n";
        return;
    }
    for (const auto& [key, value] : config.settings()) {
        out << key << '=' << value << '\n';
    }
}

}  // namespace

int run_config(const config_options& options, std::ostream& out, std::ostream& err)
{
    try {
        switch (options.what) {
        case config_options::action::show:
            show(config_file::load_default(), out);
            return 0;
        case config_options::action::clear: {
            const fs::path path = config_file::default_path();
            out << (config_file::remove(path) ? "removed " : "nothing to remove: no ")
                << path.string() << '\n';
            return 0;
        }
        case config_options::action::add: {
            config_file config = config_file::load_default();
            if (!options.ofi_runtime_lib.empty()) {
                config.set(config_file::ofi_runtime_lib_key,
                           libfabric_dir(options.ofi_runtime_lib));
            }
            if (options.tcp_runtime) {
                config.set(config_file::tcp_runtime_key, "true");
            }
            config.save();
            show(config, out);
            return 0;
        }
        }
    } catch (const std::system_error& e) {
        err << "dragonx: config: " << e.what() << '\n';
        return 1;
    }
    return 1;
}

}  // namespace dragonx::launcher
