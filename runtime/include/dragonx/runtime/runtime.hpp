// runtime.hpp - dragonx::runtime: this process's view of the run it belongs to.
//
//   auto& rt = dragonx::runtime::current();     // throws outside `dragonx run`
//   std::cout << rt.puid() << " on node " << rt.node() << " of " << rt.nnodes() << "\n";
//   rt.kv_put("ddict/main", descriptor);        // a small registry for bootstrapping
//   auto d = rt.kv_get("ddict/main", std::chrono::seconds(5));
//
// Notes:
// - A managed process finds its node's daemon through the environment the daemon gave it:
//   DRAGONX_RUN, DRAGONX_RUNTIME (the daemon's socket), DRAGONX_NODE, DRAGONX_NNODES,
//   DRAGONX_PUID, DRAGONX_HOSTNAME. current() reads them once and connects on first use.
// - Thread-safe: requests from several threads are serialized on one connection (a long
//   join blocks the others' requests until it returns; give joins timeouts in threaded code).
// - After fork(), the child must not use the parent's runtime object (it shares the socket);
//   a child started through dragonx (process::start) gets its own.
// - Errors: errc::no_runtime outside a run or when the daemon is gone; the errors of the
//   requests themselves (errc::timeout, not_found, ...) as documented per call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <dragonx/common/deadline.hpp>
#include <dragonx/runtime/messages.hpp>

namespace dragonx {

using puid_t = rt::puid_t;

class runtime {
public:
    /// The run of this process. Throws errc::no_runtime ("not running under dragonx run")
    /// when the environment does not name one.
    static runtime& current();
    /// True if this process runs under `dragonx run`.
    [[nodiscard]] static bool available() noexcept;

    [[nodiscard]] const std::string& run_id() const noexcept { return run_; }
    [[nodiscard]] std::uint32_t node() const noexcept { return node_; }
    [[nodiscard]] std::uint32_t nnodes() const noexcept { return nnodes_; }
    [[nodiscard]] puid_t puid() const noexcept { return puid_; }
    /// This node's name in the run ("node1" for virtual nodes).
    [[nodiscard]] const std::string& hostname() const noexcept { return hostname_; }

    /// Stores `value` under `key` in the run's registry (global services), replacing it.
    void kv_put(const std::string& key, const std::string& value);
    /// The value under `key`, waiting up to `limit` for someone to put it. Throws
    /// errc::timeout (or errc::key_not_found with a zero limit).
    [[nodiscard]] std::string kv_get(const std::string& key, timeout limit = forever);

    /// Has this node's daemon remove shm object `name` ("/dragonx-...") when this process
    /// exits, however it exits (and at teardown).
    void register_shm(const std::string& name);

    /// Sends a control request to the daemon and returns its reply. A reply that is an ack
    /// with an error is thrown as dragonx::error. For the API's own classes.
    rt::message request(rt::message body);

    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;
    ~runtime();

private:
    runtime();
    struct channel;
    std::string run_;
    std::string socket_;
    std::string hostname_;
    std::uint32_t node_ = 0;
    std::uint32_t nnodes_ = 1;
    puid_t puid_ = 0;
    std::unique_ptr<channel> channel_;
};

}  // namespace dragonx
