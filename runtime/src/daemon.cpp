// daemon.cpp - dragonx-runtime: launcher link, peers, local clients, spawning, teardown.
#include "daemon.hpp"

#include <array>
#include <csignal>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>
#include <dragonx/policy/discovery.hpp>

#include "connection.hpp"
#include "global_services.hpp"
#include "run_paths.hpp"
#include "supervisor.hpp"
#include "transport/agent.hpp"

extern char** environ;

namespace dragonx::rt::detail {

namespace {

using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
using connection_ptr = std::shared_ptr<connection>;

constexpr std::chrono::seconds peers_join_limit{30};

/// How long a daemon that lost its launcher waits for the launcher process to finish exiting
/// (its sockets close before it is gone) before deciding it is alive and leaving its record.
constexpr std::chrono::milliseconds launcher_exit_wait{1000};

status status_of(const std::exception& e)
{
    if (const auto* d = dynamic_cast<const dragonx::error*>(&e);
        d != nullptr && d->code().category() == dragonx_category()) {
        return {static_cast<errc>(d->code().value()), d->what()};
    }
    return {errc::internal, e.what()};
}

}  // namespace

struct node_daemon::impl {
    enum class phase { booting, serving, tearing_down, done };

    impl(asio::io_context& io_context, daemon_config cfg)
        : io(io_context),
          config(std::move(cfg)),
          peer_acceptor(io),
          client_acceptor(io),
          heartbeat_timer(io),
          start_head_timer(io),
          teardown_timer(io),
          sup(io, supervisor_callbacks{
                      .on_output = [this](puid_t p, output_stream s,
                                          std::string_view d) { forward_output(p, s, d); },
                      .on_exit = [this](puid_t p, exit_status st) { process_exited(p, st); },
                  })
    {
    }

    asio::io_context& io;
    daemon_config config;
    tcp::acceptor peer_acceptor;
    unix_socket::acceptor client_acceptor;
    asio::steady_timer heartbeat_timer;
    asio::steady_timer start_head_timer;
    asio::steady_timer teardown_timer;
    // At a normal teardown the daemons close their links a moment apart, each when the
    // launcher's teardown reaches it: a link lost while serving is reported only if no
    // teardown follows within this grace (report_link_lost).
    static constexpr auto link_lost_grace = std::chrono::milliseconds(500);
    supervisor sup;
    phase state = phase::booting;
    int exit_code = 0;
    bool launcher_gone = false;  // the launcher link closed or went silent before teardown
    std::uint64_t heartbeat_seq = 0;
    std::string socket_path;
    std::map<std::string, std::string> base_environment;  // see node_environment()
    // Where peers reach this daemon: config.address, or, when that is 0.0.0.0 (listen on
    // every interface: daemons on several hosts), the local address of the launcher link.
    std::string advertised_address;

    connection_ptr launcher;
    connection_ptr primary;                        // non-primary daemons: the link to node 0
    std::map<std::uint32_t, connection_ptr> peers;  // primary: the other daemons, by node
    std::set<connection_ptr> clients;
    std::vector<node_info> nodes;
    std::unique_ptr<global_services> gs;
    std::unique_ptr<transport_agent> agent;  // remote channel operations; its own thread
    struct pending_head {
        process_spec spec;
        std::uint64_t request_id;
    };
    std::optional<pending_head> head_request;
    std::multimap<puid_t, std::string> registered_shm;
    // Streams a parent reads (stdio_target::pipe), by puid: [stdout, stderr]. Their output
    // goes to global services instead of the launcher while the process runs.
    std::map<puid_t, std::array<bool, 2>> piped;

    [[nodiscard]] bool is_primary() const { return config.node == 0; }
    spdlog::logger& logger() const { return log::get("runtime"); }

    // ---- start-up -------------------------------------------------------------------------

    void start()
    {
        create_run_directory(config.run);
        socket_path = node_socket_path(config.run, config.node).string();
        base_environment = node_environment();
        ::unlink(socket_path.c_str());
        client_acceptor.open(unix_socket());
        client_acceptor.bind(unix_socket::endpoint(socket_path));
        client_acceptor.listen();
        accept_client();

        const tcp::endpoint here(asio::ip::make_address(config.address), 0);
        peer_acceptor.open(here.protocol());
        peer_acceptor.set_option(tcp::acceptor::reuse_address(true));
        peer_acceptor.bind(here);
        peer_acceptor.listen();
        if (is_primary()) {
            accept_peer();
        }
        connect_to_launcher();
    }

    node_info describe_node()
    {
        const auto self = discover_local_node(config.node, config.hostname);
        return node_info{config.node,
                         config.hostname,
                         advertised_address,
                         peer_acceptor.local_endpoint().port(),
                         self.cpus,
                         self.gpus,
                         static_cast<std::uint8_t>(self.vendor),
                         self.memory_bytes,
                         agent->address()};
    }

    // The transport agent listens where this daemon does and is known to its peers by the
    // address they reach this daemon at. False (and the daemon stops) if it cannot start.
    bool start_agent()
    {
        try {
            agent = std::make_unique<transport_agent>(agent_config{
                .run = config.run,
                .node = config.node,
                .secret = config.secret,
                .transport = config.transport,
                .listen_address = config.address,
                .advertised_host = advertised_address,
            });
        } catch (const std::exception& e) {
            logger().critical("cannot start the transport agent ({}): {}", config.transport,
                              e.what());
            exit_code = 1;
            io.stop();
            return false;
        }
        logger().debug("transport agent: {} at {}", agent->link_name(), agent->address());
        return true;
    }

    void connect_to_launcher()
    {
        auto socket = std::make_shared<tcp::socket>(io);
        const tcp::endpoint where(asio::ip::make_address(config.launcher_host),
                                  config.launcher_port);
        socket->async_connect(where, [this, socket](const std::error_code& ec) {
            if (ec) {
                logger().error("cannot reach the launcher at {}:{}: {}", config.launcher_host,
                               config.launcher_port, ec.message());
                exit_code = 1;
                io.stop();
                return;
            }
            socket->set_option(tcp::no_delay(true));
            advertised_address = config.address;
            std::error_code local_error;
            const auto local = socket->local_endpoint(local_error);
            if (!local_error && asio::ip::make_address(config.address).is_unspecified()) {
                advertised_address = local.address().to_string();  // routable from the peers
            }
            if (!start_agent()) {
                return;
            }
            launcher = connection::make(connection::socket_type(std::move(*socket)), "launcher");
            launcher->start_connector(
                config.secret, msg::hello{.role = "daemon", .node = config.node},
                {.on_ready = [this](connection& c) {
                     c.notify(msg::daemon_up{describe_node()});
                     state = phase::serving;
                     schedule_heartbeat();
                 },
                 .on_message = [this](connection&, envelope e) { from_launcher(std::move(e)); },
                 .on_closed = [this](connection&, const std::string& why) {
                     launcher_lost(why);
                 }});
        });
    }

    // ---- the launcher ---------------------------------------------------------------------

    void from_launcher(envelope e)
    {
        std::visit(
            [&](auto& m) {
                using T = std::decay_t<decltype(m)>;
                if constexpr (std::is_same_v<T, msg::node_table>) {
                    receive_node_table(std::move(m.nodes));
                } else if constexpr (std::is_same_v<T, msg::start_head>) {
                    start_head(std::move(m.spec), e.id);
                } else if constexpr (std::is_same_v<T, msg::teardown>) {
                    logger().debug("teardown: {}", m.reason);
                    teardown(0);
                } else if constexpr (std::is_same_v<T, msg::heartbeat>) {
                    // last_heard() is all we need
                } else {
                    logger().warn("unexpected {} from the launcher ignored", T::name);
                }
            },
            e.body);
    }

    void launcher_lost(const std::string& why)
    {
        if (state == phase::done) {
            io.stop();  // teardown_done went out (the connection closes after the flush)
            return;
        }
        if (state == phase::tearing_down) {
            return;
        }
        logger().error("node {}: lost the launcher ({}); tearing down", config.node, why);
        launcher_gone = true;
        teardown(1);
    }

    void schedule_heartbeat()
    {
        heartbeat_timer.expires_after(config.heartbeat_interval);
        heartbeat_timer.async_wait([this](const std::error_code& ec) {
            if (ec || state != phase::serving || !launcher) {
                return;
            }
            const auto silence = std::chrono::steady_clock::now() - launcher->last_heard();
            if (silence > config.launcher_silence_limit) {
                launcher_lost(fmt::format("no word for {} ms",
                                          std::chrono::duration_cast<std::chrono::milliseconds>(
                                              silence)
                                              .count()));
                return;
            }
            launcher->notify(msg::heartbeat{++heartbeat_seq});
            schedule_heartbeat();
        });
    }

    void receive_node_table(std::vector<node_info> table)
    {
        nodes = std::move(table);
        std::vector<std::string> addresses;
        std::vector<std::string> names;
        for (const auto& n : nodes) {
            addresses.push_back(n.agent_address);
            names.push_back(n.hostname);
        }
        agent->set_nodes(std::move(addresses), std::move(names));
        if (is_primary()) {
            gs = std::make_unique<global_services>(
                io, nodes,
                global_hooks{
                    .spawn = [this](msg::spawn_process r,
                                    std::function<void(msg::started)> done) {
                        spawn_on_node(std::move(r), std::move(done));
                    },
                    .signal = [this](std::uint32_t node, puid_t p,
                                     int sig) { signal_on_node(node, p, sig); },
                    .head_exited = [this](msg::exited e) {
                        if (launcher) {
                            launcher->notify(e);
                        }
                    },
                });
            maybe_start_head();
        } else {
            connect_to_primary();
        }
    }

    // ---- daemons among themselves ---------------------------------------------------------

    void accept_peer()
    {
        peer_acceptor.async_accept([this](const std::error_code& ec, tcp::socket socket) {
            if (ec) {
                return;  // closed at teardown
            }
            socket.set_option(tcp::no_delay(true));
            auto c = connection::make(connection::socket_type(std::move(socket)), "peer");
            c->start_acceptor(config.secret,
                              {.on_ready = [this](connection& conn) { peer_joined(conn); },
                               .on_message = [this](connection& conn,
                                                    envelope e) { from_peer(conn, std::move(e)); },
                               .on_closed = [this](connection& conn, const std::string& why) {
                                   peer_lost(conn, why);
                               }});
            accept_peer();
        });
    }

    void peer_joined(connection& c)
    {
        const auto& hello = c.peer_hello();
        if (hello.role != "daemon" || hello.node == 0 || hello.node >= config.nnodes ||
            peers.contains(hello.node)) {
            logger().warn("refusing a peer connection from role {} node {}", hello.role,
                          hello.node);
            c.close("not a daemon of this run");
            return;
        }
        c.set_name(fmt::format("node {}", hello.node));
        peers.emplace(hello.node, c.shared_from_this());
        maybe_start_head();
    }

    void peer_lost(connection& c, const std::string& why)
    {
        for (auto it = peers.begin(); it != peers.end(); ++it) {
            if (it->second.get() == &c) {
                const auto node = it->first;
                peers.erase(it);
                if (state == phase::serving) {
                    report_link_lost(node, "lost the connection between node 0 and node " +
                                               std::to_string(node) + ": " + why);
                    if (gs) {
                        gs->on_node_lost(node);
                    }
                    agent->node_lost(node, why);
                }
                return;
            }
        }
    }

    // Reports node `node` failed after link_lost_grace, unless a teardown began meanwhile.
    void report_link_lost(std::uint32_t node, std::string what)
    {
        auto timer = std::make_shared<asio::steady_timer>(io, link_lost_grace);
        timer->async_wait([this, timer, node, what = std::move(what)](const std::error_code&) {
            if (state == phase::serving) {
                report_node_failed(node, what);
            }
        });
    }

    void report_node_failed(std::uint32_t node, const std::string& what)
    {
        logger().error("{}", what);
        if (launcher) {
            launcher->notify(msg::node_failed{node, what});
        }
    }

    void from_peer(connection& c, envelope e)
    {
        if (auto* exit = std::get_if<msg::exited>(&e.body)) {
            if (gs) {
                gs->on_exited(*exit);
            }
            return;
        }
        if (auto* chunk = std::get_if<msg::output>(&e.body)) {
            if (gs) {
                gs->on_output(*chunk);
            }
            return;
        }
        // A request a node forwarded for one of its clients.
        if (gs && e.id != 0) {
            auto conn = c.shared_from_this();
            gs->handle(e.body, [conn, id = e.id](message reply) {
                conn->reply(id, std::move(reply));
            });
            return;
        }
        logger().warn("unexpected {} from {} ignored", message_name(e.body), c.name());
    }

    void connect_to_primary()
    {
        const auto& primary_node = nodes.at(0);
        auto socket = std::make_shared<tcp::socket>(io);
        const tcp::endpoint where(asio::ip::make_address(primary_node.address), primary_node.port);
        socket->async_connect(where, [this, socket](const std::error_code& ec) {
            if (ec) {
                report_node_failed(config.node, fmt::format("node {} cannot reach node 0: {}",
                                                            config.node, ec.message()));
                return;
            }
            socket->set_option(tcp::no_delay(true));
            primary = connection::make(connection::socket_type(std::move(*socket)), "node 0");
            primary->start_connector(
                config.secret, msg::hello{.role = "daemon", .node = config.node},
                {.on_ready = [](connection&) {},
                 .on_message = [this](connection& conn,
                                      envelope e) { from_primary(conn, std::move(e)); },
                 .on_closed = [this](connection&, const std::string& why) {
                     if (state == phase::serving) {
                         report_link_lost(config.node, fmt::format("node {} lost node 0: {}",
                                                                   config.node, why));
                     }
                 }});
        });
    }

    void from_primary(connection& c, envelope e)
    {
        if (auto* spawn = std::get_if<msg::spawn_process>(&e.body)) {
            c.reply(e.id, spawn_here(*spawn));
        } else if (auto* sig = std::get_if<msg::signal_process>(&e.body)) {
            sup.signal(sig->puid, sig->signal);
        } else {
            logger().warn("unexpected {} from node 0 ignored", message_name(e.body));
        }
    }

    void spawn_on_node(msg::spawn_process r, std::function<void(msg::started)> done)
    {
        const auto node = r.where.node;
        if (node == config.node) {
            done(spawn_here(r));
            return;
        }
        const auto peer = peers.find(node);
        if (peer == peers.end()) {
            done(msg::started{{errc::peer_lost, fmt::format("node {} is not connected", node)},
                              r.puid, node});
            return;
        }
        peer->second->request(std::move(r), [done, node](const envelope* reply) {
            const auto* s = reply != nullptr ? std::get_if<msg::started>(&reply->body) : nullptr;
            if (s == nullptr) {
                done(msg::started{{errc::peer_lost, fmt::format("node {} did not answer", node)},
                                  0, node});
                return;
            }
            done(*s);
        });
    }

    void signal_on_node(std::uint32_t node, puid_t puid, int sig)
    {
        if (node == config.node) {
            sup.signal(puid, sig);
        } else if (const auto peer = peers.find(node); peer != peers.end()) {
            peer->second->notify(msg::signal_process{puid, sig});
        }
    }

    // ---- the head ---------------------------------------------------------------------------

    void start_head(process_spec spec, std::uint64_t request_id)
    {
        head_request = pending_head{std::move(spec), request_id};
        start_head_timer.expires_after(peers_join_limit);
        start_head_timer.async_wait([this](const std::error_code& ec) {
            if (ec || !head_request) {
                return;
            }
            std::string missing;
            for (std::uint32_t n = 1; n < config.nnodes; ++n) {
                if (!peers.contains(n)) {
                    missing += (missing.empty() ? "" : ", ") + std::to_string(n);
                }
            }
            launcher->reply(head_request->request_id,
                            msg::started{{errc::peer_lost,
                                          "node(s) " + missing + " did not join node 0 within " +
                                              std::to_string(peers_join_limit.count()) + " s"}});
            head_request.reset();
        });
        maybe_start_head();
    }

    void maybe_start_head()
    {
        if (!head_request || !gs || peers.size() + 1 < config.nnodes) {
            return;
        }
        start_head_timer.cancel();
        auto request = std::move(*head_request);
        head_request.reset();
        gs->start_head(request.spec, [this, id = request.request_id](message reply) {
            if (launcher) {
                launcher->reply(id, std::move(reply));
            }
        });
    }

    // ---- local clients ----------------------------------------------------------------------

    void accept_client()
    {
        client_acceptor.async_accept([this](const std::error_code& ec, unix_socket::socket s) {
            if (ec) {
                return;
            }
            auto c = connection::make(connection::socket_type(std::move(s)), "client");
            clients.insert(c);
            c->start_plain(
                {.on_ready = {},
                 .on_message = [this](connection& conn,
                                      envelope e) { from_client(conn, std::move(e)); },
                 .on_closed = [this](connection& conn, const std::string&) {
                     clients.erase(conn.shared_from_this());
                 }});
            accept_client();
        });
    }

    void from_client(connection& c, envelope e)
    {
        auto conn = c.shared_from_this();
        const auto id = e.id;
        if (auto* reg = std::get_if<msg::register_shm>(&e.body)) {
            registered_shm.emplace(reg->owner, reg->object);
            c.reply(id, msg::ack{});
            return;
        }
        if (state != phase::serving) {
            c.reply(id, msg::ack{{errc::no_runtime, "the runtime is shutting down"}});
            return;
        }
        if (gs) {
            gs->handle(e.body, [conn, id](message reply) { conn->reply(id, std::move(reply)); });
        } else if (primary && primary->open()) {
            primary->request(std::move(e.body), [conn, id](const envelope* reply) {
                if (reply != nullptr) {
                    conn->reply(id, reply->body);
                } else {
                    conn->reply(id, msg::ack{{errc::peer_lost, "lost node 0 (global services)"}});
                }
            });
        } else {
            c.reply(id, msg::ack{{errc::peer_lost, "not connected to node 0 (global services)"}});
        }
    }

    // ---- managed processes --------------------------------------------------------------------

    // What every managed process of this node starts from: the daemon's environment (the
    // launcher's) and the run's variables. Built once; environment_for() adds per process.
    std::map<std::string, std::string> node_environment() const
    {
        std::map<std::string, std::string> env;
        for (char** v = environ; *v != nullptr; ++v) {
            const std::string entry(*v);
            const auto eq = entry.find('=');
            if (eq != std::string::npos) {
                env[entry.substr(0, eq)] = entry.substr(eq + 1);
            }
        }
        return env;
    }

    // Where dragonx's own programs are (dragonx-ddict, ...): beside this daemon's executable.
    static const std::string& program_directory()
    {
        static const std::string dir = [] {
            std::error_code ec;
            const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
            return ec ? std::string() : self.parent_path().string();
        }();
        return dir;
    }

    std::vector<std::string> environment_for(const msg::spawn_process& r) const
    {
        auto env = base_environment;
        for (const auto& [k, v] : r.spec.env) {
            env[k] = v;
        }
        env["DRAGONX_RUN"] = config.run;
        env["DRAGONX_RUNTIME"] = socket_path;
        env["DRAGONX_AGENT"] = agent_socket_path(config.run, config.node).string();
        env["DRAGONX_NODE"] = std::to_string(config.node);
        env["DRAGONX_NNODES"] = std::to_string(config.nnodes);
        env["DRAGONX_PUID"] = std::to_string(r.puid);
        env["DRAGONX_HOSTNAME"] = config.hostname;
        env["DRAGONX_BINDIR"] = program_directory();
        layout l;
        l.gpus = r.where.gpus;
        l.vendor = static_cast<gpu_vendor>(r.where.gpu_vendor);
        if (const auto gpu = gpu_environment(l)) {
            env[gpu->first] = gpu->second;
        }
        std::vector<std::string> out;
        out.reserve(env.size());
        for (const auto& [k, v] : env) {
            out.push_back(k + "=" + v);
        }
        return out;
    }

    msg::started spawn_here(const msg::spawn_process& r)
    {
        if (state != phase::serving) {
            return {{errc::no_runtime, "the runtime is shutting down"}, r.puid, config.node};
        }
        try {
            sup.launch(launch_request{.puid = r.puid,
                                      .exe = r.spec.exe,
                                      .args = r.spec.args,
                                      .cwd = r.spec.cwd,
                                      .env = environment_for(r),
                                      .cpus = r.where.cpus,
                                      .out = r.spec.out,
                                      .err = r.spec.err});
            const bool out_piped = r.spec.out.target == stdio_target::pipe;
            const bool err_piped = r.spec.err.target == stdio_target::pipe;
            if (out_piped || err_piped) {
                piped[r.puid] = {out_piped, err_piped};
            }
            return {{}, r.puid, config.node};
        } catch (const std::exception& e) {
            return {status_of(e), r.puid, config.node};
        }
    }

    void forward_output(puid_t puid, output_stream stream, std::string_view data)
    {
        if (const auto p = piped.find(puid);
            p != piped.end() && p->second[stream == output_stream::err ? 1 : 0]) {
            const msg::output chunk{puid, config.node, stream, std::string(data)};
            if (gs) {
                gs->on_output(chunk);
            } else if (primary) {
                primary->notify(chunk);  // ahead of the exit notice, on the same connection
            }
            return;
        }
        if (launcher) {
            launcher->notify(msg::output{puid, config.node, stream, std::string(data)});
        }
    }

    void process_exited(puid_t puid, exit_status st)
    {
        const auto [first, last] = registered_shm.equal_range(puid);
        for (auto it = first; it != last; ++it) {
            ::shm_unlink(it->second.c_str());
        }
        registered_shm.erase(puid);
        piped.erase(puid);  // what its children write later goes to the launcher
        const msg::exited e{puid, st.exit_code, st.signal};
        if (gs) {
            gs->on_exited(e);
        } else if (primary) {
            primary->notify(e);
        }
    }

    // ---- teardown -----------------------------------------------------------------------------

    void teardown(int code)
    {
        if (state == phase::tearing_down || state == phase::done) {
            return;
        }
        state = phase::tearing_down;
        exit_code = code;
        heartbeat_timer.cancel();
        start_head_timer.cancel();
        std::error_code ignored;
        client_acceptor.close(ignored);
        peer_acceptor.close(ignored);
        sup.terminate_all(config.terminate_grace, [this] { finish_teardown(); });
    }

    // A killed launcher cannot remove its record, which would keep the run directory (and,
    // for `dragonx cleanup`, the run) alive. Removed once the launcher has exited; a launcher
    // that is only silent keeps it (it removes the directory itself at its end). Blocks up to
    // launcher_exit_wait: the launcher's sockets close while it is still exiting.
    void remove_record_of_dead_launcher()
    {
        const auto record = read_launcher_record(config.run);
        if (!record || record->hostname != host_name()) {
            return;
        }
        const auto until = std::chrono::steady_clock::now() + launcher_exit_wait;
        while (!has_exited(record->launcher)) {
            if (std::chrono::steady_clock::now() >= until) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ::unlink(launcher_record_path(config.run).c_str());
    }

    void finish_teardown()
    {
        for (const auto& [puid, name] : registered_shm) {
            ::shm_unlink(name.c_str());
        }
        registered_shm.clear();
        const auto removed = remove_shm_objects(node_shm_prefix(config.run, config.node));
        if (removed > 0) {
            logger().debug("removed {} shm objects of node {}", removed, config.node);
        }
        ::unlink(socket_path.c_str());
        agent.reset();  // every process of the node is gone: nobody needs it any more
        if (launcher_gone) {
            remove_record_of_dead_launcher();
        }
        std::error_code ec;
        std::filesystem::remove(run_directory(config.run), ec);  // only if empty
        for (auto& c : std::set(clients)) {
            c->close("teardown");
        }
        if (primary) {
            primary->close("teardown");
        }
        for (auto& [node, peer] : std::map(peers)) {
            peer->close("teardown");
        }
        state = phase::done;
        if (launcher && launcher->open()) {
            launcher->notify(msg::teardown_done{config.node});
            launcher->close("teardown done", /*flush=*/true);
        }
        // Stop once the last frame is out (or after a short bound if the launcher is gone).
        teardown_timer.expires_after(std::chrono::milliseconds(500));
        teardown_timer.async_wait([this](const std::error_code&) { io.stop(); });
        if (!launcher || !launcher->open()) {
            io.stop();
        }
    }
};

node_daemon::node_daemon(asio::io_context& io, daemon_config config)
    : impl_(std::make_unique<impl>(io, std::move(config)))
{
}

node_daemon::~node_daemon() = default;

void node_daemon::start() { impl_->start(); }

void node_daemon::shutdown(const std::string& why)
{
    impl_->logger().warn("node {}: {}; tearing down", impl_->config.node, why);
    impl_->teardown(1);
}

int node_daemon::exit_code() const noexcept { return impl_->exit_code; }

}  // namespace dragonx::rt::detail
