// persister.cpp - see persister.hpp.
//
// Notes:
// - write() writes and fsyncs the temporary file first, then applies the count limit, then
//   renames: a failed write (disk full) leaves every previous file as it was, and the oldest
//   files go only once the new one is safely on disk (only a rename failing after that, which
//   takes a broken directory, leaves the limit applied without the new file). The directory
//   is fsynced after the rename, which also makes the deletions durable.
// - File names are parsed from the right (a dictionary name may hold '_'): "<name>_<m>_<id>"
//   with <m> and <id> canonical decimal numbers (no sign, no leading zero), so each file has
//   exactly one reading and file_of() of a parsed id names the same file.
// - load() reads the file straight into image_loader's destinations: an entry's block gets one
//   read() of its whole remaining span (pool memory, no copy); headers and small entries come
//   through a 1 MiB buffer fed to the loader, so small parts do not cost a system call each.
//   It never reads past the file size it found with fstat.
#include "persister.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <ctime>
#include <optional>
#include <string_view>
#include <system_error>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/unique_fd.hpp>

namespace dragonx::dict {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view file_suffix = ".ddict";
// Temporary files are ".<final name>.tmp-<pid>".
constexpr std::string_view temp_marker = ".ddict.tmp-";
// A temporary file untouched this long is left over from a crash.
constexpr std::time_t stale_temp_seconds = 60;
// load(): destinations at least this large are read into directly.
constexpr std::size_t direct_read_min = 64 * 1024;
constexpr std::size_t read_buffer_size = 1024 * 1024;

void check_name(const std::string& name)
{
    const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
    if (!ok) {
        throw_error(errc::invalid_argument,
                    fmt::format("ddict persister: bad dictionary name '{}' (want one or more of "
                                "[A-Za-z0-9._-])",
                                name));
    }
}

// A canonical decimal number: digits only, no leading zero, within T.
template <typename T>
std::optional<T> parse_number(std::string_view text)
{
    if (text.empty() || (text.size() > 1 && text[0] == '0') ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

struct file_key {
    std::uint32_t manager;
    std::uint64_t id;
};

// "<name>_<manager>_<id>.ddict" of dictionary `name`, or nullopt.
std::optional<file_key> parse_file_name(std::string_view file, std::string_view name)
{
    if (!file.ends_with(file_suffix)) {
        return std::nullopt;
    }
    file.remove_suffix(file_suffix.size());
    const std::size_t id_sep = file.rfind('_');
    if (id_sep == std::string_view::npos) {
        return std::nullopt;
    }
    const std::size_t manager_sep = file.substr(0, id_sep).rfind('_');
    if (manager_sep == std::string_view::npos || file.substr(0, manager_sep) != name) {
        return std::nullopt;
    }
    const auto manager =
        parse_number<std::uint32_t>(file.substr(manager_sep + 1, id_sep - manager_sep - 1));
    const auto id = parse_number<std::uint64_t>(file.substr(id_sep + 1));
    if (!manager || !id) {
        return std::nullopt;
    }
    return file_key{*manager, *id};
}

// Calls fn(file_key, path) for every final file of dictionary `name` in `dir` (none if `dir`
// does not exist).
template <typename Fn>
void for_each_file(const fs::path& dir, std::string_view name, Fn&& fn)
{
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec == std::errc::no_such_file_or_directory) {
        return;
    }
    if (ec) {
        throw error(ec, "ddict persister: list " + dir.string());
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        if (ec) {
            throw error(ec, "ddict persister: list " + dir.string());
        }
        std::error_code type_ec;
        if (!it->is_regular_file(type_ec)) {
            continue;
        }
        if (auto key = parse_file_name(it->path().filename().native(), name)) {
            fn(*key, it->path());
        }
    }
    if (ec) {
        throw error(ec, "ddict persister: list " + dir.string());
    }
}

// Removes a file; one that is gone already is fine.
void remove_file(const fs::path& path)
{
    throw_system_error_on(::unlink(path.c_str()) != 0 && errno != ENOENT,
                          "unlink " + path.string());
}

void fsync_directory(const fs::path& dir)
{
    unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    throw_system_error_on(!fd, "open " + dir.string());
    throw_system_error_on(::fsync(fd.get()) != 0, "fsync " + dir.string());
}

// Removes temporary files of any persister in `dir` not modified for a minute. Best effort:
// a temporary file it cannot remove is harmless.
void remove_stale_temps(const fs::path& dir)
{
    std::error_code ec;
    const std::time_t now = std::time(nullptr);
    for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        const std::string file = it->path().filename().native();
        const std::size_t marker = file.rfind(temp_marker);
        if (file.empty() || file[0] != '.' || marker == std::string::npos ||
            !parse_number<std::uint64_t>(
                std::string_view(file).substr(marker + temp_marker.size()))) {
            continue;
        }
        struct ::stat st {};
        if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            now - st.st_mtime > stale_temp_seconds) {
            ::unlink(it->path().c_str());
        }
    }
}

// Writes everything it is given to a file: write() in loops (short writes, EINTR).
class fd_sink final : public image_sink {
public:
    fd_sink(int fd, const fs::path& path) : fd_(fd), path_(path) {}

    void write(byte_view bytes) override
    {
        while (!bytes.empty()) {
            const ::ssize_t n = ::write(fd_, bytes.data(), bytes.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n == 0) {
                errno = ENOSPC;  // write() made no progress: treat as full
            }
            throw_system_error_on(n <= 0, "write " + path_.string());
            bytes = bytes.subspan(static_cast<std::size_t>(n));
            written_ += static_cast<std::uint64_t>(n);
        }
    }

    [[nodiscard]] std::uint64_t written() const noexcept { return written_; }

private:
    int fd_;
    const fs::path& path_;
    std::uint64_t written_ = 0;
};

// One read() (retried on EINTR): the bytes read, 0 at the end of the file.
std::size_t read_some(int fd, std::span<std::byte> to, const fs::path& path)
{
    for (;;) {
        const ::ssize_t n = ::read(fd, to.data(), to.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        throw_system_error_on(n < 0, "read " + path.string());
        return static_cast<std::size_t>(n);
    }
}

// e.what() without the ": <category message>" that std::system_error appends.
std::string cause(const error& e)
{
    std::string what = e.what();
    const std::string suffix = ": " + e.code().message();
    if (what.ends_with(suffix)) {
        what.resize(what.size() - suffix.size());
    }
    return what;
}

}  // namespace

persister::persister(std::filesystem::path dir, std::string name, std::uint32_t manager_id,
                     std::int64_t persist_count)
    : dir_(std::move(dir)), name_(std::move(name)), manager_id_(manager_id),
      count_(persist_count)
{
    check_name(name_);
    if (count_ < -1) {
        throw_error(errc::invalid_argument,
                    fmt::format("ddict {}: persist_count {} (want -1 for unlimited, or >= 0)",
                                name_, count_));
    }
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) {
        throw error(ec, "ddict persister: create directory " + dir_.string());
    }
}

std::filesystem::path persister::file_of(std::uint64_t id) const
{
    return dir_ / fmt::format("{}_{}_{}{}", name_, manager_id_, id, file_suffix);
}

std::vector<std::uint64_t> persister::ids() const
{
    std::vector<std::uint64_t> found;
    for_each_file(dir_, name_, [&](const file_key& key, const fs::path&) {
        if (key.manager == manager_id_) {
            found.push_back(key.id);
        }
    });
    std::sort(found.begin(), found.end());
    return found;
}

std::uint64_t persister::write(const image_meta& meta, const checkpoint_view& cp)
{
    if (count_ == 0) {
        return 0;
    }
    remove_stale_temps(dir_);

    const fs::path final_path = file_of(cp.id);
    const fs::path temp_path =
        dir_ / fmt::format(".{}.tmp-{}", final_path.filename().native(), ::getpid());
    const std::span<const checkpoint_view> checkpoints(&cp, 1);
    const std::uint64_t size = image_size(checkpoints);

    unique_fd fd(::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    throw_system_error_on(!fd, "open " + temp_path.string());
    try {
        fd_sink sink(fd.get(), temp_path);
        write_image(meta, checkpoints, sink);
        if (sink.written() != size) {
            throw_error(errc::internal,
                        fmt::format("ddict persister: wrote {} bytes to {}, its image is {}",
                                    sink.written(), temp_path.string(), size));
        }
        throw_system_error_on(::fsync(fd.get()) != 0, "fsync " + temp_path.string());
        throw_system_error_on(::close(fd.release()) != 0, "close " + temp_path.string());

        // The count limit: the oldest go until fewer than count_ remain besides this id.
        if (count_ > 0) {
            std::vector<std::uint64_t> others = ids();
            std::erase(others, cp.id);
            for (std::size_t i = 0; others.size() - i >= static_cast<std::uint64_t>(count_);
                 ++i) {
                remove_file(file_of(others[i]));
            }
        }

        throw_system_error_on(::rename(temp_path.c_str(), final_path.c_str()) != 0,
                              "rename " + temp_path.string() + " to " + final_path.string());
        fsync_directory(dir_);
    } catch (...) {
        ::unlink(temp_path.c_str());
        throw;
    }
    return size;
}

loaded_image persister::load(std::uint64_t id, pool::pool& pool) const
{
    const fs::path path = file_of(id);
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd && errno == ENOENT) {
        throw_error(errc::checkpoint_unavailable,
                    fmt::format("ddict {}: manager {} has no persisted checkpoint {} ({})", name_,
                                manager_id_, id, path.string()));
    }
    throw_system_error_on(!fd, "open " + path.string());
    struct ::stat st {};
    throw_system_error_on(::fstat(fd.get(), &st) != 0, "fstat " + path.string());
    const auto file_size = static_cast<std::uint64_t>(st.st_size);

    image_loader loader(pool, file_size);
    try {
        std::vector<std::byte> buffer(std::min<std::uint64_t>(file_size, read_buffer_size));
        std::uint64_t offset = 0;
        while (!loader.done()) {
            const std::span<std::byte> to = loader.next_destination();
            std::size_t n = 0;
            if (to.size() >= direct_read_min) {
                n = read_some(fd.get(), to, path);
                loader.commit(n);
            } else {
                // Until the image header is in, only its bytes: the size check below comes
                // before anything past a shorter image is read.
                const std::uint64_t want = loader.total_size() == 0 ? to.size()
                                                                     : file_size - offset;
                const std::span<std::byte> chunk(
                    buffer.data(), std::min<std::uint64_t>({buffer.size(), want,
                                                            file_size - offset}));
                n = chunk.empty() ? 0 : read_some(fd.get(), chunk, path);
                loader.feed(chunk.first(n));
            }
            if (n == 0) {
                throw_error(errc::corrupt_file,
                            fmt::format("truncated: the file ended at byte {} of {}", offset,
                                        loader.total_size()));
            }
            offset += n;
            if (loader.total_size() != 0 && loader.total_size() != file_size) {
                throw_error(errc::corrupt_file,
                            fmt::format("size mismatch: the file holds {} bytes, its image {}",
                                        file_size, loader.total_size()));
            }
        }
        loaded_image image = loader.take();
        if (image.checkpoints.size() != 1 || image.checkpoints.front().id != id) {
            throw_error(errc::corrupt_file,
                        fmt::format("holds {} checkpoints (first id {}), not checkpoint {} alone",
                                    image.checkpoints.size(),
                                    image.checkpoints.empty() ? 0 : image.checkpoints[0].id, id));
        }
        return image;
    } catch (const error& e) {
        if (e.is(errc::corrupt_file) || e.is(errc::ddict_full)) {
            throw error(e.code(), path.string() + ": " + cause(e));
        }
        throw;
    }
}

void persister::remove_newer_than(std::uint64_t id)
{
    bool removed = false;
    for (const std::uint64_t i : ids()) {
        if (i > id) {
            remove_file(file_of(i));
            removed = true;
        }
    }
    if (removed) {
        fsync_directory(dir_);
    }
}

void persister::remove_all_newer_than(const std::filesystem::path& dir, const std::string& name,
                                      std::uint64_t id)
{
    check_name(name);
    std::vector<fs::path> doomed;
    for_each_file(dir, name, [&](const file_key& key, const fs::path& path) {
        if (key.id > id) {
            doomed.push_back(path);
        }
    });
    for (const auto& path : doomed) {
        remove_file(path);
    }
    if (!doomed.empty()) {
        fsync_directory(dir);
    }
}

}  // namespace dragonx::dict
