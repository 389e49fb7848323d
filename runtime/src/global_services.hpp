// global_services.hpp - what the primary daemon keeps for the whole run: process ids and
// states, placement, joins, process groups, and the key-value registry.
//
//   global_services gs(io, nodes, hooks);
//   gs.handle(request, [&](rt::message reply) { conn.reply(id, std::move(reply)); });
//   gs.on_exited({.puid = p, .exit_code = 0});   // a node daemon reported an exit
//
// Notes:
// - Runs on the primary daemon's io_context thread; not thread-safe. It never blocks: a
//   request that waits (join, kv_get with a timeout, group start) keeps its responder and
//   answers later, from a timer or an event.
// - Talks to nodes only through `hooks` (the daemon sends spawn/signal to the node's daemon,
//   or to its own supervisor for node 0), so it can be tested without sockets.
// - Every request gets exactly one reply, with a status: unknown puids, bad policies and
//   failed starts are errors as data, never exceptions out of handle().
// - Exit codes: a process killed by signal N has exit_code 128+N and signal N.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <dragonx/policy/evaluator.hpp>
#include <dragonx/runtime/messages.hpp>

namespace dragonx::rt::detail {

/// Sends a reply to whoever asked.
using responder = std::function<void(message reply)>;

struct global_hooks {
    /// Start `request` on node `request.where.node`; call `done` with the node's answer
    /// (exactly once, also when the node is lost: then with an error status).
    std::function<void(msg::spawn_process request, std::function<void(msg::started)> done)> spawn;
    /// Send `signal` to `puid` on `node` (best effort).
    std::function<void(std::uint32_t node, puid_t puid, int signal)> signal;
    /// The head process exited: the run is over.
    std::function<void(msg::exited)> head_exited;
};

class global_services {
public:
    global_services(asio::io_context& io, std::vector<node_info> nodes, global_hooks hooks);
    ~global_services();
    global_services(const global_services&) = delete;
    global_services& operator=(const global_services&) = delete;

    /// Handles a request (create_process, signal_process, join_processes, query_processes,
    /// get_nodes, kv_put, kv_get, group_*, read_output). Anything else is answered with
    /// errc::invalid_argument.
    void handle(const message& request, responder reply);

    /// Starts the head program (the launcher's start_head). Replies with started.
    void start_head(const process_spec& spec, responder reply);

    /// A node reported that `e.puid` exited.
    void on_exited(const msg::exited& e);

    /// Output of a process whose stream is a pipe (stdio_target::pipe), kept for read_output.
    void on_output(const msg::output& chunk);

    /// Node `node` is gone: its processes are marked exited (signal SIGKILL).
    void on_node_lost(std::uint32_t node);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace dragonx::rt::detail
