// process.cpp - starting and following one managed process through the runtime.
#include <dragonx/runtime/process.hpp>

#include <filesystem>

#include <dragonx/common/error.hpp>

namespace dragonx {

namespace {

namespace msg = rt::msg;

template <class Reply>
Reply expect(rt::message reply, const char* what)
{
    auto* r = std::get_if<Reply>(&reply);
    if (r == nullptr) {
        throw_error(errc::malformed_message, std::string(what) + ": unexpected reply " +
                                                 std::string(rt::message_name(reply)));
    }
    return std::move(*r);
}

std::int64_t to_ms(timeout limit)
{
    if (!limit) {
        return -1;
    }
    if (limit->count() < 0) {
        throw_error(errc::invalid_argument, "negative timeout");
    }
    return std::chrono::ceil<std::chrono::milliseconds>(*limit).count();
}

}  // namespace

rt::process_spec process_template::to_spec() const
{
    namespace fs = std::filesystem;
    if (exe.empty()) {
        throw_error(errc::invalid_argument, "process_template: exe is empty");
    }
    rt::process_spec spec;
    const fs::path dir = cwd.empty() ? fs::current_path() : fs::absolute(cwd);
    spec.cwd = dir.string();
    spec.exe = exe;
    if (exe.find('/') != std::string::npos && fs::path(exe).is_relative()) {
        spec.exe = (dir / exe).lexically_normal().string();
    }
    spec.args = args;
    spec.env = env;
    spec.where = where;
    spec.out = out;
    spec.err = err;
    return spec;
}

process process::start(const process_template& t)
{
    auto& rt = runtime::current();
    const auto s = expect<msg::started>(rt.request(msg::create_process{t.to_spec(), rt.puid()}),
                                        "process::start");
    s.result.throw_if_error();
    return {s.puid, s.node};
}

process process::attach(puid_t puid)
{
    process p(puid, 0);
    p.node_ = p.query().node;
    return p;
}

rt::process_info process::query()
{
    const auto r = expect<msg::process_states>(
        runtime::current().request(msg::query_processes{{puid_}}), "process query");
    r.result.throw_if_error();
    if (r.states.size() != 1) {
        throw_error(errc::malformed_message, "process query: wrong number of states");
    }
    return r.states.front();
}

std::optional<int> process::join(timeout limit)
{
    const auto r = expect<msg::process_states>(
        runtime::current().request(msg::join_processes{{puid_}, true, to_ms(limit)}),
        "process::join");
    if (r.result.code == errc::timeout) {
        return std::nullopt;
    }
    r.result.throw_if_error();
    return r.states.at(0).exit_code;
}

void process::kill(int sig) { runtime::current().request(msg::signal_process{puid_, sig}); }

bool process::alive() { return query().state != rt::process_state::exited; }

std::optional<int> process::exit_code()
{
    const auto info = query();
    if (info.state != rt::process_state::exited) {
        return std::nullopt;
    }
    return info.exit_code;
}

int process::signal() { return query().signal; }

std::optional<std::string> process::read(rt::output_stream stream, timeout limit)
{
    auto d = expect<msg::output_data>(
        runtime::current().request(msg::read_output{puid_, stream, to_ms(limit)}),
        "process::read");
    d.result.throw_if_error();
    if (d.eof) {
        return std::nullopt;
    }
    return std::move(d.data);
}

}  // namespace dragonx
