// node_identity.hpp - which node of the run a dragonx-runtime daemon is, and its name.
//
// The launcher tells each daemon directly (--node I --hostname NAME: local and ssh starts),
// or, when one launch command starts every daemon (srun, mpiexec), tells it where to look:
//   --node-from SLURM_NODEID             the first of these variables that is set
//   --node-from PALS_NODEID,PMI_RANK,...   holds the node index
//   --hostname-from SLURMD_NODENAME      the variable holding the node's name
//   --hostnames n1,n2,n3                 the names of all nodes: this one's is [index]
//
// Notes:
// - Exactly one of --node / --node-from, and exactly one of --hostname / --hostname-from /
//   --hostnames, must be given; resolve() checks it and that the index is below nnodes.
// - Pure: the environment is read through the function it is given. Errors are
//   dragonx::error(invalid_argument) naming the option and variable.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace dragonx::rt::detail {

struct node_identity_options {
    std::optional<std::uint32_t> node;  // --node
    std::string node_from;              // --node-from VAR[,VAR...]
    std::optional<std::string> hostname;  // --hostname
    std::string hostname_from;          // --hostname-from VAR
    std::string hostnames;              // --hostnames A,B,C
};

struct node_identity {
    std::uint32_t node = 0;
    std::string hostname;
};

using variable_lookup = std::function<std::optional<std::string>(const std::string&)>;

[[nodiscard]] node_identity resolve_node_identity(const node_identity_options& options,
                                                  std::uint32_t nnodes,
                                                  const variable_lookup& variable);

}  // namespace dragonx::rt::detail
