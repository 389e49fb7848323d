// ddict_main.cpp - dragonx-ddict: the program a dictionary's orchestrator and managers run.
//
//   dragonx-ddict orchestrator <options> <creator reply channel>
//   dragonx-ddict manager <id> <options> <orchestrator channel>
//
// `options` is the server_options (protocol.hpp) in base64url. Started by ddict<K, V>::create
// (orchestrator) and by the orchestrator (managers), as managed processes of the run.
#include <cstdio>
#include <exception>
#include <filesystem>
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

int run_manager(const std::string& id_text, const std::string& options,
                const std::string& orchestrator)
{
    const auto id = static_cast<std::uint32_t>(std::stoul(id_text));
    auto& rt = runtime::current();
    dict::manager m(decode_options(options), id, rt.node(), rt.hostname());
    rt.register_shm(m.shard_pool().name());

    dict::manager_info info{id, m.channel_descriptor(), rt.node(), rt.puid()};
    encoder body;
    codec<dict::manager_info>::encode(info, body);
    dict::request_header h{};
    h.code = dict::op::manager_ready;
    std::vector<std::byte> msg(dict::request_size(0, body.size()));
    body.write_to(dict::write_request(msg, h, {}));
    channels::channel::attach(orchestrator).send(msg, 30s);
    m.run();
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
        if (role == "manager" && argc == 5) {
            return run_manager(argv[2], argv[3], argv[4]);
        }
        std::fprintf(stderr,
                     "usage: dragonx-ddict orchestrator <options> <reply channel>\n"
                     "       dragonx-ddict manager <id> <options> <orchestrator channel>\n"
                     "(started by dragonx::ddict::create, not by hand)\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dragonx-ddict %s: %s\n", role.c_str(), e.what());
        return 1;
    }
}
