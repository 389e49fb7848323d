// ddict_check.cpp - integration helper: the DDict end to end under `dragonx run`, on one node
// or across virtual nodes (`--wlm local -N 3`), with clients that are separate processes
// attaching by descriptor (this program again, in the `client` role).
//
//   ddict_check ops                 every operation, managers on every node, the head as client
//   ddict_check clients N           N client processes (one per node in turn) share a dictionary
//   ddict_check full                fill a small dictionary until full; it keeps serving
//   ddict_check failures            bad options, descriptors and placements fail cleanly
//   ddict_check dead_manager        a killed manager is an error naming it, not a hang
//
// Prints "PASS <mode>" and exits 0 when every check holds; "FAIL <why>" and exits 1.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "checks.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using sdict = dragonx::ddict<std::string, std::string>;
using dragonx::integration::check;
using dragonx::integration::fail;
using dragonx::integration::start_on;

template <class F>
void expect_error(dragonx::errc code, const std::string& what, F&& f)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        if (!e.is(code)) {
            fail(what + ": wrong error: " + e.what());
        }
        return;
    }
    fail(what + ": no error");
}

// Shared-memory objects of this run (pools of this run's processes and daemons).
std::size_t run_shm_objects()
{
    const std::string run = dragonx::runtime::current().run_id();
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
        n += e.path().filename().string().find(run) != std::string::npos ? 1 : 0;
    }
    return n;
}

// Waits up to 5 s for the run's shm objects to come back to `count` (daemons remove a dead
// process's pools once they have reaped it).
bool shm_back_to(std::size_t count)
{
    const auto until = clock_type::now() + 5s;
    while (run_shm_objects() != count) {
        if (clock_type::now() > until) {
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

dragonx::ddict_options spread_options()
{
    dragonx::ddict_options o;
    o.managers_per_node = 2;
    o.n_nodes = dragonx::runtime::current().nnodes();
    o.total_mem = std::uint64_t{1} << 30;  // a 64 MiB value takes a 128 MiB block
    o.timeout = 20s;
    return o;
}

// A value of several chunks: the chunk boundaries must survive a round trip.
struct record {
    std::string label;
    std::vector<double> samples;
    std::int32_t rank = 0;
    static auto fields(auto& self) { return std::tie(self.label, self.samples, self.rank); }
    bool operator==(const record&) const = default;
};

int ops()
{
    auto& rt = dragonx::runtime::current();
    const auto shm_before = run_shm_objects();
    const auto t0 = clock_type::now();
    auto d = sdict::create(spread_options());
    const auto create_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0);
    const auto desc = d.serialize();
    check(desc.size() < 512, "descriptor of " + std::to_string(desc.size()) + " bytes");
    check(d.managers() == 2 * rt.nnodes(), "manager count");
    const auto nodes = d.manager_nodes();
    for (std::uint32_t m = 0; m < d.managers(); ++m) {
        check(nodes[m] == m / 2, "manager " + std::to_string(m) + " on node " +
                                     std::to_string(nodes[m]));
    }
    check(!d.local_managers().empty(), "a manager on the head's node");
    check(nodes[d.main_manager()] == rt.node(), "the main manager is on this node");

    // put / get / find / contains / pop / operator[]
    d.put("alpha", "1");
    d["beta"] = "2";
    check(d.get("alpha") == "1", "get alpha");
    check(static_cast<std::string>(d["beta"]) == "2", "d[beta]");
    check(!d.find("gamma").has_value(), "find of a missing key");
    expect_error(dragonx::errc::key_not_found, "get of a missing key",
                 [&] { (void)d.get("gamma"); });
    check(d.contains("alpha") && !d.contains("gamma"), "contains");
    d.put("alpha", "one");
    check(d.get("alpha") == "one", "overwrite");
    check(d.size() == 2, "size 2");
    check(d.pop("alpha") == "one", "pop");
    check(!d.contains("alpha") && d.size() == 1, "popped");
    expect_error(dragonx::errc::key_not_found, "pop of a missing key",
                 [&] { (void)d.pop("alpha"); });

    // many keys over every manager: size, keys, values, items, distribution
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
        d.put("k" + std::to_string(i), "v" + std::to_string(i));
    }
    check(d.size() == n + 1, "size after " + std::to_string(n) + " puts");
    std::set<std::string> keys;
    for (const auto& k : d.keys()) {
        keys.insert(k);
    }
    check(keys.size() == n + 1 && keys.count("k0") == 1 && keys.count("beta") == 1, "keys");
    std::size_t values = 0;
    for (const auto& v : d.values()) {
        values += v.empty() ? 0 : 1;
    }
    check(values == n + 1, "values");
    for (const auto& [k, v] : d.items()) {
        if (k != "beta" && "v" + k.substr(1) != v) {
            fail("item " + k + " = " + v);
        }
    }
    std::uint64_t local = 0;
    for ([[maybe_unused]] const auto& k : d.local_keys()) {
        ++local;
    }
    check(local == d.local_size(), "local_keys and local_size agree");
    const auto stats = d.stats();
    check(stats.size() == d.managers(), "stats per manager");
    std::uint64_t stored = 0;
    for (const auto& s : stats) {
        stored += s.num_keys;
        check(s.total_bytes == (std::uint64_t{1} << 30) / d.managers(), "stats total");
        check(s.used_bytes > 0 && s.utilization > 0 && s.utilization < 1, "stats used");
    }
    check(stored == n + 1, "stats keys " + std::to_string(stored));
    // manager(i) handles see only their manager's keys
    std::uint64_t by_manager = 0;
    for (std::uint32_t m = 0; m < d.managers(); ++m) {
        auto dm = d.manager(m);
        by_manager += dm.size();
        for (const auto& k : dm.keys()) {
            check(d.which_manager(k) == m, "key " + k + " on manager " + std::to_string(m));
        }
    }
    check(by_manager == n + 1, "sizes of manager handles add up");
    d.manager(0).put("only-on-0", "x");
    check(d.manager(0).get("only-on-0") == "x", "directed put and get");
    (void)d.manager(0).pop("only-on-0");

    d.clear();
    check(d.size() == 0, "clear");

    // values and keys: large, multi-chunk, raw bytes
    {
        auto big = dragonx::ddict<std::string, std::vector<std::byte>>::attach(desc);
        std::vector<std::byte> value(64u << 20);
        for (std::size_t i = 0; i < value.size(); i += 4096) {
            value[i] = static_cast<std::byte>(i / 4096);
        }
        big.put("big", value);
        check(big.get("big") == value, "64 MiB value round trip");
        (void)big.pop("big");
        std::string long_key(64 << 10, 'k');
        d.put(long_key, "long");
        check(d.get(long_key) == "long", "64 KiB key");
        (void)d.pop(long_key);
        auto recs = dragonx::ddict<int, record>::attach(desc);
        const record r{"three chunks", {1.5, 2.5}, 7};
        recs.put(42, r);
        check(recs.get(42) == r, "multi-chunk value round trip");
        (void)recs.pop(42);
        dragonx::ddict<> raw = dragonx::ddict<>::attach(desc);
        const dragonx::bytes rk = {std::byte{1}, std::byte{2}};
        raw.put(rk, dragonx::bytes{std::byte{9}});
        check(raw.get(rk) == dragonx::bytes{std::byte{9}}, "raw bytes");
        (void)raw.pop(rk);
    }

    // batch put
    {
        auto b = d.start_batch();
        for (int i = 0; i < 5000; ++i) {
            b.put("b" + std::to_string(i), std::string(100, 'x'));
        }
        b.commit();
        check(d.size() == 5000, "batch of 5000");
        d.clear();
    }

    // bput / bget, fetch_add, wait_for
    d.bput("everywhere", "yes");
    for (std::uint32_t m = 0; m < d.managers(); ++m) {
        check(d.manager(m).get("everywhere") == "yes", "bput on manager " + std::to_string(m));
    }
    check(d.bget("everywhere") == "yes", "bget");
    check(d.fetch_add("counter", 5) == 0 && d.fetch_add("counter", 2) == 5, "fetch_add");
    auto counters = dragonx::ddict<std::string, std::int64_t>::attach(desc);
    check(counters.get("counter") == 7, "fetch_add value");
    d.put("flag", "ready");
    d.wait_for("flag", "ready", 1s);
    const auto w0 = clock_type::now();
    expect_error(dragonx::errc::timeout, "wait_for a value that never comes",
                 [&] { d.wait_for("flag", "never", 300ms); });
    const auto waited = clock_type::now() - w0;
    check(waited >= 300ms && waited < 3s, "wait_for honoured its timeout");

    // freeze
    d.freeze();
    check(d.is_frozen(), "frozen");
    expect_error(dragonx::errc::invalid_operation, "put when frozen", [&] { d.put("x", "y"); });
    check(d.get("flag") == "ready" && d.get("flag") == "ready", "gets when frozen");
    d.unfreeze();
    d.put("x", "y");

    // attach from the head itself, a second connection
    const auto a0 = clock_type::now();
    auto e = sdict::attach(desc);
    const auto attach_ms = std::chrono::duration<double, std::milli>(clock_type::now() - a0);
    check(e.get("x") == "y", "second handle");
    e.detach();
    expect_error(dragonx::errc::invalid_operation, "use after detach", [&] { (void)e.get("x"); });

    // Frozen: gets of large values are read in place from the manager's pool on this node.
    {
        auto big = dragonx::ddict<std::string, std::vector<std::byte>>::attach(desc);
        std::vector<std::byte> value(1u << 20, std::byte{7});
        big.put("frozen-big", value);
        big.freeze();
        check(big.get("frozen-big") == value && big.get("frozen-big") == value,
              "frozen large gets");
        big.unfreeze();
        (void)big.pop("frozen-big");
        big.detach();
    }

    counters.detach();
    const auto managers = d.manager_processes();
    d.destroy();
    for (const auto puid : managers) {
        check(!dragonx::process::attach(puid).alive(), "a manager outlived destroy");
    }
    check(shm_back_to(shm_before), "destroy left shared memory behind");
    std::cout << "create " << create_ms.count() << " ms, attach " << attach_ms.count()
              << " ms\n";
    std::cout << "PASS ops" << std::endl;
    return 0;
}

int client_role(const std::string& desc, int index, int clients)
{
    auto d = sdict::attach(desc);
    const int per = 300;
    for (int i = 0; i < per; ++i) {
        d.put("c" + std::to_string(index) + "-" + std::to_string(i), std::to_string(i * index));
    }
    d.fetch_add("done");
    // Wait until every client has written, then read everyone's keys.
    auto counters = dragonx::ddict<std::string, std::int64_t>::attach(desc);
    const auto until = clock_type::now() + 60s;
    while (counters.get("done") < clients) {
        if (clock_type::now() > until) {
            fail("client " + std::to_string(index) + ": others never finished");
        }
        std::this_thread::sleep_for(5ms);
    }
    for (int c = 0; c < clients; ++c) {
        for (int i = 0; i < per; i += 37) {
            const auto v = d.get("c" + std::to_string(c) + "-" + std::to_string(i));
            check(v == std::to_string(i * c), "client " + std::to_string(index) + " read");
        }
    }
    d.detach();
    return 0;
}

int clients(int count)
{
    auto& rt = dragonx::runtime::current();
    auto d = sdict::create(spread_options());
    std::vector<dragonx::process> procs;
    for (int i = 0; i < count; ++i) {
        procs.push_back(start_on(static_cast<std::uint32_t>(i) % rt.nnodes(),
                                 {"client", d.serialize(), std::to_string(i),
                                  std::to_string(count)}));
    }
    for (auto& p : procs) {
        const auto code = p.join(120s);
        check(code && *code == 0, "a client failed");
    }
    check(d.size() == static_cast<std::uint64_t>(count) * 300 + 1, "every client's keys");
    d.destroy();
    std::cout << "PASS clients" << std::endl;
    return 0;
}

int full()
{
    dragonx::ddict_options o;
    o.total_mem = 4u << 20;
    o.timeout = 20s;
    auto d = sdict::create(o);
    const std::string value(16 << 10, 'v');
    int stored = 0;
    bool was_full = false;
    for (int i = 0; i < 10000; ++i) {
        try {
            d.put("f" + std::to_string(i), value);
            ++stored;
        } catch (const dragonx::error& e) {
            check(e.is(dragonx::errc::ddict_full), std::string("put failed with ") + e.what());
            was_full = true;
            break;
        }
    }
    check(was_full && stored > 100, "filled after " + std::to_string(stored) + " puts");
    // Nothing stored was lost, and it keeps serving: gets, pops, then puts again.
    check(d.size() == static_cast<std::uint64_t>(stored), "size after full");
    check(d.get("f0") == value && d.get("f" + std::to_string(stored - 1)) == value, "gets");
    auto other = sdict::attach(d.serialize());
    check(other.get("f1") == value, "another client reads");
    for (int i = 0; i < 50; ++i) {
        (void)d.pop("f" + std::to_string(i));
    }
    d.put("after", value);
    check(other.get("after") == value, "puts after freeing room");
    const auto s = d.stats();
    check(s[0].utilization <= 0.9 + 1e-9, "utilization within the threshold");
    other.detach();
    d.destroy();
    std::cout << "PASS full" << std::endl;
    return 0;
}

int failures()
{
    auto& rt = dragonx::runtime::current();
    dragonx::ddict_options o;
    o.n_nodes = rt.nnodes() + 1;
    expect_error(dragonx::errc::invalid_argument, "more nodes than the run has",
                 [&] { (void)sdict::create(o); });
    o = {};
    o.working_set_size = 1;
    o.wait_for_keys = true;
    expect_error(dragonx::errc::invalid_argument, "wait_for_keys with one checkpoint",
                 [&] { (void)sdict::create(o); });
    o = {};
    o.policies = {dragonx::policy{.placement_kind = dragonx::placement::host_name,
                                  .host_name = "no-such-host"}};
    expect_error(dragonx::errc::process_failed, "a manager that cannot be placed",
                 [&] { (void)sdict::create(o); });
    // The second manager cannot start (no such host): the first is stopped, its pool removed.
    const auto shm_before = run_shm_objects();
    o = {};
    o.policies = {dragonx::policy{.placement_kind = dragonx::placement::host_id, .host_id = 0},
                  dragonx::policy{.placement_kind = dragonx::placement::host_name,
                                  .host_name = "no-such-host"}};
    try {
        (void)sdict::create(o);
        fail("a manager placed on a host that does not exist started");
    } catch (const dragonx::error& e) {
        std::cout << "unstartable manager: " << e.what() << "\n";
    }
    check(shm_back_to(shm_before), "a failed create left shared memory behind");
    expect_error(dragonx::errc::malformed_descriptor, "garbage descriptor",
                 [&] { (void)sdict::attach("not a descriptor"); });
    expect_error(dragonx::errc::malformed_descriptor, "truncated descriptor",
                 [&] { (void)sdict::attach("dxdict1:AAAA"); });
    // A destroyed dictionary: attaching fails quickly instead of hanging.
    auto d = sdict::create({});
    const auto desc = d.serialize();
    d.destroy();
    const auto t0 = clock_type::now();
    try {
        (void)sdict::attach(desc, 5s);
        fail("attached to a destroyed dictionary");
    } catch (const dragonx::error& e) {
        std::cout << "attach after destroy: " << e.what() << "\n";
    }
    check(clock_type::now() - t0 < 4s, "attach after destroy failed quickly");
    std::cout << "PASS failures" << std::endl;
    return 0;
}

int dead_manager()
{
    auto& rt = dragonx::runtime::current();
    auto o = spread_options();
    o.timeout = 30s;
    auto d = sdict::create(o);
    // A key on the last manager (on the last node), one on manager 0.
    std::string on_last;
    std::string on_first;
    for (int i = 0; on_last.empty() || on_first.empty(); ++i) {
        const auto k = "k" + std::to_string(i);
        if (d.which_manager(k) == d.managers() - 1) {
            on_last = k;
        } else if (d.which_manager(k) == 0) {
            on_first = k;
        }
    }
    d.put(on_last, "x");
    d.put(on_first, "y");
    const auto victim = d.managers() - 1;
    auto p = dragonx::process::attach(d.manager_processes()[victim]);
    p.kill(SIGKILL);
    (void)p.join(10s);
    const auto t0 = clock_type::now();
    try {
        (void)d.get(on_last);
        fail("a get from a killed manager succeeded");
    } catch (const dragonx::error& e) {
        check(e.is(dragonx::errc::peer_lost), std::string("wrong error: ") + e.what());
        const std::string what = e.what();
        check(what.find("manager " + std::to_string(victim)) != std::string::npos,
              "the error names the manager: " + what);
        std::cout << "get from the killed manager: " << what << "\n";
    }
    const auto waited = clock_type::now() - t0;
    check(waited < 5s, "the dead manager was noticed within 5 s");
    check(d.get(on_first) == "y", "the other managers keep serving");
    (void)rt;
    d.destroy();
    std::cout << "PASS dead_manager" << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.size() == 1 && args[0] == "ops") {
            return ops();
        }
        if (args.size() == 2 && args[0] == "clients") {
            return clients(std::stoi(args[1]));
        }
        if (args.size() == 4 && args[0] == "client") {
            return client_role(args[1], std::stoi(args[2]), std::stoi(args[3]));
        }
        if (args.size() == 1 && args[0] == "full") {
            return full();
        }
        if (args.size() == 1 && args[0] == "failures") {
            return failures();
        }
        if (args.size() == 1 && args[0] == "dead_manager") {
            return dead_manager();
        }
    } catch (const std::exception& e) {
        fail(std::string("exception: ") + e.what());
    }
    std::cerr << "usage: ddict_check ops | clients N | full | failures | dead_manager\n";
    return 2;
}
