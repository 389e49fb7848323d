// process_group.cpp - the client side of process groups kept by global services.
#include <dragonx/runtime/process_group.hpp>

#include <fmt/format.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>
#include <spdlog/spdlog.h>

namespace dragonx {

namespace msg = rt::msg;

process_group::process_group(group_options options) : options_(std::move(options)) {}

process_group::process_group(process_group&& other) noexcept
    : options_(std::move(other.options_)),
      members_(std::move(other.members_)),
      id_(std::exchange(other.id_, 0)),
      closed_(other.closed_),
      errors_seen_(other.errors_seen_)
{
}

process_group::~process_group()
{
    if (id_ != 0 && !closed_) {
        try {
            ask(msg::group_request{id_, msg::group_op::close});
        } catch (const std::exception& e) {
            log::get("runtime").warn("process group {}: close in destructor failed: {}", id_,
                                     e.what());
        }
    }
}

process_group& process_group::add(std::uint32_t n, const process_template& t)
{
    if (id_ != 0) {
        throw_error(errc::invalid_argument, "process_group::add after start()");
    }
    if (n == 0) {
        throw_error(errc::invalid_argument, "process_group::add of 0 processes");
    }
    members_.push_back({n, t.to_spec()});
    return *this;
}

msg::group_state process_group::ask(rt::message request)
{
    auto reply = runtime::current().request(std::move(request));
    auto* state = std::get_if<msg::group_state>(&reply);
    if (state == nullptr) {
        throw_error(errc::malformed_message, "process group: unexpected reply " +
                                                 std::string(rt::message_name(reply)));
    }
    return std::move(*state);
}

void process_group::start()
{
    if (id_ != 0) {
        throw_error(errc::invalid_argument, "process_group::start: started already");
    }
    if (members_.empty()) {
        throw_error(errc::invalid_argument, "process_group::start: no members (add() first)");
    }
    msg::group_create create;
    create.members = members_;
    create.where = options_.where;
    create.restart = options_.restart;
    create.ignore_error_on_exit = options_.ignore_error_on_exit;
    create.walltime_ms = options_.walltime ? options_.walltime->count() : 0;
    create.parent = runtime::current().puid();
    create.pmi = options_.pmi;
    const auto created = ask(std::move(create));
    created.result.throw_if_error();
    id_ = created.group;
    ask(msg::group_request{id_, msg::group_op::start}).result.throw_if_error();
}

void process_group::join(timeout limit)
{
    std::int64_t ms = -1;
    if (limit) {
        ms = std::chrono::ceil<std::chrono::milliseconds>(*limit).count();
    }
    const auto state = ask(msg::group_join{id_, ms});
    if (state.result.code == errc::timeout) {
        throw_error(errc::timeout, fmt::format("process group {}: {} member(s) still running",
                                               id_, state.running.size()));
    }
    state.result.throw_if_error();
    if (!options_.ignore_error_on_exit && state.errors.size() > errors_seen_) {
        const auto& failed = state.errors[errors_seen_];
        errors_seen_ = state.errors.size();
        throw_error(errc::process_failed,
                    failed.puid == 0
                        ? fmt::format("process group {}: a member could not be started", id_)
                        : fmt::format("process group {}: member puid {} on node {} exited with "
                                      "code {}",
                                      id_, failed.puid, failed.node, failed.exit_code));
    }
}

void process_group::stop(std::chrono::milliseconds patience)
{
    if (id_ == 0) {
        return;
    }
    for (const int sig : {SIGINT, SIGTERM, SIGKILL}) {
        const auto state = ask(msg::group_signal{id_, sig, true});
        state.result.throw_if_error();
        const auto joined = ask(msg::group_join{id_, patience.count()});
        if (joined.result.ok()) {
            return;
        }
        if (joined.result.code != errc::timeout) {
            joined.result.throw_if_error();
        }
    }
    throw_error(errc::timeout,
                fmt::format("process group {}: members still running after SIGKILL", id_));
}

void process_group::close(std::chrono::milliseconds patience)
{
    if (id_ == 0 || closed_) {
        return;
    }
    stop(patience);
    ask(msg::group_request{id_, msg::group_op::close}).result.throw_if_error();
    closed_ = true;
}

void process_group::signal(int sig)
{
    ask(msg::group_signal{id_, sig, true}).result.throw_if_error();
}

void process_group::stop_restart()
{
    ask(msg::group_request{id_, msg::group_op::stop_restart}).result.throw_if_error();
}

std::vector<puid_t> process_group::puids()
{
    auto state = ask(msg::group_request{id_, msg::group_op::query});
    state.result.throw_if_error();
    return state.running;
}

std::vector<std::pair<puid_t, int>> process_group::exit_status()
{
    auto state = ask(msg::group_request{id_, msg::group_op::query});
    state.result.throw_if_error();
    std::vector<std::pair<puid_t, int>> out;
    for (const auto& e : state.exited) {
        out.emplace_back(e.puid, e.exit_code);
    }
    return out;
}

bool process_group::walltime_expired()
{
    return ask(msg::group_request{id_, msg::group_op::query}).walltime_expired;
}

}  // namespace dragonx
