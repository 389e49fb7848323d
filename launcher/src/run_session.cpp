// run_session.cpp - the launcher's event loop: daemons, head, output, signals, teardown.
#include "run_session.hpp"

#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

#include "auth.hpp"
#include "child_process.hpp"
#include "connection.hpp"
#include "host_address.hpp"
#include "transport/ofi_library.hpp"
#include "output_printer.hpp"
#include "run_paths.hpp"
#include "wlm.hpp"

namespace dragonx::launcher {

namespace {

namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using rt::detail::connection;
namespace msg = rt::msg;

constexpr int exit_cannot_run = 127;
constexpr int exit_failure = 1;
/// How often bring-up checks that the processes starting the daemons still run.
constexpr std::chrono::milliseconds launch_check_interval{200};

void say(const std::string& text)
{
    std::cerr << "dragonx: " << text << std::endl;
}

/// What an exception says, without the ": <error code's message>" std::system_error adds to
/// a dragonx::error (our messages are written to be complete; an OS error keeps its text).
std::string message_of(const std::exception& e)
{
    std::string text = e.what();
    const auto* s = dynamic_cast<const std::system_error*>(&e);
    if (s != nullptr && s->code().category() == dragonx_category()) {
        const std::string suffix = ": " + s->code().message();
        if (text.size() > suffix.size() && text.ends_with(suffix)) {
            text.resize(text.size() - suffix.size());
        }
    }
    return text;
}

std::string find_runtime_exe()
{
    if (const char* env = std::getenv("DRAGONX_RUNTIME_EXE"); env != nullptr && *env != '\0') {
        return env;
    }
    std::error_code ec;
    const auto self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const auto beside = self.parent_path() / "dragonx-runtime";
        if (::access(beside.c_str(), X_OK) == 0) {
            return beside.string();
        }
    }
    throw dragonx::error(errc::not_found,
                         "cannot find dragonx-runtime next to the dragonx executable "
                         "(set DRAGONX_RUNTIME_EXE)");
}

class session {
public:
    session(const run_options& options, const session_limits& limits,
            const workload_manager& wlm)
        : options_(options), limits_(limits), wlm_(wlm),
          nnodes_(static_cast<std::uint32_t>(wlm.nodes().size())),
          run_(rt::detail::make_run_id()), secret_(rt::detail::make_secret()), acceptor_(io_),
          signals_(io_, SIGINT, SIGTERM, SIGHUP), bringup_timer_(io_), heartbeat_timer_(io_),
          teardown_timer_(io_), launch_check_timer_(io_), nodes_(nnodes_),
          printer_(options.label, {})
    {
    }

    int run()
    {
        try {
            serve();
        } catch (...) {
            finish();  // a failed start leaves nothing behind either
            throw;
        }
        finish();
        return exit_code_;
    }

private:
    enum class phase { booting, running, tearing_down, done };

    // What the transport agents use between nodes (-t, `dragonx config`): for nodes on
    // several hosts, libfabric where it has a provider, else TCP with a one-line notice.
    // Nodes on one host (one node, or --wlm local virtual nodes) take TCP unless -t says
    // otherwise: their traffic never leaves the host, and starting libfabric costs ~0.3 s
    // per process here (its verbs provider reads /proc/kallsyms), more than a whole run.
    [[nodiscard]] std::string choose_transport() const
    {
        if (options_.transport.empty() && !wlm_.spans_hosts()) {
            return "tcp";
        }
        const auto choice = rt::detail::choose_transport(options_.transport);
        if (!choice.notice.empty()) {
            std::cerr << "dragonx: " << choice.notice << std::endl;
        }
        return choice.ofi ? "ofi:" + choice.provider : "tcp";
    }

    // Starts the daemons and runs the event loop until the run is over.
    void serve()
    {
        transport_ = choose_transport();
        rt::detail::create_run_directory(run_);
        rt::detail::write_launcher_record(
            run_, {*rt::detail::identify_process(::getpid()), rt::detail::host_name()});
        // Daemons on other hosts need an address they can route to; a local run stays on
        // loopback.
        const bool spans = wlm_.spans_hosts();
        const std::string advertised = spans ? advertised_address(host_environment::current())
                                             : std::string("127.0.0.1");
        const tcp::endpoint here(asio::ip::make_address(spans ? "0.0.0.0" : "127.0.0.1"), 0);
        acceptor_.open(here.protocol());
        acceptor_.bind(here);
        acceptor_.listen();
        accept_daemon();
        watch_signals();

        std::error_code cwd_error;
        daemons_.start(wlm_.daemon_commands(
            {.runtime_exe = find_runtime_exe(),
             .run = run_,
             .launcher_address =
                 fmt::format("{}:{}", advertised, acceptor_.local_endpoint().port()),
             .secret_hex = rt::detail::secret_to_hex(secret_),
             .log_level = options_.log_level,
             .cwd = fs::current_path(cwd_error).string(),
             .transport = transport_}));
        log::get("launcher").debug("{} run {}: {} node(s): {}; launcher at {}:{}", wlm_.name(),
                                   run_, nnodes_, join(wlm_.nodes(), ", "), advertised,
                                   acceptor_.local_endpoint().port());
        bringup_timer_.expires_after(limits_.bringup_limit);
        bringup_timer_.async_wait([this](const std::error_code& ec) {
            if (!ec && phase_ == phase::booting) {
                fail(fmt::format("the runtime did not come up within {} ms: {}",
                                 limits_.bringup_limit.count(), missing_nodes()));
            }
        });
        schedule_heartbeat();
        check_launch_processes();
        io_.run();
    }

    struct node_slot {
        std::shared_ptr<connection> conn;
        std::optional<rt::node_info> info;
        bool torn_down = false;
    };

    [[nodiscard]] std::string node_name(std::uint32_t n) const
    {
        return fmt::format("node {} ({})", n,
                           nodes_[n].info ? nodes_[n].info->hostname : wlm_.nodes()[n]);
    }

    std::string missing_nodes() const
    {
        std::string missing;
        for (std::uint32_t n = 0; n < nnodes_; ++n) {
            if (!nodes_[n].info) {
                missing += (missing.empty() ? "" : ", ") + node_name(n);
            }
        }
        return "no word from " + missing;
    }

    // ---- daemons ------------------------------------------------------------------------------

    void accept_daemon()
    {
        acceptor_.async_accept([this](const std::error_code& ec, tcp::socket socket) {
            if (ec) {
                return;
            }
            socket.set_option(tcp::no_delay(true));
            auto c = connection::make(connection::socket_type(std::move(socket)), "daemon");
            c->start_acceptor(
                secret_,
                {.on_ready = [this](connection& conn) { daemon_ready(conn); },
                 .on_message = [this](connection& conn, rt::envelope e) { from_daemon(conn, e); },
                 .on_closed = [this](connection& conn,
                                     const std::string& why) { daemon_closed(conn, why); }});
            accept_daemon();
        });
    }

    void daemon_ready(connection& c)
    {
        const auto& hello = c.peer_hello();
        if (hello.role != "daemon" || hello.node >= nnodes_ || nodes_[hello.node].conn) {
            log::get("launcher")
                .warn("refusing a connection from role {} node {}", hello.role, hello.node);
            c.close("not a daemon of this run");
            return;
        }
        c.set_name(fmt::format("node {}", hello.node));
        nodes_[hello.node].conn = c.shared_from_this();
    }

    std::optional<std::uint32_t> node_of(const connection& c) const
    {
        for (std::uint32_t n = 0; n < nnodes_; ++n) {
            if (nodes_[n].conn.get() == &c) {
                return n;
            }
        }
        return std::nullopt;
    }

    void from_daemon(connection& c, rt::envelope& e)
    {
        const auto node = node_of(c);
        if (!node) {
            return;
        }
        std::visit(
            [&](auto& m) {
                using T = std::decay_t<decltype(m)>;
                if constexpr (std::is_same_v<T, msg::daemon_up>) {
                    daemon_up(*node, m.node);
                } else if constexpr (std::is_same_v<T, msg::output>) {
                    printer_.print(m);
                } else if constexpr (std::is_same_v<T, msg::exited>) {
                    head_exited(m);
                } else if constexpr (std::is_same_v<T, msg::node_failed>) {
                    fail(fmt::format("{}: {}", node_name(m.node), m.what));
                } else if constexpr (std::is_same_v<T, msg::teardown_done>) {
                    nodes_[*node].torn_down = true;
                    teardown_progress();
                } else if constexpr (std::is_same_v<T, msg::heartbeat>) {
                    // last_heard() is all we need
                } else {
                    log::get("launcher").warn("unexpected {} from {}", T::name, node_name(*node));
                }
            },
            e.body);
    }

    void daemon_closed(connection& c, const std::string& why)
    {
        const auto node = node_of(c);
        if (!node) {
            return;
        }
        if (phase_ == phase::tearing_down || phase_ == phase::done) {
            nodes_[*node].torn_down = true;
            teardown_progress();
            return;
        }
        fail(fmt::format("{}: the runtime daemon was lost ({})", node_name(*node), why));
    }

    void daemon_up(std::uint32_t node, const rt::node_info& info)
    {
        const std::string& expected = wlm_.nodes()[node];
        if (info.hostname != expected) {
            return fail(fmt::format("node {} came up as '{}', but {} placed node {} on '{}'",
                                    node, info.hostname, wlm_.name(), node, expected));
        }
        nodes_[node].info = info;
        all_up_check();
    }

    // While the daemons come up: the processes that start them (the daemons themselves,
    // srun, mpiexec, ssh) must not end. One that does ends the bring-up at once, with how it
    // ended, instead of at the bring-up limit.
    void check_launch_processes()
    {
        launch_check_timer_.expires_after(launch_check_interval);
        launch_check_timer_.async_wait([this](const std::error_code& ec) {
            if (ec || phase_ != phase::booting) {
                return;
            }
            const auto exited = daemons_.poll_exited();
            if (!exited.empty()) {
                const auto& first = exited.front();
                return fail(fmt::format("{} {} before every node reported ({})", first.label,
                                        describe_wait_status(first.status), missing_nodes()));
            }
            check_launch_processes();
        });
    }

    void all_up_check()
    {
        for (const auto& n : nodes_) {
            if (!n.info) {
                return;
            }
        }
        bringup_timer_.cancel();
        std::vector<rt::node_info> table;
        std::vector<std::string> names;
        for (const auto& n : nodes_) {
            table.push_back(*n.info);
            names.push_back(n.info->hostname);
        }
        printer_ = output_printer(options_.label, names);
        for (auto& n : nodes_) {
            n.conn->notify(msg::node_table{table});
        }
        phase_ = phase::running;
        rt::process_spec head;
        head.exe = options_.program;
        head.args = options_.args;
        std::error_code ec;
        head.cwd = fs::current_path(ec).string();
        nodes_[0].conn->request(msg::start_head{head},
                                [this](const rt::envelope* reply) { head_started(reply); });
    }

    void head_started(const rt::envelope* reply)
    {
        const auto* s = reply != nullptr ? std::get_if<msg::started>(&reply->body) : nullptr;
        if (s == nullptr) {
            return fail("node 0 did not answer the request to start the head program");
        }
        if (!s->result.ok()) {
            const bool cannot_run =
                s->result.code == errc::not_found || s->result.code == errc::invalid_argument;
            say(fmt::format("cannot run {}: {}", options_.program, s->result.message));
            exit_code_ = cannot_run ? exit_cannot_run : exit_failure;
            return teardown("the head did not start");
        }
        head_puid_ = s->puid;
    }

    void head_exited(const msg::exited& e)
    {
        if (e.puid != head_puid_ || phase_ != phase::running) {
            return;
        }
        exit_code_ = e.signal != 0 ? 128 + e.signal : e.exit_code;
        teardown("the head process exited");
    }

    // ---- liveness -------------------------------------------------------------------------------

    void schedule_heartbeat()
    {
        heartbeat_timer_.expires_after(limits_.heartbeat_interval);
        heartbeat_timer_.async_wait([this](const std::error_code& ec) {
            if (ec || phase_ == phase::tearing_down || phase_ == phase::done) {
                return;
            }
            const auto now = std::chrono::steady_clock::now();
            for (std::uint32_t n = 0; n < nnodes_; ++n) {
                auto& c = nodes_[n].conn;
                if (!c) {
                    continue;
                }
                if (now - c->last_heard() > limits_.daemon_silence_limit) {
                    return fail(fmt::format("{}: the runtime daemon stopped answering (no "
                                            "heartbeat for {} ms)",
                                            node_name(n), limits_.daemon_silence_limit.count()));
                }
                c->notify(msg::heartbeat{++heartbeat_seq_});
            }
            schedule_heartbeat();
        });
    }

    void watch_signals()
    {
        signals_.async_wait([this](const std::error_code& ec, int sig) {
            if (ec) {
                return;
            }
            if (sig == SIGINT && phase_ == phase::tearing_down && interrupted_) {
                say("second interrupt: forcing the teardown");
                exit_code_ = 130;
                force_ = true;
                io_.stop();
                return;
            }
            if (phase_ != phase::tearing_down && phase_ != phase::done) {
                interrupted_ = sig == SIGINT;
                exit_code_ = 128 + sig;
                say(sig == SIGINT ? "interrupted: tearing the run down (Ctrl-C again to force)"
                                  : fmt::format("got {}: tearing the run down", ::strsignal(sig)));
                teardown("interrupted");
            }
            watch_signals();
        });
    }

    // ---- ending -------------------------------------------------------------------------------

    void fail(const std::string& what)
    {
        if (phase_ == phase::tearing_down || phase_ == phase::done) {
            return;
        }
        say("run failed: " + what);
        exit_code_ = exit_failure;
        teardown(what);
    }

    void teardown(const std::string& reason)
    {
        if (phase_ == phase::tearing_down || phase_ == phase::done) {
            return;
        }
        phase_ = phase::tearing_down;
        bringup_timer_.cancel();
        launch_check_timer_.cancel();
        heartbeat_timer_.cancel();
        std::error_code ignored;
        acceptor_.close(ignored);
        for (auto& n : nodes_) {
            if (n.conn && n.conn->open()) {
                n.conn->notify(msg::teardown{reason});
            } else {
                n.torn_down = true;
            }
        }
        teardown_timer_.expires_after(limits_.teardown_limit);
        teardown_timer_.async_wait([this](const std::error_code& ec) {
            if (!ec) {
                log::get("launcher")
                    .warn("teardown did not finish within {} ms; killing",
                          limits_.teardown_limit.count());
                force_ = true;
                io_.stop();
            }
        });
        teardown_progress();
    }

    void teardown_progress()
    {
        if (phase_ != phase::tearing_down) {
            return;
        }
        for (const auto& n : nodes_) {
            if (!n.torn_down) {
                return;
            }
        }
        phase_ = phase::done;
        io_.stop();
    }

    // After the loop: whatever the daemons did, nothing of the run survives on this host.
    void finish()
    {
        if (force_ || !daemons_.reap(std::chrono::milliseconds(2000))) {
            daemons_.stop();
        }
        for (const pid_t pid : rt::detail::find_run_processes(run_)) {
            log::get("launcher").debug("killing left-over process {} of the run", pid);
            ::kill(pid, SIGKILL);
        }
        rt::detail::remove_shm_objects(rt::detail::run_shm_prefix(run_));
        std::error_code ec;
        fs::remove_all(rt::detail::run_directory(run_), ec);
    }

    const run_options& options_;
    session_limits limits_;
    const workload_manager& wlm_;
    std::uint32_t nnodes_;
    std::string transport_ = "tcp";  // see choose_transport()
    std::string run_;
    rt::detail::run_secret secret_;
    asio::io_context io_;
    tcp::acceptor acceptor_;
    asio::signal_set signals_;
    asio::steady_timer bringup_timer_;
    asio::steady_timer heartbeat_timer_;
    asio::steady_timer teardown_timer_;
    asio::steady_timer launch_check_timer_;
    std::vector<node_slot> nodes_;
    output_printer printer_;
    child_set daemons_;  // the daemons, or the processes that start them
    phase phase_ = phase::booting;
    rt::puid_t head_puid_ = 0;
    std::uint64_t heartbeat_seq_ = 0;
    int exit_code_ = exit_failure;
    bool interrupted_ = false;
    bool force_ = false;
};

} // namespace

int run_session(const run_options& options, const session_limits& limits)
{
    std::unique_ptr<workload_manager> wlm;
    try {
        wlm = make_workload_manager(options, host_environment::current());
    } catch (const std::exception& e) {
        say(message_of(e));
        return exit_failure;
    }
    try {
        // PROG is resolved where it runs, by node 0's process supervisor (PATH, the
        // launcher's working directory); a program that cannot run comes back as exit 127.
        session s(options, limits, *wlm);
        return s.run();
    } catch (const std::exception& e) {
        say("run failed: " + message_of(e));
        return exit_failure;
    }
}

} // namespace dragonx::launcher
