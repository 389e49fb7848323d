// ddict_placement.cpp - a distributed dictionary whose managers are placed by policies, and keys
// put on a chosen manager (the C++ take on DragonHPC's demo_ddict_manager_placement).
//
//   dragonx run --wlm local -N 3 build/examples/ddict_placement
//
// - Managers by policy: the head gives ddict_options::policies one policy per node
//   (system::hostname_policies(): by host name, or by node index where virtual nodes share a
//   host name) and managers_per_policy = 2: managers 2i and 2i+1 are placed by policy i. It
//   prints the node of each manager (manager_nodes()) and checks it against the policies and
//   against what each manager reports in stats().
// - A client on each node (this program again, placed there by a host_id policy) prints its
//   local_managers() and main_manager(), checks that they are the managers of its node, and
//   puts a key through manager(main_manager()): data kept next to the process that uses it.
// - The head puts a key through each manager(i) handle and, for each manager, a key that the
//   hash sends there (which_manager()); then it lists each manager's keys (manager(i).keys())
//   and checks that every key is where it was put. A key put through manager(i) is found
//   through that handle; a whole-dictionary get() looks on which_manager(key) only.
// - With several nodes, a second dictionary is placed by host_id policies in reverse node
//   order: manager ids follow the order of the list.
//
// Exit code 0 when every manager and key is where it should be; 1 otherwise.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;
using text_dict = dragonx::ddict<std::string, std::string>;

constexpr std::uint32_t managers_per_policy = 2;
constexpr auto client_limit = 30s;  // a client's whole life

/// The node a pinned policy names (host_id, or the node whose host name it is).
std::uint32_t node_named_by(const dragonx::policy& p, const dragonx::system& sys)
{
    if (p.placement_kind == dragonx::placement::host_name) {
        for (const auto& n : sys.nodes()) {
            if (n.hostname == p.host_name) {
                return n.index;
            }
        }
    }
    return p.host_id.value_or(UINT32_MAX);
}

std::string list(const std::vector<std::uint32_t>& ids)
{
    std::string out;
    for (const auto id : ids) {
        out += (out.empty() ? "" : ", ") + std::to_string(id);
    }
    return "[" + out + "]";
}

std::string node_key(std::uint32_t node) { return "node/" + std::to_string(node) + "/data"; }

/// A client on `node`: checks its local and main managers, puts a key on its main manager.
int client(const std::string& descriptor, std::uint32_t node)
{
    const auto& rt = dragonx::runtime::current();
    auto d = text_dict::attach(descriptor);
    const auto nodes = d.manager_nodes();
    std::vector<std::uint32_t> want_local;
    for (std::uint32_t m = 0; m < nodes.size(); ++m) {
        if (nodes[m] == rt.node()) {
            want_local.push_back(m);
        }
    }
    const auto local = d.local_managers();
    const auto main_id = d.main_manager();
    const bool right = rt.node() == node && local == want_local &&
                       std::find(local.begin(), local.end(), main_id) != local.end();
    // Through manager(main_id): the key is stored on that manager, whatever its hash says.
    auto mine = d.manager(main_id);
    mine.put(node_key(node), std::to_string(main_id));
    const bool stored = mine.get(node_key(node)) == std::to_string(main_id) &&
                        mine.which_manager(node_key(node)) == main_id;
    std::printf("client on %s: local_managers() = %s, main_manager() = %u; put %s there: %s\n",
                rt.hostname().c_str(), list(local).c_str(), main_id, node_key(node).c_str(),
                right && stored ? "ok" : "WRONG");
    d.detach();
    return right && stored ? 0 : 1;
}

/// Managers by hostname policies, clients on every node, keys on chosen managers.
bool by_hostname(const char* self)
{
    const auto sys = dragonx::system::current();
    const auto policies = sys.hostname_policies();
    dragonx::ddict_options options;
    options.policies = policies;
    options.managers_per_policy = managers_per_policy;
    options.total_mem = std::uint64_t{32} << 20;
    options.timeout = 20s;
    auto d = text_dict::create(options);
    std::printf("ddict_placement: %zu host-name policy(ies) x %u managers = %u managers\n",
                policies.size(), managers_per_policy, d.managers());

    bool ok = d.managers() == policies.size() * managers_per_policy;
    try {
        const auto nodes = d.manager_nodes();
        for (std::uint32_t m = 0; m < d.managers(); ++m) {
            const auto& p = policies.at(m / managers_per_policy);
            const bool right = nodes.at(m) == node_named_by(p, sys);
            std::printf("ddict_placement: manager %u on %s by %s: %s\n", m,
                        sys.nodes().at(nodes[m]).hostname.c_str(),
                        dragonx::to_string(p).c_str(), right ? "ok" : "WRONG");
            ok = ok && right;
        }
        for (const auto& s : d.stats()) {
            ok = ok && s.node == nodes.at(s.manager_id) &&
                 s.hostname == sys.nodes().at(s.node).hostname;
        }

        // A client on each node.
        std::vector<dragonx::process> clients;
        for (const auto& n : sys.nodes()) {
            dragonx::policy there;
            there.placement_kind = dragonx::placement::host_id;
            there.host_id = n.index;
            clients.push_back(dragonx::process::start(
                {.exe = self,
                 .args = {"--client", d.serialize(), std::to_string(n.index)},
                 .where = there}));
        }
        for (auto& c : clients) {
            const auto code = c.join(client_limit);
            if (!code) {
                c.kill();
            }
            ok = ok && code == 0;
        }

        // Keys on chosen managers: one through each manager(m) handle, and one that the hash
        // sends to m (found by trying names), through the whole dictionary.
        std::map<std::string, std::uint32_t> want;  // key -> the manager it must be on
        for (std::uint32_t m = 0; m < d.managers(); ++m) {
            const auto pinned = "pinned/" + std::to_string(m);
            d.manager(m).put(pinned, "put through manager(" + std::to_string(m) + ")");
            want[pinned] = m;
            std::string hashed;
            for (int i = 0; hashed.empty() || d.which_manager(hashed) != m; ++i) {
                hashed = "hashed/" + std::to_string(i);
            }
            d.put(hashed, "hashed to manager " + std::to_string(m));
            want[hashed] = m;
        }

        // Where each key is: every manager's own listing.
        std::map<std::string, std::uint32_t> where;
        for (std::uint32_t m = 0; m < d.managers(); ++m) {
            auto keys = d.manager(m).keys().to_vector();
            std::sort(keys.begin(), keys.end());
            std::string shown;
            for (const auto& k : keys) {
                shown += " " + k;
                if (!where.emplace(k, m).second) {
                    std::printf("ddict_placement: %s is on two managers\n", k.c_str());
                    ok = false;
                }
            }
            std::printf("ddict_placement: manager(%u).keys():%s\n", m, shown.c_str());
        }
        bool keys_ok = true;
        for (const auto& [k, m] : want) {
            keys_ok = keys_ok && where.count(k) == 1 && where[k] == m;
        }
        // Each client's key: on the manager it chose, a manager of the client's node.
        for (const auto& n : sys.nodes()) {
            const auto k = node_key(n.index);
            const bool right = where.count(k) == 1 && nodes.at(where[k]) == n.index &&
                               d.manager(where[k]).get(k) == std::to_string(where[k]);
            keys_ok = keys_ok && right;
        }
        // A key put through manager(m) is seen by a whole-dictionary contains() only when the
        // hash would have sent it to m too.
        int seen_whole = 0;
        for (std::uint32_t m = 0; m < d.managers(); ++m) {
            const auto pinned = "pinned/" + std::to_string(m);
            const bool hashed_there = d.which_manager(pinned) == m;
            seen_whole += hashed_there ? 1 : 0;
            keys_ok = keys_ok && d.contains(pinned) == hashed_there;
        }
        const auto size = d.size();
        keys_ok = keys_ok && size == where.size() && size == want.size() + sys.nnodes();
        ok = ok && keys_ok;
        std::printf("ddict_placement: %llu keys, each on the manager it was put on: %s (%d of %u "
                    "pinned keys also where the hash points)\n",
                    static_cast<unsigned long long>(size), keys_ok ? "ok" : "NO", seen_whole,
                    d.managers());
    } catch (const std::exception& e) {
        std::printf("ddict_placement: %s\n", e.what());
        ok = false;
    }
    d.destroy();
    return ok;
}

/// Managers by host_id policies in reverse node order: manager ids follow the list.
bool reversed()
{
    const auto sys = dragonx::system::current();
    dragonx::ddict_options options;
    std::vector<std::uint32_t> want;
    for (std::uint32_t n = sys.nnodes(); n-- > 0;) {
        options.policies.push_back(
            dragonx::policy{.placement_kind = dragonx::placement::host_id, .host_id = n});
        want.push_back(n);
    }
    options.total_mem = std::uint64_t{16} << 20;
    auto d = text_dict::create(options);
    const auto nodes = d.manager_nodes();
    const bool ok = nodes == want;
    std::printf("ddict_placement: host_id policies %s: manager_nodes() = %s: %s\n",
                list(want).c_str(), list(nodes).c_str(), ok ? "ok" : "WRONG");
    d.destroy();
    return ok;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // our lines interleave with the clients' in time
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        if (args.size() == 3 && args[0] == "--client") {
            return client(args[1], static_cast<std::uint32_t>(std::stoul(args[2])));
        }
        if (!args.empty()) {
            std::fprintf(stderr, "usage: ddict_placement\n");
            return 2;
        }
        bool ok = by_hostname(argv[0]);
        if (dragonx::runtime::current().nnodes() > 1) {
            ok = reversed() && ok;
        }
        std::printf("ddict_placement: %s\n", ok ? "every manager and key where it should be"
                                                 : "FAILED");
        return ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::printf("ddict_placement: %s\n", e.what());
        return 1;
    }
}
