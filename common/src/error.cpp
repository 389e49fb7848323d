// error.cpp - the dragonx error category.
#include <dragonx/common/error.hpp>

namespace dragonx {
namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "dragonx"; }

    std::string message(int value) const override
    {
        switch (static_cast<errc>(value)) {
        case errc::ok: return "ok";
        case errc::invalid_argument: return "invalid argument";
        case errc::timeout: return "timed out";
        case errc::already_exists: return "already exists";
        case errc::not_found: return "not found";
        case errc::no_space: return "no space left";
        case errc::pool_full: return "pool full";
        case errc::malformed_descriptor: return "malformed descriptor";
        case errc::version_mismatch: return "version mismatch";
        case errc::wrong_run: return "belongs to another run";
        case errc::not_local: return "not on this node";
        case errc::invalid_allocation: return "no such allocation";
        case errc::corrupt_object: return "corrupt shared object";
        case errc::no_transport: return "no transport to the owning node";
        case errc::key_not_found: return "key not found";
        case errc::ddict_full: return "dictionary full";
        case errc::checkpoint_retired: return "checkpoint retired";
        case errc::internal: return "internal error";
        case errc::message_too_large: return "message too large";
        case errc::malformed_message: return "malformed message";
        case errc::broken_barrier: return "broken barrier";
        case errc::no_runtime: return "no dragonx runtime";
        case errc::peer_lost: return "peer lost";
        case errc::process_failed: return "process failed";
        case errc::invalid_operation: return "invalid operation";
        case errc::checkpoint_unavailable: return "checkpoint not persisted";
        case errc::corrupt_file: return "corrupt file";
        case errc::task_failed: return "task failed";
        case errc::worker_lost: return "worker lost";
        }
        return "unknown dragonx error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& dragonx_category() noexcept
{
    static const category instance;  // immutable: the one static the standard pattern needs
    return instance;
}

void throw_error(errc e, const std::string& what)
{
    throw error(e, what);
}

void throw_system_error_on(bool failed, const std::string& what)
{
    throw_system_error_on(failed, what.c_str());
}

}  // namespace dragonx
