// persister.hpp - a manager's persisted checkpoints as files (the POSIX persister, spec §8).
//
// One file per manager and checkpoint: <dir>/<name>_<manager id>_<checkpoint id>.ddict, holding
// the image (image.hpp) of that checkpoint.
//
// Notes:
// - Writing is crash-safe: the image goes to a temporary file in the same directory
//   (".<final name>.tmp-<pid>"), is fsynced, renamed over the final name, and the directory is
//   fsynced. A reader never sees a half-written file under a final name; a crash leaves at
//   most a temporary file, which ids() ignores and the next write in that directory removes
//   if it is older than a minute.
// - Reading trusts nothing: a file whose size differs from its header's, whose checksum fails,
//   or that does not parse is errc::corrupt_file naming the file, and nothing of it is loaded.
// - persist_count bounds the files kept per manager: before a new id is written, the oldest
//   are deleted until fewer than persist_count remain (an existing file of the same id is
//   replaced and not counted). -1: unlimited; 0: write() keeps nothing and is a no-op.
// - Synchronous and not thread-safe: the manager calls it from one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "image.hpp"

namespace dragonx::dict {

class persister {
public:
    /// Files of manager `manager_id` of dictionary `name` in `dir` (created if missing).
    /// Throws errc::invalid_argument if `name` is empty or holds a character outside
    /// [A-Za-z0-9._-] or if persist_count < -1, or a system error if `dir` cannot be created.
    persister(std::filesystem::path dir, std::string name, std::uint32_t manager_id,
              std::int64_t persist_count);

    [[nodiscard]] const std::filesystem::path& directory() const noexcept { return dir_; }
    [[nodiscard]] std::filesystem::path file_of(std::uint64_t id) const;

    /// Ids of this manager's persisted checkpoints (final names present), ascending.
    [[nodiscard]] std::vector<std::uint64_t> ids() const;

    /// Writes checkpoint `cp` (as a one-checkpoint image) under id cp.id, replacing a file of
    /// the same id, after applying the count limit. Returns the bytes written. Throws a system
    /// error (disk full, permissions), leaving the previous files as they were.
    std::uint64_t write(const image_meta& meta, const checkpoint_view& cp);

    /// Loads checkpoint `id` into `pool`: errc::checkpoint_unavailable if there is no such
    /// file, errc::corrupt_file if it fails a check, errc::ddict_full if the pool cannot hold
    /// it (nothing is kept in the pool then).
    [[nodiscard]] loaded_image load(std::uint64_t id, pool::pool& pool) const;

    /// Deletes this manager's files of ids greater than `id` (a restore going back).
    void remove_newer_than(std::uint64_t id);

    /// Deletes the files of every manager of dictionary `name` in `dir` with ids greater than
    /// `id` (the orchestrator, before a read-write restore).
    static void remove_all_newer_than(const std::filesystem::path& dir, const std::string& name,
                                      std::uint64_t id);

private:
    std::filesystem::path dir_;
    std::string name_;
    std::uint32_t manager_id_;
    std::int64_t count_;
};

}  // namespace dragonx::dict
