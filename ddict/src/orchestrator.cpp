// orchestrator.cpp - see orchestrator.hpp.
#include "orchestrator.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/encoding.hpp>
#include <dragonx/runtime/runtime.hpp>
#include <dragonx/runtime/system.hpp>

#include "persister.hpp"

namespace dragonx::dict {

namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr auto bring_up_limit = 90s;
constexpr auto manager_exit_patience = 10s;
constexpr auto reply_patience = 5s;
constexpr auto keep_patience = 60s;  // for every manager to report its kept state

// The restart record: codec(restart_record) in a checked file.
void write_record(const std::string& path, const restart_record& record)
{
    write_checked_file(path, encode(record));
}

restart_record read_record(const std::string& path)
{
    try {
        return decode<restart_record>(read_checked_file(path), "ddict restart record");
    } catch (const error& e) {
        if (e.is(errc::not_found)) {
            throw_error(errc::not_found,
                        fmt::format("no restart record {}: No such file or directory (was the "
                                    "dictionary destroyed with allow_restart?)",
                                    path));
        }
        throw;
    }
}

}  // namespace

orchestrator::orchestrator(server_options options, std::string self_exe)
    : options_(std::move(options)), self_exe_(std::move(self_exe))
{
    pool_ = pool::pool::create({.size = std::uint64_t{4} << 20});
    runtime::current().register_shm(pool_.name());
    requests_ = channels::channel::create(pool_, {.capacity = 256, .block_size = 4096});
}

std::vector<std::optional<kept_manager>> orchestrator::plan_restart()
{
    const auto path = restart_record_path(options_);
    const auto record = read_record(path);
    const auto n = record.options.managers;
    if (record.managers.size() != n) {
        throw_error(errc::corrupt_file, "restart record " + path + ": manager count mismatch");
    }
    // The record's options win (a restart needs no placement); this create's timeout stays.
    const auto timeout_us = options_.timeout_us;
    options_ = record.options;
    options_.timeout_us = timeout_us;
    options_.restart = false;
    options_.restore_from = no_checkpoint;
    options_.read_only = false;

    const auto sys = system::current();
    std::set<std::string> used;
    for (const auto& k : record.managers) {
        used.insert(k.hostname);
    }
    // Nodes for managers whose node is gone: those the dictionary did not use first.
    std::vector<const node_info*> spare;
    for (const auto& node : sys.nodes()) {
        if (!used.contains(node.hostname)) {
            spare.push_back(&node);
        }
    }
    if (spare.empty()) {
        for (const auto& node : sys.nodes()) {
            spare.push_back(&node);
        }
    }
    std::vector<std::optional<kept_manager>> kept(n);
    std::size_t next_spare = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        const auto& k = record.managers[i];
        const node_info* home = nullptr;
        for (const auto& node : sys.nodes()) {
            if (node.hostname == k.hostname) {
                home = &node;
            }
        }
        if (home != nullptr) {
            options_.manager_policies[i] =
                policy{.placement_kind = placement::host_id, .host_id = home->host_id};
            kept[i] = k;
            continue;
        }
        const node_info* other = spare[next_spare++ % spare.size()];
        spdlog::warn("ddict {}: manager {}'s node {} is not in this run: it comes back empty "
                     "on {}",
                     options_.name, i, k.hostname, other->hostname);
        options_.manager_policies[i] =
            policy{.placement_kind = placement::host_id, .host_id = other->host_id};
        empty_.push_back(i);
        // Its kept pool is lost with its node; where this host still sees it (virtual
        // nodes), remove it.
        ::unlink(("/dev/shm" + k.pool).c_str());
        ::unlink(("/dev/shm" + k.pool + ".state").c_str());
    }
    return kept;
}

bool orchestrator::bring_up(const std::string& creator_reply)
{
    std::string failure;
    errc failure_code = errc::process_failed;
    std::vector<std::optional<kept_manager>> kept;
    try {
        if (options_.restart) {
            kept = plan_restart();
        } else if (std::filesystem::exists(restart_record_path(options_))) {
            throw_error(errc::already_exists,
                        fmt::format("ddict {} was destroyed with allow_restart and its data is "
                                    "kept (restart record {}): create it with restart = true, "
                                    "or restart and destroy it to drop the data",
                                    options_.name, restart_record_path(options_)));
        }
        if (options_.restore_from != no_checkpoint && !options_.read_only &&
            options_.persister != 0) {
            persister::remove_all_newer_than(options_.persist_path, options_.name,
                                             options_.restore_from);
        }
    } catch (const error& e) {
        failure = fmt::format("ddict {}: {}", options_.name, e.what());
        failure_code = status_of(e, errc::process_failed);
        answer(creator_reply, 1, failure_code, failure, {});
        return false;
    }
    kept.resize(options_.managers);
    const auto n = options_.managers;
    managers_.resize(n);
    std::vector<bool> ready(n, false);
    try {
        const auto encoded = base64url_encode(encode(options_));
        for (std::uint32_t i = 0; i < n; ++i) {
            process_template t;
            t.exe = self_exe_;
            t.args = {"manager", std::to_string(i), encoded, requests_.descriptor()};
            if (kept[i]) {
                t.args.push_back(base64url_encode(encode(*kept[i])));
            }
            t.where = options_.manager_policies.at(i);
            processes_.push_back(process::start(t));
        }
        std::vector<std::byte> scratch(4096);
        std::uint32_t count = 0;
        const auto until = clock::now() + bring_up_limit;
        while (count < n && failure.empty()) {
            if (clock::now() > until) {
                failure = fmt::format("ddict {}: only {} of {} managers were ready after {} s",
                                      options_.name, count, n, bring_up_limit.count());
                break;
            }
            if (!requests_.poll(channels::poll_event::readable, 250ms)) {
                for (std::uint32_t i = 0; i < n; ++i) {
                    if (!ready[i] && !processes_[i].alive()) {
                        const auto code = processes_[i].exit_code();
                        failure = fmt::format(
                            "ddict {}: manager {} (node {}) exited during start-up{}",
                            options_.name, i, processes_[i].node(),
                            code ? fmt::format(" with code {}", *code) : std::string());
                    }
                }
                continue;
            }
            auto msg = requests_.try_take(scratch);
            if (!msg) {
                continue;
            }
            const auto r = parse_request(msg->bytes());
            if (r.header.code != op::manager_ready) {
                continue;  // clients cannot know the descriptor yet
            }
            if ((r.header.flags & 1) != 0) {
                failure = fmt::format("ddict {}: a manager failed to start: {}", options_.name,
                                      decode<std::string>(r.body, "ddict manager failure"));
                failure_code = static_cast<errc>(r.header.arg);
                break;
            }
            auto info = decode<manager_info>(r.body, "ddict manager_ready");
            if (info.id >= n || ready[info.id]) {
                continue;
            }
            ready[info.id] = true;
            managers_[info.id] = std::move(info);
            ++count;
        }
    } catch (const std::exception& e) {
        failure = fmt::format("ddict {}: cannot start the managers: {}", options_.name, e.what());
    }
    if (!failure.empty()) {
        for (auto& p : processes_) {
            try {
                p.kill(SIGKILL);
                (void)p.join(manager_exit_patience);
            } catch (const std::exception&) {
            }
        }
        answer(creator_reply, 1, failure_code, failure, {});
        return false;
    }
    descriptor_ = encode_descriptor({options_.name, requests_.descriptor(),
                                     runtime::current().puid(), n});
    // (chunk_view: the encoder refers to the values, which must outlive to_bytes())
    const auto dir = directory_for(next_client_++);
    encoder out;
    codec<std::string>::encode(descriptor_, out);
    codec<directory>::encode(dir, out);
    answer(creator_reply, 1, errc::ok, {}, out.to_bytes());
    return true;
}

void orchestrator::serve()
{
    std::vector<std::byte> scratch(4096);
    for (;;) {
        auto msg = requests_.try_take(scratch);
        if (!msg) {
            (void)requests_.poll(channels::poll_event::readable, 1s);
            continue;
        }
        parsed_request r;
        orchestrator_request body;
        try {
            r = parse_request(msg->bytes());
            if (r.header.code == op::manager_ready) {
                continue;
            }
            body = decode<orchestrator_request>(r.body, "ddict orchestrator request");
        } catch (const std::exception& e) {
            spdlog::warn("ddict {} orchestrator: dropped a request: {}", options_.name, e.what());
            continue;
        }
        switch (r.header.code) {
        case op::attach: {
            const auto dir = encode(directory_for(next_client_++));
            answer(body.reply_channel, r.header.tag, errc::ok, {}, dir);
            break;
        }
        case op::managers: {
            auto dir = directory_for(r.header.client);
            answer(body.reply_channel, r.header.tag, errc::ok, {}, encode(dir));
            break;
        }
        case op::mark_empty:
            empty_.clear();
            if (r.header.arg == 1) {
                for (std::uint32_t i = 0; i < managers_.size(); ++i) {
                    empty_.push_back(i);
                }
            }
            answer(body.reply_channel, r.header.tag, errc::ok, {}, {});
            break;
        case op::destroy: {
            const bool keep = r.header.arg == 1;
            const auto trouble = stop_managers(keep);
            if (!keep) {
                std::error_code ec;
                std::filesystem::remove(restart_record_path(options_), ec);
            }
            answer(body.reply_channel, r.header.tag, trouble.empty() ? errc::ok : errc::internal,
                   trouble, {});
            return;
        }
        default:
            answer(body.reply_channel, r.header.tag, errc::invalid_argument,
                   "ddict orchestrator: unknown request", {});
        }
    }
}

std::string orchestrator::stop_managers(bool keep)
{
    request_header h{};
    h.code = op::shutdown;
    h.arg = keep ? 1 : 0;
    for (std::size_t i = 0; i < managers_.size(); ++i) {
        const auto& m = managers_[i];
        try {
            if (!processes_[i].alive()) {
                continue;  // gone already (killed, or crashed): nothing to stop
            }
            auto ch = channels::channel::attach(m.channel);
            ch.send(std::as_bytes(std::span(&h, 1)), reply_patience);
        } catch (const std::exception& e) {
            spdlog::warn("ddict {}: manager {}: {}", options_.name, m.id, e.what());
        }
    }
    std::string trouble;
    if (keep) {
        // Each manager reports where it kept its state, then exits.
        restart_record record{options_, std::vector<kept_manager>(managers_.size())};
        std::vector<bool> reported(managers_.size(), false);
        std::size_t count = 0;
        std::vector<std::byte> scratch(4096);
        const auto until = clock::now() + keep_patience;
        while (count < managers_.size() && clock::now() < until) {
            auto msg = requests_.try_take(scratch);
            if (!msg) {
                if (!requests_.poll(channels::poll_event::readable, 250ms)) {
                    bool any_alive = false;
                    for (std::size_t i = 0; i < processes_.size(); ++i) {
                        any_alive = any_alive || (!reported[i] && processes_[i].alive());
                    }
                    if (!any_alive) {
                        break;
                    }
                }
                continue;
            }
            try {
                const auto r = parse_request(msg->bytes());
                if (r.header.code != op::manager_kept) {
                    continue;  // clients: the dictionary is going away
                }
                auto k = decode<kept_manager>(r.body, "ddict manager_kept");
                if (k.id < managers_.size() && !reported[k.id]) {
                    reported[k.id] = true;
                    record.managers[k.id] = std::move(k);
                    ++count;
                }
            } catch (const std::exception& e) {
                spdlog::warn("ddict {}: dropped a message: {}", options_.name, e.what());
            }
        }
        if (count == managers_.size()) {
            try {
                write_record(restart_record_path(options_), record);
            } catch (const std::exception& e) {
                trouble = fmt::format("ddict {}: cannot write the restart record: {}",
                                      options_.name, e.what());
            }
        } else {
            trouble = fmt::format("ddict {}: only {} of {} managers kept their state: it "
                                  "cannot be restarted",
                                  options_.name, count, managers_.size());
        }
    }
    for (std::size_t i = 0; i < processes_.size(); ++i) {
        try {
            if (!processes_[i].join(manager_exit_patience)) {
                spdlog::warn("ddict {}: manager {} did not stop in {} s: killing it",
                             options_.name, i, manager_exit_patience.count());
                processes_[i].kill(SIGKILL);
                (void)processes_[i].join(manager_exit_patience);
            }
        } catch (const std::exception& e) {
            spdlog::warn("ddict {}: manager {}: {}", options_.name, i, e.what());
        }
    }
    return trouble;
}

directory orchestrator::directory_for(std::uint64_t client_id) const
{
    directory d;
    d.name = options_.name;
    d.client_id = client_id;
    d.timeout_us = options_.timeout_us;
    d.base_checkpoint = options_.restore_from == no_checkpoint ? 0 : options_.restore_from;
    d.managers = managers_;
    d.empty = empty_;
    return d;
}

void orchestrator::answer(const std::string& reply_channel, std::uint64_t tag, errc status,
                          std::string_view info, byte_view body)
{
    response_header h{};
    h.status = static_cast<std::uint16_t>(status);
    h.info_size = static_cast<std::uint32_t>(info.size());
    h.tag = tag;
    std::vector<std::byte> msg(sizeof h + info.size() + body.size());
    std::memcpy(msg.data(), &h, sizeof h);
    if (!info.empty()) {
        std::memcpy(msg.data() + sizeof h, info.data(), info.size());
    }
    if (!body.empty()) {
        std::memcpy(msg.data() + sizeof h + info.size(), body.data(), body.size());
    }
    try {
        auto ch = channels::channel::attach(reply_channel);
        ch.send(msg, reply_patience);
    } catch (const std::exception& e) {
        spdlog::warn("ddict {} orchestrator: cannot answer a client: {}", options_.name,
                     e.what());
    }
}

}  // namespace dragonx::dict
