// ddict_main.cpp - dragonx-ddict: the program a dictionary's orchestrator and managers run.
//
//   dragonx-ddict orchestrator <options> <creator reply channel>
//   dragonx-ddict manager <id> <options> <orchestrator channel> [<kept>]
//
// `options` is the server_options (protocol.hpp) in base64url; `kept`, for a restart, the
// kept_manager whose pool the manager takes back, in base64url. Started by ddict<K, V>::create
// (orchestrator) and by the orchestrator (managers), as managed processes of the run.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <dragonx/common/encoding.hpp>
#include <dragonx/runtime/runtime.hpp>

#include "manager.hpp"
#include "orchestrator.hpp"
#include "protocol.hpp"

namespace {

using namespace dragonx;
using namespace std::chrono_literals;

dict::server_options decode_options(std::string_view text)
{
    const auto raw = base64url_decode(text);
    if (!raw) {
        throw_error(errc::invalid_argument, "options are not base64url");
    }
    return decode<dict::server_options>(*raw, "ddict options");
}

int run_orchestrator(const std::string& options, const std::string& creator)
{
    dict::orchestrator orc(decode_options(options),
                           std::filesystem::read_symlink("/proc/self/exe").string());
    if (!orc.bring_up(creator)) {
        return 1;
    }
    orc.serve();
    return 0;
}

// Tells the orchestrator something (manager_ready, manager_kept) with a codec body.
template <class Body>
void tell_orchestrator(const std::string& orchestrator, dict::op code, const Body& body,
                       std::uint16_t flags = 0, std::uint64_t arg = 0)
{
    encoder out;
    codec<Body>::encode(body, out);
    dict::request_header h{};
    h.code = code;
    h.flags = flags;
    h.arg = arg;
    std::vector<std::byte> msg(dict::request_size(0, out.size()));
    out.write_to(dict::write_request(msg, h, {}));
    channels::channel::attach(orchestrator).send(msg, 30s);
}

int run_manager(const std::string& id_text, const std::string& options,
                const std::string& orchestrator, const std::string& kept_text)
{
    const auto id = static_cast<std::uint32_t>(std::stoul(id_text));
    auto& rt = runtime::current();
    std::optional<dict::kept_manager> kept;
    if (!kept_text.empty()) {
        const auto raw = base64url_decode(kept_text);
        if (!raw) {
            throw_error(errc::invalid_argument, "kept state is not base64url");
        }
        kept = decode<dict::kept_manager>(*raw, "ddict kept manager");
    }
    std::unique_ptr<dict::manager> m;
    try {
        m = std::make_unique<dict::manager>(decode_options(options), id, rt.node(),
                                            rt.hostname(), kept);
    } catch (const error& e) {
        // Tell the orchestrator why, so the creator's error says it.
        const auto status = static_cast<std::uint64_t>(dict::status_of(e, errc::process_failed));
        tell_orchestrator(orchestrator, dict::op::manager_ready, std::string(e.what()), 1,
                          status);
        throw;
    }
    rt.register_shm(m->shard_pool().name());
    tell_orchestrator(orchestrator, dict::op::manager_ready,
                      dict::manager_info{id, m->channel_descriptor(), rt.node(), rt.puid()});
    m->run();
    if (m->kept()) {
        tell_orchestrator(orchestrator, dict::op::manager_kept, *m->kept());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    const std::string role = argc > 1 ? argv[1] : "";
    try {
        if (role == "orchestrator" && argc == 4) {
            return run_orchestrator(argv[2], argv[3]);
        }
        if (role == "manager" && (argc == 5 || argc == 6)) {
            return run_manager(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : "");
        }
        std::fprintf(stderr,
                     "usage: dragonx-ddict orchestrator <options> <reply channel>\n"
                     "       dragonx-ddict manager <id> <options> <orchestrator channel> "
                     "[<kept>]\n"
                     "(started by dragonx::ddict::create, not by hand)\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dragonx-ddict %s: %s\n", role.c_str(), e.what());
        return 1;
    }
}
