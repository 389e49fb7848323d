// identity.hpp - which dragonx run and node this process belongs to.
//
// Notes:
// - Read from the environment the runtime gives every managed process (DRAGONX_RUN,
//   DRAGONX_NODE). A process started outside `dragonx run` is in no run: it gets the private
//   run id "solo<pid>" and node 0, so the objects it creates still have unique names.
// - Run ids are 1..24 characters of [A-Za-z0-9_]; they appear in shm object names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dragonx {

struct run_identity {
    std::string run;       // run id; "solo<pid>" outside a run
    std::uint32_t node{};  // node index within the run
    bool in_run{};         // true when DRAGONX_RUN was set

    /// This process's identity. Throws dragonx::error(errc::invalid_argument) when
    /// DRAGONX_RUN or DRAGONX_NODE is set to something that is not a valid value.
    static run_identity from_environment();
};

/// True if `run` is a valid run id (1..24 characters of [A-Za-z0-9_]).
[[nodiscard]] bool is_valid_run_id(std::string_view run) noexcept;

}  // namespace dragonx
