// ddict_persist_check.cpp - integration helper: DDict checkpoints, persistence, restart and
// copies end to end under `dragonx run` (issue 7), with other processes of the run as clients.
//
//   ddict_persist_check checkpoints              blocking and unblocking across processes,
//                                                deferred writes, timeouts, retired ids
//   ddict_persist_check persist DIR              files, count limit, persist(), restore(),
//                                                corrupt and truncated files, restore_from,
//                                                read-only replay with advance()
//   ddict_persist_check keep NAME DIR            fill two dictionaries and destroy them with
//                                                allow_restart (a run of 3 virtual nodes)
//   ddict_persist_check resume NAME DIR EMPTY keep|drop
//                                                restart them; EMPTY: manager ids expected
//                                                empty ("-": none), repaired by synchronize;
//                                                then destroy, keeping them again or not
//   ddict_persist_check clone                    clone() and copy() with all checkpoints
//
// Prints "PASS <mode>" and exits 0 when every check holds; "FAIL <why>" and exits 1.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
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
using dragonx::errc;
using dragonx::integration::check;
using dragonx::integration::fail;
using dragonx::integration::start_on;
namespace fs = std::filesystem;

template <class F>
std::string expect_error(errc code, const std::string& what, F&& f)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        if (!e.is(code)) {
            fail(what + ": wrong error: " + e.what());
        }
        return e.what();
    }
    fail(what + ": no error");
}

std::string value_at(sdict& d, std::uint64_t c, const std::string& key)
{
    d.set_checkpoint_id(c);
    const auto v = d.find(key);
    return v ? *v : "<none>";
}

std::uint32_t last_node()
{
    return dragonx::runtime::current().nnodes() - 1;
}

// ---- checkpoints -----------------------------------------------------------------------------

int checkpoints()
{
    // One manager, on the last node: the checkpoint rules are per manager (each advances on
    // its own), and the head (node 0) reaches it across nodes.
    dragonx::ddict_options o;
    o.policies = {{.placement_kind = dragonx::placement::host_id, .host_id = last_node()}};
    o.working_set_size = 2;
    o.wait_for_keys = true;
    o.timeout = 20s;
    auto d = sdict::create(o);

    d.pput("p", "p0");
    d.put("n", "n0");
    d.checkpoint();  // 1

    // A reader in another process (on the last node) blocks on n at checkpoint 1 until it is
    // written there.
    auto reader = start_on(last_node(), {"read_at", d.serialize(), "1", "n", "n1"});
    std::this_thread::sleep_for(300ms);
    check(reader.alive(), "the reader waits for n at checkpoint 1");
    d.put("n", "n1");
    const auto code = reader.join(20s);
    check(code && *code == 0, "the reader got n1 once it was written");

    // A write two checkpoints ahead must retire 0 into 1: allowed (n was rewritten at 1).
    d.set_checkpoint_id(2);
    d.put("x", "x2");
    check(d.get("p") == "p0", "a persistent key is carried forward");
    // Retiring 1 needs n at 2: a write at 3 waits, here until its timeout.
    d.set_checkpoint_id(3);
    const auto t0 = clock_type::now();
    expect_error(errc::timeout, "a write that cannot retire", [&] {
        d.put("y", "y3", 500ms);
    });
    const auto waited = clock_type::now() - t0;
    check(waited >= 450ms && waited < 5s, "the deferred write timed out after ~0.5 s");
    // A writer in another process blocks the same way, and is released by n written at 2.
    auto writer = start_on(last_node(), {"write_at", d.serialize(), "3", "y", "y3"});
    std::this_thread::sleep_for(300ms);
    check(writer.alive(), "the writer at 3 waits for checkpoint 1 to retire");
    d.set_checkpoint_id(2);
    d.put("n", "n2");
    const auto wcode = writer.join(20s);
    check(wcode && *wcode == 0, "the deferred write went through once n was written at 2");
    check(value_at(d, 3, "y") == "y3", "y at 3");

    // Checkpoint 1 is retired now (the set holds 2 and 3).
    d.set_checkpoint_id(1);
    expect_error(errc::checkpoint_retired, "a get at a retired checkpoint",
                 [&] { (void)d.get("p"); });
    expect_error(errc::checkpoint_retired, "a put at a retired checkpoint",
                 [&] { d.put("z", "z"); });
    d.sync_to_newest_checkpoint();
    check(d.checkpoint_id() == 3, "sync_to_newest_checkpoint: 3, got " +
                                      std::to_string(d.checkpoint_id()));
    // A non-persistent key is not visible at a later checkpoint: a get there waits.
    d.set_checkpoint_id(4);
    expect_error(errc::timeout, "n at 4 before anyone wrote it",
                 [&] { (void)d.get("n", 300ms); });
    check(d.get("p") == "p0", "p is readable at 4");

    d.set_checkpoint_id(0);
    d.rollback();
    check(d.checkpoint_id() == 0, "rollback stops at 0");
    {
        auto b = d.start_batch();
        expect_error(errc::invalid_operation, "checkpoint() during a batch",
                     [&] { d.checkpoint(); });
        b.commit();
    }
    d.destroy();
    std::cout << "PASS checkpoints" << std::endl;
    return 0;
}

int read_at(const std::string& desc, std::uint64_t c, const std::string& key,
            const std::string& want)
{
    auto d = sdict::attach(desc);
    d.set_checkpoint_id(c);
    const auto got = d.get(key);
    check(got == want, "read " + key + " at " + std::to_string(c) + ": " + got);
    return 0;
}

int write_at(const std::string& desc, std::uint64_t c, const std::string& key,
             const std::string& value)
{
    auto d = sdict::attach(desc);
    d.set_checkpoint_id(c);
    d.put(key, value);
    return 0;
}

// ---- persistence -----------------------------------------------------------------------------

std::vector<std::uint64_t> ids(std::initializer_list<std::uint64_t> l) { return l; }

std::string list(const std::vector<std::uint64_t>& v)
{
    std::string s = "[";
    for (const auto id : v) {
        s += (s.size() > 1 ? ", " : "") + std::to_string(id);
    }
    return s + "]";
}

dragonx::ddict_options persisted(const std::string& dir, const std::string& name)
{
    dragonx::ddict_options o;
    o.n_nodes = dragonx::runtime::current().nnodes();
    o.name = name;
    o.persister = dragonx::ddict_options::persister_kind::posix;
    o.persist_path = dir;
    o.timeout = 30s;
    return o;
}

// Writes k = v<c> (on every manager, so that each advances) and c<c> = <c> at checkpoints
// 0..last.
void write_steps(sdict& d, std::uint64_t last)
{
    for (std::uint64_t c = 0; c <= last; ++c) {
        d.set_checkpoint_id(c);
        d.bput("k", "v" + std::to_string(c));
        d.put("c" + std::to_string(c), std::to_string(c));
    }
}

void flip_byte(const fs::path& file, std::uintmax_t at)
{
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x5a));
}

int persist(const std::string& dir)
{
    const std::string name = "pc" + std::to_string(::getpid());
    {
        // Spec §8.2's example: WSS 2, freq 2, count 2, writes at 0..6 keep 2 and 4.
        auto o = persisted(dir, name);
        o.working_set_size = 2;
        o.persist_freq = 2;
        o.persist_count = 2;
        auto d = sdict::create(o);
        write_steps(d, 6);
        check(d.persisted_ids() == ids({2, 4}), "persisted " + list(d.persisted_ids()));
        for (std::uint32_t m = 0; m < d.managers(); ++m) {
            const auto file = fs::path(dir) / (name + "_" + std::to_string(m) + "_4.ddict");
            check(fs::exists(file), file.string() + " exists");
        }
        // persist() writes the handle's checkpoint (in the working set) at once.
        d.set_checkpoint_id(7);
        expect_error(errc::invalid_operation, "persist() of a checkpoint no manager holds",
                     [&] { d.persist(); });
        d.set_checkpoint_id(6);
        d.persist();
        check(d.persisted_ids() == ids({4, 6}), "after persist(): " + list(d.persisted_ids()));

        // restore(4): every manager loads it; later files go.
        d.restore(4);
        check(d.checkpoint_id() == 4, "restore moves the handle to 4");
        check(d.get("k") == "v4" && d.get("c4") == "4", "k and c4 at 4");
        check(!d.contains("c5") && !d.contains("c6"), "nothing of 5 or 6 after restore(4)");
        // k is on every manager (bput): each copy counts.
        check(d.size() == 5 + d.managers(), "c0..c4 and k: " + std::to_string(d.size()));
        check(d.persisted_ids() == ids({4}), "after restore(4): " + list(d.persisted_ids()));

        // A corrupt or truncated file is reported and never loaded.
        const auto file = fs::path(dir) / (name + "_0_4.ddict");
        const auto size = fs::file_size(file);
        flip_byte(file, size / 2);
        auto what = expect_error(errc::corrupt_file, "restore of a corrupt file",
                                 [&] { d.restore(4); });
        check(what.find(file.filename().string()) != std::string::npos,
              "the error names the file: " + what);
        check(d.get("k") == "v4", "a failed restore loses nothing");
        flip_byte(file, size / 2);  // mended
        fs::resize_file(file, size - 100);
        expect_error(errc::corrupt_file, "restore of a truncated file", [&] { d.restore(4); });
        expect_error(errc::checkpoint_unavailable, "restore of an id never persisted",
                     [&] { d.restore(5); });
        d.destroy();
    }
    {
        // Every checkpoint persisted; a read-write restore_from at creation deletes later ids.
        const std::string all = name + "all";
        auto o = persisted(dir, all);
        o.working_set_size = 2;
        o.persist_freq = 1;
        o.persist_count = -1;
        auto d = sdict::create(o);
        write_steps(d, 6);  // retires 0..4
        check(d.persisted_ids() == ids({0, 1, 2, 3, 4}), "persisted " + list(d.persisted_ids()));
        d.destroy();

        // Read-only replay from 1: forwards with advance(), backwards with restore().
        auto r = persisted(dir, all);
        r.persist_freq = 1;
        r.restore_from = 1;
        r.read_only = true;
        auto replay = sdict::create(r);
        check(replay.checkpoint_id() == 1, "the creator starts at restore_from");
        check(replay.get("k") == "v1", "k at 1");
        auto other = sdict::attach(replay.serialize());
        check(other.checkpoint_id() == 1, "an attached client starts there too");
        check(replay.advance() == 2 && replay.get("k") == "v2", "advance to 2");
        check(replay.advance() == 3 && replay.advance() == 4 && replay.get("k") == "v4",
              "advance to 4");
        expect_error(errc::checkpoint_unavailable, "advance past the last persisted id",
                     [&] { (void)replay.advance(); });
        replay.restore(2);
        check(replay.get("k") == "v2" && !replay.contains("c3"), "restore back to 2");
        expect_error(errc::invalid_operation, "a write to a read-only replay",
                     [&] { replay.put("k", "x"); });
        check(replay.persisted_ids() == ids({0, 1, 2, 3, 4}), "a replay deletes no file");
        other.detach();
        replay.destroy();

        auto w = persisted(dir, all);
        w.working_set_size = 2;
        w.persist_freq = 1;
        w.persist_count = -1;
        w.restore_from = 2;
        auto again = sdict::create(w);
        check(again.checkpoint_id() == 2 && again.get("k") == "v2", "restore_from 2");
        check(again.persisted_ids() == ids({0, 1, 2}), "later files deleted: " +
                                                           list(again.persisted_ids()));
        again.put("k", "w2");
        again.set_checkpoint_id(4);
        again.put("k", "w4");  // retires 2 again: re-persisted with the new contents
        check(again.persisted_ids() == ids({0, 1, 2}), "2 re-persisted");
        again.restore(2);
        check(again.get("k") == "w2", "the re-persisted 2 holds the new k");
        again.destroy();

        auto missing = persisted(dir, all);
        missing.restore_from = 9;
        expect_error(errc::checkpoint_unavailable, "restore_from an id never persisted",
                     [&] { (void)sdict::create(missing); });
    }
    std::cout << "PASS persist" << std::endl;
    return 0;
}

// ---- restart -----------------------------------------------------------------------------------

constexpr int restart_keys = 300;

dragonx::ddict_options restart_options(const std::string& name, const std::string& dir)
{
    dragonx::ddict_options o;
    o.name = name;
    o.persist_path = dir;
    o.working_set_size = 2;
    o.wait_for_keys = true;
    o.timeout = 30s;
    return o;
}

void fill_for_restart(sdict& d)
{
    d.pput("p", "p0");
    d.put("n", "n0");
    for (int i = 0; i < restart_keys; ++i) {
        d.pput("k" + std::to_string(i), "v" + std::to_string(i));
    }
    d.checkpoint();
    d.put("n", "n1");
    (void)d.pop("p");  // deleted at 1, still there at 0
}

int keep(const std::string& name, const std::string& dir)
{
    auto o = restart_options(name, dir);
    o.n_nodes = dragonx::runtime::current().nnodes();
    auto a = sdict::create(o);
    // A parallel copy whose managers all live on the first two nodes.
    auto b_options = restart_options(name + "b", dir);
    for (std::uint32_t m = 0; m < a.managers(); ++m) {
        b_options.policies.push_back(
            {.placement_kind = dragonx::placement::host_id, .host_id = m % 2});
    }
    auto b = sdict::create(b_options);
    check(b.managers() == a.managers(), "parallel copy of as many managers");
    fill_for_restart(a);
    fill_for_restart(b);
    a.destroy(true);
    b.destroy(true);
    check(fs::exists(fs::path(dir) / (name + ".ddict-restart")), "restart record written");
    expect_error(errc::already_exists, "a fresh create of a kept name", [&] {
        auto again = restart_options(name, dir);
        (void)sdict::create(again);
    });
    std::cout << "PASS keep" << std::endl;
    return 0;
}

void check_restarted(sdict& d, const std::set<std::uint32_t>& empty, const std::string& which)
{
    d.set_checkpoint_id(0);
    if (!empty.contains(d.which_manager("n"))) {
        check(d.get("n") == "n0", which + ": n at 0");
    }
    if (!empty.contains(d.which_manager("p"))) {
        check(d.get("p") == "p0", which + ": p at 0");
    }
    int found = 0;
    for (int i = 0; i < restart_keys; ++i) {
        const auto key = "k" + std::to_string(i);
        const bool on_empty = empty.contains(d.which_manager(key));
        // (contains: a get of a missing key waits for a writer under wait_for_keys)
        const bool present = d.contains(key);
        check(present != on_empty, which + ": " + key + (on_empty ? " came back" :
                                                                    " is missing"));
        if (present) {
            const auto v = d.get(key);
            check(v == "v" + std::to_string(i), which + ": " + key + " holds " + v);
            ++found;
        }
    }
    d.set_checkpoint_id(1);
    if (!empty.contains(d.which_manager("n"))) {
        check(d.get("n") == "n1", which + ": n at 1");
    }
    if (!empty.contains(d.which_manager("p"))) {
        check(!d.contains("p"), which + ": p deleted at 1");
    }
    std::cout << which << ": " << found << " of " << restart_keys << " keys back\n";
}

int resume(const std::string& name, const std::string& dir, const std::string& empty_list,
           bool keep_again)
{
    std::set<std::uint32_t> want_empty;
    if (empty_list != "-") {
        for (const char c : empty_list) {
            want_empty.insert(static_cast<std::uint32_t>(c - '0'));
        }
    }
    auto o = restart_options(name, dir);
    o.restart = true;
    auto a = sdict::create(o);
    const auto empty = a.empty_managers();
    check(std::set<std::uint32_t>(empty.begin(), empty.end()) == want_empty,
          "empty managers: " + std::to_string(empty.size()));
    check_restarted(a, want_empty, "restarted");
    auto ob = restart_options(name + "b", dir);
    ob.restart = true;
    auto b = sdict::create(ob);
    check(b.empty_managers().empty(), "the parallel copy came back whole");
    if (!want_empty.empty()) {
        dragonx::ddict_synchronize({a.serialize(), b.serialize()});
        check(a.empty_managers().empty(), "no empty manager after synchronize");
        check_restarted(a, {}, "synchronized");
        dragonx::ddict_synchronize({a.serialize(), b.serialize()});  // idempotent
        check_restarted(a, {}, "synchronized twice");
    }
    a.destroy(keep_again);
    b.destroy(keep_again);
    check(fs::exists(fs::path(dir) / (name + ".ddict-restart")) == keep_again,
          keep_again ? "record rewritten" : "record removed");
    std::cout << "PASS resume" << std::endl;
    return 0;
}

// ---- clone and copy --------------------------------------------------------------------------

int clone()
{
    dragonx::ddict_options o;
    o.n_nodes = dragonx::runtime::current().nnodes();
    o.working_set_size = 2;
    o.timeout = 30s;
    auto a = sdict::create(o);
    a.put("both", "a0");
    a.put("zero", "only at 0");
    a.checkpoint();
    a.put("both", "a1");
    auto b = sdict::create(o);
    for (int i = 0; i < 100; ++i) {
        b.put("old" + std::to_string(i), "x");
    }
    a.clone({b.serialize()});
    check(value_at(b, 0, "both") == "a0" && value_at(b, 0, "zero") == "only at 0",
          "the clone at 0");
    check(value_at(b, 1, "both") == "a1", "the clone at 1");
    b.set_checkpoint_id(1);
    check(b.size() == 2, "the clone holds only a's keys: " + std::to_string(b.size()));
    check(b.empty_managers().empty(), "no manager left marked empty");

    auto c = a.copy();
    check(value_at(c, 1, "both") == "a1" && value_at(c, 0, "both") == "a0", "the copy");
    check(c.name() != a.name(), "the copy has its own name");

    auto one = o;
    one.n_nodes = 1;
    one.managers_per_node = 1;
    auto small = sdict::create(one);
    if (small.managers() != a.managers()) {
        expect_error(errc::invalid_argument, "clone into another manager count",
                     [&] { a.clone({small.serialize()}); });
    }
    small.destroy();
    c.destroy();
    b.destroy();
    a.destroy();
    std::cout << "PASS clone" << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    const std::vector<std::string> args(argv + 1, argv + argc);
    try {
        if (args.size() == 1 && args[0] == "checkpoints") {
            return checkpoints();
        }
        if (args.size() == 5 && args[0] == "read_at") {
            return read_at(args[1], std::stoull(args[2]), args[3], args[4]);
        }
        if (args.size() == 5 && args[0] == "write_at") {
            return write_at(args[1], std::stoull(args[2]), args[3], args[4]);
        }
        if (args.size() == 2 && args[0] == "persist") {
            return persist(args[1]);
        }
        if (args.size() == 3 && args[0] == "keep") {
            return keep(args[1], args[2]);
        }
        if (args.size() == 5 && args[0] == "resume") {
            return resume(args[1], args[2], args[3], args[4] == "keep");
        }
        if (args.size() == 1 && args[0] == "clone") {
            return clone();
        }
    } catch (const std::exception& e) {
        fail(std::string("exception: ") + e.what());
    }
    std::cerr << "usage: ddict_persist_check checkpoints | persist DIR | keep NAME DIR | "
                 "resume NAME DIR EMPTY keep|drop | clone\n";
    return 2;
}
