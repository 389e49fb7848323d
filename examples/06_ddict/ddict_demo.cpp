// ddict_demo.cpp - a distributed dictionary shared by client processes on every node (the C++
// take on DragonHPC's demo_ddict).
//
//   dragonx run --wlm local -N 3 build/examples/ddict_demo [--clients N]
//
// The head creates a dictionary with two managers on every node of the run and starts N client
// processes (default: two per node), this program again in the client role with the
// dictionary's descriptor on its command line, placed on the nodes in turn. Each client
// attaches and writes its own keys: a greeting (a string), a report (a struct with a codec from
// its fields()) and a batch of numbered items; then it counts itself done with fetch_add, waits
// with wait_for until the counter says every client has written, and reads and checks what
// every other client wrote. The head joins the clients, prints the dictionary's size, lists its
// keys, prints stats() per manager (node, keys, utilization) and destroys it.
//
// Exit code 0 when every client read every value right and the head's counts add up; 1
// otherwise (a client prints what was wrong).
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
using clock_type = std::chrono::steady_clock;

// Three typed views of one dictionary: its keys are strings, its values of three kinds. A
// handle decodes values as its V, so each kind of value is read through a handle of its type.
using text_dict = dragonx::ddict<std::string, std::string>;
using counter_dict = dragonx::ddict<std::string, std::int64_t>;

/// What each client reports about itself: a value with a codec built from its fields().
struct report {
    std::uint32_t client = 0;
    std::uint32_t node = 0;
    std::string hostname;
    std::vector<double> samples;
    static auto fields(auto& self)
    {
        return std::tie(self.client, self.node, self.hostname, self.samples);
    }
};
using report_dict = dragonx::ddict<std::string, report>;

constexpr int items_per_client = 50;
constexpr auto wait_limit = 30s;  // for the other clients to have written
constexpr auto client_limit = 45s;  // a client's whole life
const std::string done_counter = "clients-written";

std::string greeting_key(int c) { return "client/" + std::to_string(c) + "/greeting"; }
std::string report_key(int c) { return "client/" + std::to_string(c) + "/report"; }
std::string item_key(int c, int j)
{
    return "client/" + std::to_string(c) + "/item/" + std::to_string(j);
}
std::string greeting(int c) { return "hello from client " + std::to_string(c); }
std::string item_value(int c, int j) { return std::to_string(c * 1000 + j); }
std::vector<double> samples_of(int c) { return {c + 0.25, c * 2.0, c * c * 0.5}; }
std::uint32_t node_of(int c, std::uint32_t nnodes)
{
    return static_cast<std::uint32_t>(c) % nnodes;
}
/// "client/3/item/7" -> "item": what kind of key it is, for the head's listing.
std::string key_kind(const std::string& k)
{
    const auto second = k.find('/', k.find('/') + 1);
    if (k.rfind("client/", 0) != 0 || second == std::string::npos) {
        return k;
    }
    return k.substr(second + 1, k.find('/', second + 1) - second - 1);
}

/// A client: writes its keys, waits for the others, checks theirs. Returns the exit code.
int client(const std::string& descriptor, int me, int clients)
{
    const auto& rt = dragonx::runtime::current();
    const auto sys = dragonx::system::current();
    auto d = text_dict::attach(descriptor);
    auto reports = report_dict::attach(descriptor);
    auto counters = counter_dict::attach(descriptor);

    // Our own keys: plain puts, a typed put, and the items in one batch (streamed to the
    // managers; commit() waits for every manager's count).
    d.put(greeting_key(me), greeting(me));
    reports.put(report_key(me), {static_cast<std::uint32_t>(me), rt.node(), rt.hostname(),
                                 samples_of(me)});
    auto batch = d.start_batch();
    for (int j = 0; j < items_per_client; ++j) {
        batch.put(item_key(me, j), item_value(me, j));
    }
    batch.commit();

    // Done: the counter goes up by one per client, so it holds `clients` once all have written.
    (void)d.fetch_add(done_counter);
    counters.wait_for(done_counter, clients, wait_limit);

    int checked = 0;
    std::string wrong;
    auto expect = [&](bool ok, const std::string& what) {
        ++checked;
        if (!ok && wrong.empty()) {
            wrong = what;
        }
    };
    for (int c = 0; c < clients; ++c) {
        if (c == me) {
            continue;
        }
        expect(d.get(greeting_key(c)) == greeting(c), greeting_key(c));
        const report r = reports.get(report_key(c));
        const auto node = node_of(c, sys.nnodes());
        expect(r.client == static_cast<std::uint32_t>(c) && r.node == node &&
                   r.hostname == sys.nodes().at(node).hostname && r.samples == samples_of(c),
               report_key(c));
        for (int j = 0; j < items_per_client; ++j) {
            expect(d.find(item_key(c, j)) == item_value(c, j), item_key(c, j));
        }
        // find() of a key nobody wrote: nullopt, not an error.
        expect(!d.find(item_key(c, items_per_client)).has_value(), "a key nobody wrote");
    }
    std::printf("client %d on %s: wrote %d keys, checked %d keys of %d other client(s): %s\n",
                me, rt.hostname().c_str(), items_per_client + 2, checked, clients - 1,
                wrong.empty() ? "all right" : ("WRONG " + wrong).c_str());
    d.detach();
    reports.detach();
    counters.detach();
    return wrong.empty() ? 0 : 1;
}

/// The head: creates the dictionary, runs the clients, reports, destroys. Returns the exit code.
int head(const char* self, int clients)
{
    const auto& rt = dragonx::runtime::current();
    const auto sys = dragonx::system::current();
    const auto t0 = clock_type::now();

    dragonx::ddict_options options;
    options.managers_per_node = 2;
    options.n_nodes = rt.nnodes();
    options.total_mem = std::uint64_t{64} << 20;
    options.timeout = 20s;
    auto d = text_dict::create(options);
    const auto created = clock_type::now();
    std::printf("ddict_demo: dictionary %s: %u managers on %u node(s), created in %.0f ms\n",
                d.name().c_str(), d.managers(), rt.nnodes(),
                std::chrono::duration<double, std::milli>(created - t0).count());
    const auto descriptor = d.serialize();
    std::printf("ddict_demo: descriptor, for the clients' command lines: %.32s... (%zu bytes)\n",
                descriptor.c_str(), descriptor.size());

    bool ok = true;
    try {
        std::vector<dragonx::process> procs;
        for (int c = 0; c < clients; ++c) {
            dragonx::policy there;
            there.placement_kind = dragonx::placement::host_id;
            there.host_id = node_of(c, rt.nnodes());
            procs.push_back(dragonx::process::start(
                {.exe = self,
                 .args = {"--client", descriptor, std::to_string(c), std::to_string(clients)},
                 .where = there}));
        }
        for (int c = 0; c < clients; ++c) {
            const auto code = procs[c].join(client_limit);
            if (code != 0) {
                std::printf("ddict_demo: client %d %s\n", c,
                            code ? ("exited with " + std::to_string(*code)).c_str()
                                 : "did not finish in time");
                if (!code) {
                    procs[c].kill();
                }
                ok = false;
            }
        }
        std::printf("ddict_demo: %d client(s) done in %.0f ms\n", clients,
                    std::chrono::duration<double, std::milli>(clock_type::now() - created).count());

        // Every client's keys and the counter; keys() streams them from every manager.
        const std::uint64_t want =
            static_cast<std::uint64_t>(clients) * (items_per_client + 2) + 1;
        const auto size = d.size();
        std::map<std::string, int> kinds;
        for (const auto& k : d.keys()) {
            ++kinds[key_kind(k)];
        }
        std::printf("ddict_demo: size() = %llu (want %llu); keys():",
                    static_cast<unsigned long long>(size), static_cast<unsigned long long>(want));
        for (const auto& [kind, n] : kinds) {
            std::printf(" %d %s", n, kind.c_str());
        }
        std::printf("\n");
        auto counters = counter_dict::attach(d.serialize());
        const auto written = counters.get(done_counter);
        counters.detach();
        std::printf("ddict_demo: %s = %lld\n", done_counter.c_str(),
                    static_cast<long long>(written));
        ok = ok && size == want && written == clients;

        std::uint64_t stored = 0;
        std::printf("ddict_demo: manager  node    keys    used bytes  utilization\n");
        for (const auto& s : d.stats()) {
            std::printf("ddict_demo: %7u  %-6s %5llu  %12llu  %10.3f%%\n", s.manager_id,
                        s.hostname.c_str(), static_cast<unsigned long long>(s.num_keys),
                        static_cast<unsigned long long>(s.used_bytes), 100 * s.utilization);
            stored += s.num_keys;
            ok = ok && s.hostname == sys.nodes().at(s.node).hostname &&
                 s.node == d.manager_nodes().at(s.manager_id);
        }
        ok = ok && stored == size;
    } catch (const std::exception& e) {
        std::printf("ddict_demo: %s\n", e.what());
        ok = false;
    }
    d.destroy();
    std::printf("ddict_demo: destroyed; %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // our lines interleave with the clients' in time
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        if (args.size() == 4 && args[0] == "--client") {
            return client(args[1], std::stoi(args[2]), std::stoi(args[3]));
        }
        const auto& rt = dragonx::runtime::current();
        if (args.size() == 2 && args[0] == "--clients" && std::stoi(args[1]) > 0) {
            return head(argv[0], std::stoi(args[1]));
        }
        if (args.empty()) {
            return head(argv[0], 2 * static_cast<int>(rt.nnodes()));
        }
        std::fprintf(stderr, "usage: ddict_demo [--clients N]\n");
        return 2;
    } catch (const std::exception& e) {
        std::printf("ddict_demo: %s\n", e.what());
        return 1;
    }
}
