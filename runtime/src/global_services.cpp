// global_services.cpp - process table, placement, joins, groups and key-value registry of a run.
#include "global_services.hpp"

#include <algorithm>
#include <csignal>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

#include "pmi1_server.hpp"

namespace dragonx::rt::detail {

namespace {

/// The first puid; puids count up from here (as in the reference, they do not look like pids).
constexpr puid_t first_puid = puid_t{1} << 32;
/// How long walltime-stopped members get between SIGTERM and SIGKILL.
constexpr std::chrono::seconds walltime_grace{2};

status error_status(errc code, std::string what) { return {code, std::move(what)}; }

node_resources resources_of(const node_info& n)
{
    return {n.index, n.hostname, n.cpus, n.gpus, static_cast<gpu_vendor>(n.gpu_vendor),
            n.memory_bytes};
}

std::vector<node_resources> resources_of(const std::vector<node_info>& nodes)
{
    std::vector<node_resources> out;
    out.reserve(nodes.size());
    for (const auto& n : nodes) {
        out.push_back(resources_of(n));
    }
    return out;
}

layout_spec to_layout_spec(const layout& l)
{
    return {l.node, l.cpus, l.gpus, static_cast<std::uint8_t>(l.vendor)};
}

std::unique_ptr<asio::steady_timer> make_timer(asio::io_context& io, std::int64_t timeout_ms)
{
    if (timeout_ms < 0) {
        return nullptr;
    }
    auto t = std::make_unique<asio::steady_timer>(io);
    t->expires_after(std::chrono::milliseconds(timeout_ms));
    return t;
}

}  // namespace

struct global_services::impl {
    struct process_record {
        process_info info;
        puid_t parent = 0;
        std::uint64_t group = 0;        // 0: not a group member
        std::size_t member = 0;         // index of its template in the group
        int rank = -1;                  // its rank in the group's PMI job, if it has one
        bool head = false;
        bool stopped_by_group = false;  // a group signal or the walltime ended it
    };

    struct process_join {
        std::vector<puid_t> puids;
        bool all = true;
        responder reply;
        std::unique_ptr<asio::steady_timer> timer;
    };

    struct kv_waiter {
        std::string key;
        responder reply;
        std::unique_ptr<asio::steady_timer> timer;
    };

    struct group_join {
        responder reply;
        std::unique_ptr<asio::steady_timer> timer;
    };

    struct group_record {
        std::uint64_t id = 0;
        msg::group_create spec;
        bool started = false;
        bool restart = false;
        std::size_t starting = 0;  // spawns asked for and not answered yet
        std::set<puid_t> running;
        std::vector<process_info> exited;
        std::vector<process_info> errors;
        bool walltime_expired = false;
        std::unique_ptr<asio::steady_timer> walltime_timer;
        std::map<std::uint64_t, group_join> joins;  // by waiter id
        std::unique_ptr<pmi1_server> pmi;           // pmi_mode::pmi1, once started
        bool ranks_killed = false;                  // kill_other_ranks has run
    };

    impl(asio::io_context& io_context, std::vector<node_info> node_table, global_hooks h)
        : io(io_context),
          nodes(std::move(node_table)),
          evaluator(resources_of(nodes)),
          hooks(std::move(h))
    {
    }

    asio::io_context& io;
    std::vector<node_info> nodes;
    placement_evaluator evaluator;
    global_hooks hooks;
    puid_t next_puid = first_puid;
    std::uint64_t next_group = 1;
    std::unordered_map<puid_t, process_record> processes;
    // Waiters by id: a timer's handler finds its waiter by id, so a waiter answered (and
    // erased) while its timer's completion was already queued is simply not found.
    std::uint64_t next_waiter = 1;
    std::map<std::uint64_t, process_join> process_joins;
    std::map<std::string, std::string> kv;
    std::map<std::uint64_t, kv_waiter> kv_waiters;
    std::map<std::uint64_t, group_record> groups;

    // Piped output not read yet, by puid and stream (0 stdout, 1 stderr), and its readers.
    struct output_reader {
        puid_t puid = 0;
        int stream = 0;
        responder reply;
        std::unique_ptr<asio::steady_timer> timer;
    };
    std::map<std::pair<puid_t, int>, std::string> piped_output;
    std::map<std::uint64_t, output_reader> output_readers;
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // guards late callbacks

    // ---- starting processes -----------------------------------------------------------------

    // Records a pending process placed at `where` and asks its node to start it. `done` gets
    // the node's answer.
    void spawn(const process_spec& spec, const layout& where, process_record record,
               std::function<void(msg::started)> done)
    {
        const puid_t puid = next_puid++;
        record.info = {puid, where.node, process_state::pending, 0, 0};
        processes.emplace(puid, record);
        std::weak_ptr<bool> guard = alive;
        hooks.spawn(msg::spawn_process{puid, spec, to_layout_spec(where)},
                    [this, guard, puid, done = std::move(done)](msg::started s) {
                        if (guard.expired()) {
                            return;
                        }
                        s.puid = puid;
                        auto it = processes.find(puid);
                        if (it != processes.end()) {
                            if (!s.result.ok()) {
                                processes.erase(it);
                            } else if (it->second.info.state == process_state::pending) {
                                it->second.info.state = process_state::running;
                            }
                        }
                        done(std::move(s));
                    });
    }

    // Places one request and starts it; errors (bad policy, unknown host) go to `done`.
    void place_and_spawn(const process_spec& spec, const policy& request, process_record record,
                         std::function<void(msg::started)> done)
    {
        layout where;
        try {
            where = evaluator.evaluate(request);
        } catch (const dragonx::error& e) {
            done(msg::started{error_status(static_cast<errc>(e.code().value()), e.what()), 0, 0});
            return;
        }
        spawn(spec, where, std::move(record), std::move(done));
    }

    // ---- exits ----------------------------------------------------------------------------------

    void exited(const msg::exited& e)
    {
        auto it = processes.find(e.puid);
        if (it == processes.end()) {
            log::get("runtime").debug("exit of unknown puid {} ignored", e.puid);
            return;
        }
        auto& rec = it->second;
        if (rec.info.state == process_state::exited) {
            return;
        }
        rec.info.state = process_state::exited;
        rec.info.signal = e.signal;
        rec.info.exit_code = e.signal != 0 ? 128 + e.signal : e.exit_code;
        if (rec.head && hooks.head_exited) {
            hooks.head_exited(e);
        }
        if (rec.group != 0) {
            member_exited(rec);
        }
        check_process_joins();
        serve_output_readers(e.puid);
    }

    void member_exited(const process_record& rec)
    {
        auto g = groups.find(rec.group);
        if (g == groups.end()) {
            return;  // closed
        }
        auto& group = g->second;
        group.running.erase(rec.info.puid);
        group.exited.push_back(rec.info);
        if (rec.info.exit_code != 0 && !rec.stopped_by_group) {
            group.errors.push_back(rec.info);
            if (group.pmi && !group.spec.ignore_error_on_exit &&
                !group.pmi->finalized(rec.rank)) {
                kill_other_ranks(group, rec.rank,
                                 fmt::format("rank {} (puid {}) exited with code {}", rec.rank,
                                             rec.info.puid, rec.info.exit_code));
            }
        }
        if (group.pmi && rec.rank >= 0) {
            group.pmi->rank_exited(rec.rank);
        }
        if (group.restart) {
            restart_member(group, rec.member);
        }
        check_group_joins(group);
    }

    void restart_member(group_record& group, std::size_t member)
    {
        const auto& m = group.spec.members.at(member);
        ++group.starting;
        process_record rec;
        rec.parent = group.spec.parent;
        rec.group = group.id;
        rec.member = member;
        const std::uint64_t id = group.id;
        place_and_spawn(m.spec, effective_policy(group.spec, m.spec), rec,
                        [this, id](msg::started s) { member_started(id, s); });
    }

    void member_started(std::uint64_t id, const msg::started& s)
    {
        auto g = groups.find(id);
        if (g == groups.end()) {
            return;
        }
        auto& group = g->second;
        --group.starting;
        if (s.result.ok()) {
            const auto rec = processes.find(s.puid);
            if (rec != processes.end() && rec->second.info.state != process_state::exited) {
                group.running.insert(s.puid);
            }
        } else {
            log::get("runtime").warn("group {}: a member did not start: {}", id,
                                     s.result.message);
            group.errors.push_back({0, 0, process_state::exited, 127, 0});
        }
        check_group_joins(group);
    }

    static policy effective_policy(const msg::group_create& g, const process_spec& member)
    {
        return merge(g.where.value_or(policy{}), member.where.value_or(policy{}));
    }

    // ---- joins ----------------------------------------------------------------------------------

    std::vector<process_info> states_of(const std::vector<puid_t>& puids) const
    {
        std::vector<process_info> out;
        out.reserve(puids.size());
        for (const auto p : puids) {
            const auto it = processes.find(p);
            out.push_back(it != processes.end() ? it->second.info : process_info{.puid = p});
        }
        return out;
    }

    bool join_satisfied(const process_join& j) const
    {
        std::size_t done = 0;
        for (const auto p : j.puids) {
            const auto it = processes.find(p);
            if (it != processes.end() && it->second.info.state == process_state::exited) {
                ++done;
            }
        }
        return j.all ? done == j.puids.size() : done > 0;
    }

    void check_process_joins()
    {
        for (auto it = process_joins.begin(); it != process_joins.end();) {
            if (join_satisfied(it->second)) {
                auto reply = std::move(it->second.reply);
                auto puids = std::move(it->second.puids);
                it = process_joins.erase(it);  // cancels the timer
                reply(msg::process_states{{}, states_of(puids)});
            } else {
                ++it;
            }
        }
    }

    void join(const msg::join_processes& r, responder reply)
    {
        for (const auto p : r.puids) {
            if (!processes.contains(p)) {
                reply(msg::process_states{
                    error_status(errc::not_found, fmt::format("no process with puid {}", p)), {}});
                return;
            }
        }
        process_join j{r.puids, r.all, std::move(reply), make_timer(io, r.timeout_ms)};
        if (join_satisfied(j) || r.puids.empty()) {
            j.reply(msg::process_states{{}, states_of(j.puids)});
            return;
        }
        const auto id = next_waiter++;
        auto& waiting = process_joins.emplace(id, std::move(j)).first->second;
        if (waiting.timer) {
            waiting.timer->async_wait([this, id](const std::error_code&) {
                const auto it = process_joins.find(id);
                if (it == process_joins.end()) {
                    return;  // answered already
                }
                auto answer = std::move(it->second.reply);
                auto puids = std::move(it->second.puids);
                process_joins.erase(it);
                answer(msg::process_states{error_status(errc::timeout, "join timed out"),
                                           states_of(puids)});
            });
        }
    }

    // ---- groups ---------------------------------------------------------------------------------

    msg::group_state state_of(const group_record& g, status result = {}) const
    {
        return {std::move(result),
                g.id,
                std::vector<puid_t>(g.running.begin(), g.running.end()),
                g.exited,
                g.errors,
                g.walltime_expired};
    }

    static bool group_idle(const group_record& g) { return g.running.empty() && g.starting == 0; }

    void check_group_joins(group_record& g)
    {
        if (!group_idle(g)) {
            return;
        }
        auto joins = std::move(g.joins);
        g.joins.clear();
        for (auto& [id, j] : joins) {
            j.reply(state_of(g));
        }
    }

    group_record* find_group(std::uint64_t id, const responder& reply)
    {
        auto it = groups.find(id);
        if (it == groups.end()) {
            reply(msg::group_state{error_status(errc::not_found, fmt::format("no group {}", id)),
                                   id});
            return nullptr;
        }
        return &it->second;
    }

    void create_group(const msg::group_create& r, const responder& reply)
    {
        std::size_t total = 0;
        for (const auto& m : r.members) {
            if (m.count == 0 || m.spec.exe.empty()) {
                reply(msg::group_state{error_status(errc::invalid_argument,
                                                    "a group member needs a program and a "
                                                    "count of at least 1")});
                return;
            }
            total += m.count;
        }
        if (total == 0) {
            reply(msg::group_state{
                error_status(errc::invalid_argument, "a process group needs members")});
            return;
        }
        if (r.pmi != msg::pmi_mode::none && r.pmi != msg::pmi_mode::pmi1) {
            reply(msg::group_state{error_status(
                errc::invalid_argument,
                fmt::format("unknown pmi mode {} (only pmi1, MPICH's simple PMI, is supported)",
                            static_cast<int>(r.pmi)))});
            return;
        }
        if (r.pmi == msg::pmi_mode::pmi1 && r.restart) {
            reply(msg::group_state{error_status(
                errc::invalid_argument,
                "a pmi1 group cannot restart its members: a new process cannot join a running "
                "MPI job")});
            return;
        }
        group_record g;
        g.id = next_group++;
        g.spec = r;
        g.restart = r.restart;
        const auto id = g.id;
        groups.emplace(id, std::move(g));
        reply(state_of(groups.at(id)));
    }

    void start_group(group_record& g, const responder& reply)
    {
        if (g.started) {
            reply(state_of(g, error_status(errc::invalid_argument,
                                           fmt::format("group {} was started already", g.id))));
            return;
        }
        std::vector<policy> requests;
        std::vector<std::size_t> member_of;
        for (std::size_t i = 0; i < g.spec.members.size(); ++i) {
            for (std::uint32_t n = 0; n < g.spec.members[i].count; ++n) {
                requests.push_back(effective_policy(g.spec, g.spec.members[i].spec));
                member_of.push_back(i);
            }
        }
        std::vector<layout> layouts;
        try {
            layouts = evaluator.evaluate(requests);
        } catch (const dragonx::error& e) {
            reply(state_of(g, error_status(static_cast<errc>(e.code().value()), e.what())));
            return;
        }
        if (g.spec.pmi == msg::pmi_mode::pmi1) {
            try {
                serve_pmi1(g, layouts);
            } catch (const std::exception& e) {
                reply(state_of(g, error_status(errc::invalid_argument,
                                               fmt::format("group {}: cannot serve PMI-1: {}",
                                                           g.id, e.what()))));
                return;
            }
        }
        g.started = true;
        g.starting += layouts.size();
        // One reply once every member has answered: the first failure, if any.
        struct start_tally {
            std::size_t left;
            status first_error;
            responder reply;
        };
        auto tally = std::make_shared<start_tally>(start_tally{layouts.size(), {}, reply});
        const auto locals = g.pmi ? pmi1_local_ranks(nodes_of(layouts))
                                  : std::vector<pmi1_local_rank>{};
        const auto id = g.id;
        for (std::size_t k = 0; k < layouts.size(); ++k) {
            process_record rec;
            rec.parent = g.spec.parent;
            rec.group = id;
            rec.member = member_of[k];
            auto spec = g.spec.members[member_of[k]].spec;
            if (g.pmi) {
                rec.rank = static_cast<int>(k);
                add_pmi1_env(spec, g, k, layouts.size(), locals.at(k));
            }
            spawn(spec, layouts[k], rec,
                  [this, id, tally, rank = rec.rank](msg::started s) {
                      if (!s.result.ok() && tally->first_error.ok()) {
                          tally->first_error = s.result;
                      }
                      member_started(id, s);
                      if (!s.result.ok() && rank >= 0) {
                          rank_never_started(id, rank);
                      }
                      if (--tally->left == 0) {
                          auto it = groups.find(id);
                          if (it != groups.end()) {
                              tally->reply(state_of(it->second, tally->first_error));
                          } else {
                              tally->reply(msg::group_state{tally->first_error, id});
                          }
                      }
                  });
        }
        if (g.spec.walltime_ms > 0) {
            auto& group = groups.at(id);
            group.walltime_timer = std::make_unique<asio::steady_timer>(io);
            group.walltime_timer->expires_after(std::chrono::milliseconds(g.spec.walltime_ms));
            group.walltime_timer->async_wait([this, id](const std::error_code& ec) {
                if (!ec) {
                    walltime_expired(id);
                }
            });
        }
    }

    static std::vector<std::uint32_t> nodes_of(const std::vector<layout>& layouts)
    {
        std::vector<std::uint32_t> out;
        out.reserve(layouts.size());
        for (const auto& l : layouts) {
            out.push_back(l.node);
        }
        return out;
    }

    // Starts the PMI-1 server of `g`, whose rank k runs at layouts[k]. Throws if it cannot.
    void serve_pmi1(group_record& g, const std::vector<layout>& layouts)
    {
        const auto id = g.id;
        pmi1_job_hooks pmi_hooks;
        pmi_hooks.aborted = [this, id](int rank, int exit_code) {
            auto it = groups.find(id);
            if (it == groups.end()) {
                return;
            }
            // MPICH's PMI_Abort waits for the process manager to end the process, as
            // mpiexec does: the rank is killed, and counts as failed (exit code 137).
            auto& group = it->second;
            for (const auto p : group.running) {
                const auto& rec = processes.at(p);
                if (rec.rank == rank && rec.info.state != process_state::exited) {
                    hooks.signal(rec.info.node, p, SIGKILL);
                }
            }
            const auto why = fmt::format("rank {} called MPI_Abort (exit code {})", rank,
                                         exit_code);
            if (group.spec.ignore_error_on_exit) {
                log::get("runtime").warn("group {}: {}: it is killed", id, why);
            } else {
                kill_other_ranks(group, rank, why);
            }
        };
        // The primary node (nodes[0]) runs global services; its address is where the
        // daemons reach it, so every node's ranks can reach the PMI port there too.
        g.pmi = std::make_unique<pmi1_server>(io, nodes.at(0).address,
                                              fmt::format("kvs_dragonx_group_{}", id),
                                              nodes_of(layouts), std::move(pmi_hooks));
        log::get("runtime").debug("group {}: PMI-1 for {} ranks at {}", id, layouts.size(),
                                  g.pmi->port_string());
    }

    // What MPICH's simple PMI client and hydra-aware code read, for rank k of `g` (of
    // `size` ranks, `local` its place on its node).
    static void add_pmi1_env(process_spec& spec, const group_record& g, std::size_t k,
                             std::size_t size, pmi1_local_rank local)
    {
        const auto rank = std::to_string(k);
        spec.env["PMI_PORT"] = g.pmi->port_string();
        spec.env["PMI_ID"] = rank;
        spec.env["PMI_RANK"] = rank;
        spec.env["PMI_SIZE"] = std::to_string(size);
        spec.env["MPI_LOCALRANKID"] = std::to_string(local.index);
        spec.env["MPI_LOCALNRANKS"] = std::to_string(local.count);
    }

    // As mpiexec does when a rank fails inside the MPI job: SIGKILL every other running rank
    // of `g` that has not finalized (those are done with MPI and exit on their own). They
    // are stopped by the group, so only the failed rank counts as an error.
    void kill_other_ranks(group_record& g, int failed_rank, const std::string& why)
    {
        if (g.ranks_killed) {
            return;  // the ranks still running now were signalled then
        }
        g.ranks_killed = true;
        bool any = false;
        for (const auto p : g.running) {
            auto& rec = processes.at(p);
            if (rec.rank != failed_rank && rec.info.state != process_state::exited &&
                !g.pmi->finalized(rec.rank)) {
                rec.stopped_by_group = true;
                hooks.signal(rec.info.node, p, SIGKILL);
                any = true;
            }
        }
        if (any) {
            log::get("runtime").warn("group {}: {}: killing the other ranks", g.id, why);
        }
    }

    // A rank that could not be started will never join its MPI job: the job fails, so that
    // the ranks waiting for it in a PMI barrier are released.
    void rank_never_started(std::uint64_t id, int rank)
    {
        auto it = groups.find(id);
        if (it != groups.end() && it->second.pmi) {
            it->second.pmi->rank_exited(rank);
        }
    }

    void signal_group(group_record& g, int sig)
    {
        for (const auto p : g.running) {
            auto& rec = processes.at(p);
            rec.stopped_by_group = true;
            hooks.signal(rec.info.node, p, sig);
        }
    }

    void walltime_expired(std::uint64_t id)
    {
        auto it = groups.find(id);
        if (it == groups.end() || group_idle(it->second)) {
            return;
        }
        auto& g = it->second;
        log::get("runtime").info("group {}: walltime of {} ms reached, stopping it", id,
                                 g.spec.walltime_ms);
        g.walltime_expired = true;
        g.restart = false;
        signal_group(g, SIGTERM);
        g.walltime_timer->expires_after(walltime_grace);
        g.walltime_timer->async_wait([this, id](const std::error_code& ec) {
            auto again = groups.find(id);
            if (!ec && again != groups.end()) {
                signal_group(again->second, SIGKILL);
            }
        });
    }

    void group_request(const msg::group_request& r, const responder& reply)
    {
        auto* g = find_group(r.group, reply);
        if (g == nullptr) {
            return;
        }
        switch (r.op) {
        case msg::group_op::start:
            start_group(*g, reply);
            return;
        case msg::group_op::query:
            reply(state_of(*g));
            return;
        case msg::group_op::stop_restart:
            g->restart = false;
            reply(state_of(*g));
            return;
        case msg::group_op::close: {
            g->restart = false;
            signal_group(*g, SIGKILL);
            auto final_state = state_of(*g);
            for (auto& [id, j] : g->joins) {
                j.reply(state_of(*g, error_status(errc::not_found, "the group was closed")));
            }
            groups.erase(r.group);
            reply(std::move(final_state));
            return;
        }
        }
        reply(state_of(*g, error_status(errc::invalid_argument, "unknown group operation")));
    }

    void group_join_request(const msg::group_join& r, responder reply)
    {
        auto* g = find_group(r.group, reply);
        if (g == nullptr) {
            return;
        }
        if (group_idle(*g)) {
            reply(state_of(*g));
            return;
        }
        const auto waiter = next_waiter++;
        auto& waiting =
            g->joins.emplace(waiter, group_join{std::move(reply), make_timer(io, r.timeout_ms)})
                .first->second;
        if (waiting.timer) {
            const auto id = g->id;
            waiting.timer->async_wait([this, id, waiter](const std::error_code&) {
                auto it = groups.find(id);
                if (it == groups.end()) {
                    return;
                }
                auto pos = it->second.joins.find(waiter);
                if (pos == it->second.joins.end()) {
                    return;
                }
                auto reply_to = std::move(pos->second.reply);
                it->second.joins.erase(pos);
                reply_to(state_of(it->second, error_status(errc::timeout, "group join timed out")));
            });
        }
    }

    // ---- key-value registry ---------------------------------------------------------------------

    void kv_put(const msg::kv_put& r, const responder& reply)
    {
        kv[r.key] = r.value;
        for (auto it = kv_waiters.begin(); it != kv_waiters.end();) {
            if (it->second.key == r.key) {
                auto waiter = std::move(it->second.reply);
                it = kv_waiters.erase(it);
                waiter(msg::kv_value{{}, r.value});
            } else {
                ++it;
            }
        }
        reply(msg::ack{});
    }

    void kv_get(const msg::kv_get& r, responder reply)
    {
        if (const auto it = kv.find(r.key); it != kv.end()) {
            reply(msg::kv_value{{}, it->second});
            return;
        }
        if (r.timeout_ms == 0) {
            reply(msg::kv_value{error_status(errc::key_not_found, "no key " + r.key), {}});
            return;
        }
        const auto id = next_waiter++;
        auto& waiting =
            kv_waiters.emplace(id, kv_waiter{r.key, std::move(reply), make_timer(io, r.timeout_ms)})
                .first->second;
        if (waiting.timer) {
            waiting.timer->async_wait([this, id](const std::error_code&) {
                const auto it = kv_waiters.find(id);
                if (it == kv_waiters.end()) {
                    return;
                }
                auto waiter = std::move(it->second.reply);
                const auto key = it->second.key;
                kv_waiters.erase(it);
                waiter(msg::kv_value{error_status(errc::timeout, "no key " + key + " in time"),
                                     {}});
            });
        }
    }

    // ---- piped output ---------------------------------------------------------------------------

    static int stream_index(output_stream s) { return s == output_stream::err ? 1 : 0; }

    void output(const msg::output& chunk)
    {
        piped_output[{chunk.puid, stream_index(chunk.stream)}] += chunk.data;
        serve_output_readers(chunk.puid);
    }

    // The answer for a reader of (puid, stream) now, or nullopt if it must wait.
    std::optional<msg::output_data> output_for(puid_t puid, int stream)
    {
        const auto key = std::make_pair(puid, stream);
        if (auto it = piped_output.find(key); it != piped_output.end() && !it->second.empty()) {
            msg::output_data d{{}, std::move(it->second), false};
            piped_output.erase(it);
            return d;
        }
        const auto rec = processes.find(puid);
        if (rec == processes.end() || rec->second.info.state == process_state::exited) {
            return msg::output_data{{}, {}, true};
        }
        return std::nullopt;
    }

    void serve_output_readers(puid_t puid)
    {
        for (auto it = output_readers.begin(); it != output_readers.end();) {
            if (it->second.puid != puid) {
                ++it;
                continue;
            }
            auto answer = output_for(puid, it->second.stream);
            if (!answer) {
                ++it;
                continue;
            }
            auto reply = std::move(it->second.reply);
            it = output_readers.erase(it);
            reply(std::move(*answer));
        }
    }

    void read_output(const msg::read_output& r, responder reply)
    {
        if (!processes.contains(r.puid)) {
            reply(msg::output_data{
                error_status(errc::not_found, fmt::format("no process with puid {}", r.puid))});
            return;
        }
        const int stream = stream_index(r.stream);
        if (auto answer = output_for(r.puid, stream)) {
            reply(std::move(*answer));
            return;
        }
        if (r.timeout_ms == 0) {
            reply(msg::output_data{error_status(errc::timeout, "no output yet")});
            return;
        }
        const auto id = next_waiter++;
        auto& waiting = output_readers
                            .emplace(id, output_reader{r.puid, stream, std::move(reply),
                                                       make_timer(io, r.timeout_ms)})
                            .first->second;
        if (waiting.timer) {
            waiting.timer->async_wait([this, id](const std::error_code&) {
                const auto it = output_readers.find(id);
                if (it == output_readers.end()) {
                    return;
                }
                auto answer = std::move(it->second.reply);
                output_readers.erase(it);
                answer(msg::output_data{error_status(errc::timeout, "no output in time")});
            });
        }
    }

    // ---- requests -------------------------------------------------------------------------------

    void create(const msg::create_process& r, const responder& reply)
    {
        process_record rec;
        rec.parent = r.parent;
        place_and_spawn(r.spec, r.spec.where.value_or(policy{}), rec,
                        [reply](msg::started s) { reply(std::move(s)); });
    }

    void signal(const msg::signal_process& r, const responder& reply)
    {
        const auto it = processes.find(r.puid);
        if (it == processes.end()) {
            reply(msg::ack{error_status(errc::not_found,
                                        fmt::format("no process with puid {}", r.puid))});
            return;
        }
        if (it->second.info.state == process_state::running) {
            hooks.signal(it->second.info.node, r.puid, r.signal);
        }
        reply(msg::ack{});  // signalling a process that has exited is not an error
    }

    void query(const msg::query_processes& r, const responder& reply)
    {
        for (const auto p : r.puids) {
            if (!processes.contains(p)) {
                reply(msg::process_states{
                    error_status(errc::not_found, fmt::format("no process with puid {}", p)), {}});
                return;
            }
        }
        reply(msg::process_states{{}, states_of(r.puids)});
    }
};

global_services::global_services(asio::io_context& io, std::vector<node_info> nodes,
                                 global_hooks hooks)
    : impl_(std::make_unique<impl>(io, std::move(nodes), std::move(hooks)))
{
}

global_services::~global_services() = default;

void global_services::handle(const message& request, responder reply)
{
    auto& s = *impl_;
    std::visit(
        [&](const auto& r) {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, msg::create_process>) {
                s.create(r, reply);
            } else if constexpr (std::is_same_v<T, msg::signal_process>) {
                s.signal(r, reply);
            } else if constexpr (std::is_same_v<T, msg::join_processes>) {
                s.join(r, std::move(reply));
            } else if constexpr (std::is_same_v<T, msg::query_processes>) {
                s.query(r, reply);
            } else if constexpr (std::is_same_v<T, msg::get_nodes>) {
                reply(msg::node_table{s.nodes});
            } else if constexpr (std::is_same_v<T, msg::kv_put>) {
                s.kv_put(r, reply);
            } else if constexpr (std::is_same_v<T, msg::kv_get>) {
                s.kv_get(r, std::move(reply));
            } else if constexpr (std::is_same_v<T, msg::group_create>) {
                s.create_group(r, reply);
            } else if constexpr (std::is_same_v<T, msg::group_request>) {
                s.group_request(r, reply);
            } else if constexpr (std::is_same_v<T, msg::group_signal>) {
                auto* g = s.find_group(r.group, reply);
                if (g != nullptr) {
                    if (r.stop_restart) {
                        g->restart = false;
                    }
                    s.signal_group(*g, r.signal);
                    reply(s.state_of(*g));
                }
            } else if constexpr (std::is_same_v<T, msg::group_join>) {
                s.group_join_request(r, std::move(reply));
            } else if constexpr (std::is_same_v<T, msg::read_output>) {
                s.read_output(r, std::move(reply));
            } else {
                reply(msg::ack{error_status(
                    errc::invalid_argument,
                    fmt::format("{} is not a request for global services", T::name))});
            }
        },
        request);
}

void global_services::start_head(const process_spec& spec, responder reply)
{
    impl::process_record rec;
    rec.head = true;
    // The head runs on the primary node unless its policy says otherwise; a pinned placement
    // leaves the round-robin cursor where it is, so the head's first child goes to node 0.
    policy on_primary;
    on_primary.placement_kind = placement::host_id;
    on_primary.host_id = 0;
    impl_->place_and_spawn(spec, merge(on_primary, spec.where.value_or(policy{})), rec,
                           [reply](msg::started s) { reply(std::move(s)); });
}

void global_services::on_exited(const msg::exited& e) { impl_->exited(e); }

void global_services::on_output(const msg::output& chunk) { impl_->output(chunk); }

void global_services::on_node_lost(std::uint32_t node)
{
    std::vector<puid_t> lost;
    for (const auto& [puid, rec] : impl_->processes) {
        if (rec.info.node == node && rec.info.state != process_state::exited) {
            lost.push_back(puid);
        }
    }
    for (const auto p : lost) {
        impl_->exited(msg::exited{p, 0, SIGKILL});
    }
}

}  // namespace dragonx::rt::detail
