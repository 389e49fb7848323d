// remote_channels.cpp - integration helper: channels used across (virtual) nodes through the
// transport agents. Run as the head of `dragonx run --wlm local -N 3`; it starts copies of
// itself on the other nodes in worker roles.
//
//   remote_channels stress SENDERS MESSAGES    senders on nodes 1..N-1 send into a channel of
//                                              node 0; competing receivers on nodes 0 and 1
//                                              drain a channel of node 2
//   remote_channels timeouts                   every operation's timeout and error, remotely
//   remote_channels kill_peer                  a blocked remote recv when node 2's daemon dies
//
// Prints "PASS <mode> ..." and exits 0 when every check holds; "FAIL <why>" and exits 1.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "checks.hpp"

namespace {

using namespace std::chrono_literals;
using dragonx::channels::channel;
using dragonx::channels::poll_event;
using clock_type = std::chrono::steady_clock;
using dragonx::integration::check;
using dragonx::integration::fail;
using dragonx::integration::start_on;

void join_ok(dragonx::process& p, const std::string& what)
{
    const auto code = p.join(60s);
    check(code && *code == 0, what + " did not exit with 0");
}

std::string text(std::span<const std::byte> b)
{
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

dragonx::errc errc_of(const std::function<void()>& f, std::string* what = nullptr)
{
    try {
        f();
    } catch (const dragonx::error& e) {
        if (what != nullptr) {
            *what = e.what();
        }
        return static_cast<dragonx::errc>(e.code().value());
    }
    return dragonx::errc::ok;
}

// ---- stress -------------------------------------------------------------------------------

// Worker: sends "<id> <seq>" for seq in [0, n) into the (remote) channel.
int sender(const std::string& desc, const std::string& id, int n)
{
    auto ch = channel::attach(desc);
    check(!ch.is_local(), "the sender's target should be remote");
    for (int i = 0; i < n; ++i) {
        const auto m = id + " " + std::to_string(i);
        ch.send(dragonx::as_bytes(m), 30s);
    }
    return 0;
}

// Worker: owns a channel on its node, fills it with n numbered messages and `ends` end
// markers (the receivers drain it remotely), then waits until it is empty.
int producer(int n, int ends)
{
    auto pool = dragonx::pool::pool::create({.size = 4 << 20});
    auto ch = channel::create(pool, {.capacity = 16, .block_size = 64});
    dragonx::runtime::current().kv_put("producer", ch.descriptor());
    for (int i = 0; i < n; ++i) {
        ch.send(dragonx::as_bytes(std::to_string(i)), 30s);
    }
    for (int i = 0; i < ends; ++i) {
        ch.send(dragonx::as_bytes("end"), 30s);
    }
    check(ch.poll(poll_event::empty, 30s), "the producer's channel was not drained");
    return 0;
}

// Receives from the producer's (remote) channel until the end marker; the numbers it got go,
// in the order received, into `out` (a remote channel too, for the node-1 consumer).
std::vector<int> consume(const std::string& producer_desc)
{
    auto ch = channel::attach(producer_desc);
    check(!ch.is_local(), "the producer's channel should be remote");
    std::vector<int> got;
    std::byte buf[64];
    for (;;) {
        const auto n = ch.recv(buf, 30s);
        const auto m = text(std::span(buf, n));
        if (m == "end") {
            return got;
        }
        got.push_back(std::stoi(m));
    }
}

int consumer(const std::string& producer_desc, const std::string& report_desc)
{
    const auto got = consume(producer_desc);
    auto report = channel::attach(report_desc);
    std::string list;
    for (const int v : got) {
        list += std::to_string(v) + ",";
    }
    report.send(dragonx::as_bytes(list), 30s);
    return 0;
}

void check_increasing(const std::vector<int>& v, const std::string& who)
{
    for (std::size_t i = 1; i < v.size(); ++i) {
        check(v[i] > v[i - 1], who + " received out of order");
    }
}

int stress(int senders, int messages)
{
    auto& rt = dragonx::runtime::current();
    check(rt.nnodes() >= 3, "stress needs 3 nodes");
    auto pool = dragonx::pool::pool::create({.size = 16 << 20});

    // Phase 1: many remote senders into one small channel of node 0 (it fills up, so sends
    // wait at node 0's agent). Every message exactly once, each sender's in order.
    auto inbox = channel::create(pool, {.capacity = 4, .block_size = 64});
    std::vector<dragonx::process> workers;
    for (int s = 0; s < senders; ++s) {
        const auto node = 1 + static_cast<std::uint32_t>(s) % (rt.nnodes() - 1);
        workers.push_back(start_on(node, {"sender", inbox.descriptor(), std::to_string(s),
                                          std::to_string(messages)}));
    }
    std::vector<int> next(static_cast<std::size_t>(senders), 0);
    std::byte buf[64];
    const auto t0 = clock_type::now();
    for (int i = 0; i < senders * messages; ++i) {
        const auto n = inbox.recv(buf, 30s);
        const auto m = text(std::span(buf, n));
        const auto space = m.find(' ');
        const int s = std::stoi(m.substr(0, space));
        const int seq = std::stoi(m.substr(space + 1));
        check(s >= 0 && s < senders, "message from an unknown sender: " + m);
        check(seq == next[static_cast<std::size_t>(s)],
              "sender " + std::to_string(s) + ": expected " +
                  std::to_string(next[static_cast<std::size_t>(s)]) + ", got " + m);
        ++next[static_cast<std::size_t>(s)];
    }
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    for (auto& w : workers) {
        join_ok(w, "a sender");
    }
    check(inbox.size() == 0, "messages beyond those sent");

    // Phase 2: competing remote receivers on nodes 0 and 1 drain a channel of node 2.
    const int produced = messages * 2;
    auto report = channel::create(pool, {.capacity = 4, .block_size = 64 << 10});
    auto prod = start_on(2, {"producer", std::to_string(produced), "2"});
    const auto producer_desc = rt.kv_get("producer", 30s);
    auto cons = start_on(1, {"consumer", producer_desc, report.descriptor()});
    const auto mine = consume(producer_desc);
    std::vector<std::byte> big(64 << 10);
    const auto theirs_text = text(std::span(big.data(), report.recv(big, 60s)));
    std::vector<int> theirs;
    for (std::size_t at = 0; at < theirs_text.size();) {
        const auto comma = theirs_text.find(',', at);
        theirs.push_back(std::stoi(theirs_text.substr(at, comma - at)));
        at = comma + 1;
    }
    join_ok(cons, "the consumer");
    join_ok(prod, "the producer");
    check_increasing(mine, "the head");
    check_increasing(theirs, "the node-1 consumer");
    std::set<int> all(mine.begin(), mine.end());
    all.insert(theirs.begin(), theirs.end());
    check(all.size() == mine.size() + theirs.size(), "a message was received twice");
    check(static_cast<int>(all.size()) == produced,
          "received " + std::to_string(all.size()) + " of " + std::to_string(produced));
    std::cout << "PASS stress " << senders * messages << " messages from " << senders
              << " remote senders in " << secs << " s; " << produced
              << " drained remotely by two receivers (" << mine.size() << " + "
              << theirs.size() << ")" << std::endl;
    return 0;
}

// ---- timeouts -----------------------------------------------------------------------------

// Worker: owns a channel of capacity 1 on its node until told to stop (a message on `stop`).
int holder(const std::string& stop_desc)
{
    auto pool = dragonx::pool::pool::create({.size = 1 << 20});
    auto ch = channel::create(pool, {.capacity = 1, .block_size = 64});
    dragonx::runtime::current().kv_put("holder", ch.descriptor());
    auto stop = channel::attach(stop_desc);
    std::byte b[16];
    (void)stop.recv(b, 60s);
    return 0;
}

template <class F>
double elapsed_ms(F&& f)
{
    const auto t0 = clock_type::now();
    f();
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

int timeouts()
{
    auto& rt = dragonx::runtime::current();
    auto pool = dragonx::pool::pool::create({.size = 1 << 20});
    auto stop = channel::create(pool, {.capacity = 1, .block_size = 64});
    auto h = start_on(1, {"holder", stop.descriptor()});
    auto ch = channel::attach(rt.kv_get("holder", 30s));
    check(!ch.is_local() && ch.node() == 1, "the holder's channel should be on node 1");

    std::byte b[64];
    check(!ch.try_recv(b), "try_recv on an empty remote channel");
    auto ms = elapsed_ms([&] {
        check(errc_of([&] { (void)ch.recv(b, 200ms); }) == dragonx::errc::timeout,
              "recv on an empty remote channel should time out");
    });
    check(ms >= 190 && ms < 3000, "recv timed out after " + std::to_string(ms) + " ms");
    check(!ch.poll(poll_event::readable, 100ms), "poll readable on an empty channel");
    check(ch.poll(poll_event::writable, 0ms), "poll writable on an empty channel");

    check(ch.try_send(dragonx::as_bytes("first")), "try_send into an empty remote channel");
    check(ch.size() == 1, "size after one send");
    check(!ch.try_send(dragonx::as_bytes("second")), "try_send into a full remote channel");
    ms = elapsed_ms([&] {
        check(errc_of([&] { ch.send(dragonx::as_bytes("second"), 200ms); }) ==
                  dragonx::errc::timeout,
              "send into a full remote channel should time out");
    });
    check(ms >= 190 && ms < 3000, "send timed out after " + std::to_string(ms) + " ms");

    std::byte tiny[2];
    check(errc_of([&] { (void)ch.recv(tiny, 1s); }) == dragonx::errc::message_too_large,
          "recv into a too small buffer");
    check(ch.size() == 1, "a message too large for the buffer must stay in the channel");
    const auto n = ch.recv(b, 1s);
    check(text(std::span(b, n)) == "first", "the message that stayed");

    // A receive that waits at the owning node, completed by a later send from here.
    std::thread later([&] {
        std::this_thread::sleep_for(100ms);
        auto again = channel::attach(ch.descriptor());
        again.send(dragonx::as_bytes("later"), 1s);
    });
    const auto n2 = ch.recv(b, 5s);
    later.join();
    check(text(std::span(b, n2)) == "later", "a waiting remote recv");

    // Messages larger than the slot travel as pool blocks at the owner.
    std::string large(200000, 'x');
    large[12345] = 'y';
    ch.send(dragonx::as_bytes(large), 5s);
    std::vector<std::byte> into(300000);
    const auto n3 = ch.recv(into, 5s);
    check(text(std::span(into.data(), n3)) == large, "a 200 kB message round trip");

    std::string what;
    check(errc_of([&] { (void)channel::attach("dxch1:garbage").size(); }, &what) ==
              dragonx::errc::malformed_descriptor,
          "a malformed descriptor");
    stop.send(dragonx::as_bytes("stop"), 5s);
    join_ok(h, "the holder");
    std::cout << "PASS timeouts" << std::endl;
    return 0;
}

// ---- a peer daemon killed -----------------------------------------------------------------

// The pid of the dragonx-runtime of `node` in this run (virtual nodes: same machine).
pid_t daemon_of(std::uint32_t node)
{
    const auto run = dragonx::runtime::current().run_id();
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const auto name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        std::ifstream in(entry.path() / "cmdline");
        std::string cmdline((std::istreambuf_iterator<char>(in)), {});
        std::vector<std::string> args;
        for (std::size_t at = 0; at < cmdline.size();) {
            const auto end = cmdline.find('\0', at);
            args.push_back(cmdline.substr(at, end - at));
            at = end == std::string::npos ? cmdline.size() : end + 1;
        }
        bool is_daemon = !args.empty() && args[0].ends_with("dragonx-runtime");
        bool this_run = false;
        bool this_node = false;
        for (std::size_t i = 0; i + 1 < args.size(); ++i) {
            this_run = this_run || (args[i] == "--run" && args[i + 1] == run);
            this_node = this_node || (args[i] == "--node" && args[i + 1] == std::to_string(node));
        }
        if (is_daemon && this_run && this_node) {
            return static_cast<pid_t>(std::stoi(name));
        }
    }
    fail("cannot find node " + std::to_string(node) + "'s daemon");
}

int kill_peer()
{
    // The run is torn down as soon as the launcher hears of the lost daemon: outlive the
    // SIGTERM long enough to report (the SIGKILL follows a grace period later).
    std::signal(SIGTERM, SIG_IGN);
    auto& rt = dragonx::runtime::current();
    auto pool = dragonx::pool::pool::create({.size = 1 << 20});
    auto stop = channel::create(pool, {.capacity = 1, .block_size = 64});
    [[maybe_unused]] auto holder = start_on(2, {"holder", stop.descriptor()});
    auto ch = channel::attach(rt.kv_get("holder", 30s));
    const pid_t victim = daemon_of(2);
    std::thread killer([victim] {
        std::this_thread::sleep_for(300ms);
        ::kill(victim, SIGKILL);
    });
    std::string what;
    std::byte b[64];
    const auto t0 = clock_type::now();
    const auto e = errc_of([&] { (void)ch.recv(b, dragonx::forever); }, &what);
    const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    killer.join();
    std::cerr << "remote recv ended after " << ms << " ms: " << what << std::endl;
    check(e == dragonx::errc::peer_lost, "expected peer_lost, got: " + what);
    check(what.find("node 2") != std::string::npos, "the error should name node 2: " + what);
    std::cout << "PASS kill_peer: " << what << std::endl;
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    const std::vector<std::string> a(argv + 1, argv + argc);
    try {
        if (a.size() == 3 && a[0] == "stress") {
            return stress(std::stoi(a[1]), std::stoi(a[2]));
        }
        if (a.size() == 4 && a[0] == "sender") {
            return sender(a[1], a[2], std::stoi(a[3]));
        }
        if (a.size() == 3 && a[0] == "producer") {
            return producer(std::stoi(a[1]), std::stoi(a[2]));
        }
        if (a.size() == 3 && a[0] == "consumer") {
            return consumer(a[1], a[2]);
        }
        if (a.size() == 1 && a[0] == "timeouts") {
            return timeouts();
        }
        if (a.size() == 2 && a[0] == "holder") {
            return holder(a[1]);
        }
        if (a.size() == 1 && a[0] == "kill_peer") {
            return kill_peer();
        }
    } catch (const std::exception& e) {
        fail(std::string("exception: ") + e.what());
    }
    std::cerr << "usage: remote_channels stress SENDERS MESSAGES | timeouts | kill_peer\n";
    return 2;
}
