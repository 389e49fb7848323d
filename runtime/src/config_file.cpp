// config_file.cpp - reading and writing the key=value settings file of `dragonx config`.
#include "config_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
#include <system_error>

#include <dragonx/common/error.hpp>

namespace dragonx::rt::detail {
namespace {

std::string_view trim(std::string_view s)
{
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = s.find_last_not_of(" \t\r");
    return s.substr(first, last - first + 1);
}

const char* non_empty_env(const char* name)
{
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
}

[[noreturn]] void throw_io_error(int err, const std::string& what)
{
    throw error(std::error_code(err, std::system_category()), what);
}

}  // namespace

std::filesystem::path config_file::default_path()
{
    if (const char* explicit_path = non_empty_env("DRAGONX_CONFIG")) {
        return explicit_path;
    }
    if (const char* xdg = non_empty_env("XDG_CONFIG_HOME")) {
        return std::filesystem::path(xdg) / "dragonx" / "config";
    }
    if (const char* home = non_empty_env("HOME")) {
        return std::filesystem::path(home) / ".config" / "dragonx" / "config";
    }
    throw_error(errc::invalid_argument,
                "cannot tell where the dragonx configuration lives: none of DRAGONX_CONFIG, "
                "XDG_CONFIG_HOME and HOME is set");
}

config_file config_file::load(const std::filesystem::path& path)
{
    config_file config(path);
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT) {
            return config;
        }
        throw_io_error(errno, "cannot read the dragonx configuration " + path.string());
    }
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const std::string_view text = trim(line);
        if (text.empty() || text.front() == '#') {
            continue;
        }
        const auto equals = text.find('=');
        const std::string_view key =
            equals == std::string_view::npos ? std::string_view{} : trim(text.substr(0, equals));
        if (key.empty()) {
            throw_error(errc::invalid_argument, path.string() + ":" + std::to_string(number) +
                                                    ": '" + std::string(text) +
                                                    "' is not a key=value setting");
        }
        config.settings_[std::string(key)] = std::string(trim(text.substr(equals + 1)));
    }
    if (in.bad()) {
        throw_io_error(errno, "cannot read the dragonx configuration " + path.string());
    }
    return config;
}

std::optional<std::string> config_file::get(const std::string& key) const
{
    if (const auto it = settings_.find(key); it != settings_.end()) {
        return it->second;
    }
    return std::nullopt;
}

void config_file::set(const std::string& key, const std::string& value)
{
    if (key.empty() || key != trim(key) || key.find_first_of("=#\n") != std::string::npos ||
        key.front() == '#') {
        throw_error(errc::invalid_argument, "'" + key + "' cannot be a configuration key");
    }
    if (value.find('\n') != std::string::npos || value != trim(value)) {
        throw_error(errc::invalid_argument,
                    "the value of " + key + " cannot hold a newline or surrounding blanks");
    }
    settings_[key] = value;
}

void config_file::save() const
{
    std::error_code ec;
    if (path_.has_parent_path()) {
        const auto dir = path_.parent_path();
        if (std::filesystem::create_directories(dir, ec)) {
            std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
        }
        if (ec) {
            throw error(ec, "cannot create the directory " + dir.string());
        }
    }
    const std::filesystem::path temporary = path_.string() + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream out(temporary, std::ios::trunc);
        out << "# dragonx settings, written by `dragonx config`\n";
        for (const auto& [key, value] : settings_) {
            out << key << '=' << value << '\n';
        }
        out.flush();
        if (!out) {
            const int err = errno;
            std::filesystem::remove(temporary, ec);
            throw_io_error(err, "cannot write the dragonx configuration " + temporary.string());
        }
    }
    std::filesystem::rename(temporary, path_, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(temporary, ignored);
        throw error(ec, "cannot replace the dragonx configuration " + path_.string());
    }
}

bool config_file::remove(const std::filesystem::path& path)
{
    std::error_code ec;
    const bool removed = std::filesystem::remove(path, ec);
    if (ec) {
        throw error(ec, "cannot remove the dragonx configuration " + path.string());
    }
    return removed;
}

}  // namespace dragonx::rt::detail
