// config_file.hpp - the user's dragonx settings (`dragonx config`): which libfabric to load,
// whether to prefer TCP.
//
// The file holds one `key=value` per line; blank lines and lines starting with '#' are
// ignored. Keys this version knows:
//   ofi_runtime_lib=DIR   load DIR/libfabric.so.1 instead of the system's libfabric
//   tcp_runtime=true      use TCP between nodes even where a libfabric provider is found
// Unknown keys are kept (a newer dragonx may have written them) and shown, never dropped.
//
// Notes:
// - Where: $DRAGONX_CONFIG if set and not empty, else ${XDG_CONFIG_HOME:-$HOME/.config}/
//   dragonx/config. A missing file is the same as an empty one.
// - save() writes a temporary file next to the target and renames it over, so a reader never
//   sees half a file. Not safe against two concurrent writers (last one wins).
// - Errors throw dragonx::error naming the path: errc::invalid_argument for a line that is not
//   key=value, the errno category for I/O failures.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace dragonx::rt::detail {

class config_file {
public:
    static constexpr const char* ofi_runtime_lib_key = "ofi_runtime_lib";
    static constexpr const char* tcp_runtime_key = "tcp_runtime";

    /// The path described above. Throws errc::invalid_argument when neither DRAGONX_CONFIG,
    /// XDG_CONFIG_HOME nor HOME is set.
    [[nodiscard]] static std::filesystem::path default_path();

    /// Reads `path` (missing: no settings).
    [[nodiscard]] static config_file load(const std::filesystem::path& path);
    /// Reads default_path().
    [[nodiscard]] static config_file load_default() { return load(default_path()); }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] const std::map<std::string, std::string>& settings() const noexcept
    {
        return settings_;
    }
    [[nodiscard]] std::optional<std::string> get(const std::string& key) const;
    /// The directory to load libfabric from, or empty for the system's search path.
    [[nodiscard]] std::string ofi_runtime_lib() const
    {
        return get(ofi_runtime_lib_key).value_or("");
    }
    [[nodiscard]] bool tcp_runtime() const { return get(tcp_runtime_key) == "true"; }

    /// Throws errc::invalid_argument for a key that is empty or holds '=', '#' or a newline,
    /// or a value with a newline.
    void set(const std::string& key, const std::string& value);
    void erase(const std::string& key) { settings_.erase(key); }

    /// Writes the settings to path(), creating its directory (mode 0700) if needed.
    void save() const;
    /// Removes the file at path(); true if there was one.
    static bool remove(const std::filesystem::path& path);

private:
    explicit config_file(std::filesystem::path path) : path_(std::move(path)) {}

    std::filesystem::path path_;
    std::map<std::string, std::string> settings_;
};

}  // namespace dragonx::rt::detail
