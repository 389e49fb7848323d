// remote_channels.cpp - integration helper: channels used across (virtual) nodes through the
// transport agents. Run as the head of `dragonx run --wlm local -N 3`; it starts copies of
// itself on the other nodes in worker roles.
//
//   remote_channels stress SENDERS MESSAGES    senders on nodes 1..N-1 send into a channel of
//                                              node 0; competing receivers on nodes 0 and 1
//                                              drain a channel of node 2
//   remote_channels timeouts                   every operation's timeout and error, remotely
//   remote_channels kill_peer                  a blocked remote recv when node 2's daemon dies
//   remote_channels gateway_abuse              bad sessions and garbage in the agent's gateway
//                                              channel; the agent keeps serving
//
// Prints "PASS <mode> ..." and exits 0 when every check holds; "FAIL <why>" and exits 1.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
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
#include "transport/wire.hpp"  // the agent's wire format, spoken here by hand

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

// ---- gateway abuse ----------------------------------------------------------------------------

using dragonx::rt::detail::wire::frame_header;
using dragonx::rt::detail::wire::frame_kind;
using dragonx::rt::detail::wire::op;

// A request header, as a process would send it.
frame_header request(op o)
{
    frame_header h;
    h.kind = static_cast<std::uint8_t>(frame_kind::request);
    h.op = static_cast<std::uint8_t>(o);
    h.id = 1;
    return h;
}

int connect_agent()
{
    const char* path = std::getenv("DRAGONX_AGENT");
    check(path != nullptr, "DRAGONX_AGENT is not set");
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    check(fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0,
          "cannot connect to the agent's socket");
    return fd;
}

void write_all(int fd, const void* p, std::size_t n)
{
    check(::send(fd, p, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n), "short write to the agent");
}

// Reads n bytes within 10 s; false on EOF.
bool read_all(int fd, void* into, std::size_t n)
{
    auto* p = static_cast<char*>(into);
    while (n > 0) {
        pollfd pf{fd, POLLIN, 0};
        check(::poll(&pf, 1, 10000) == 1, "no answer from the agent within 10 s");
        const ssize_t got = ::read(fd, p, n);
        if (got <= 0) {
            return false;
        }
        p += got;
        n -= static_cast<std::size_t>(got);
    }
    return true;
}

// A session that does not start with attach is closed by the agent.
void expect_closed_after(const void* first, std::size_t n, const std::string& what)
{
    const int fd = connect_agent();
    write_all(fd, first, n);
    char c = 0;
    check(!read_all(fd, &c, 1), "the agent kept a session that began with " + what);
    ::close(fd);
}

int gateway_abuse()
{
    auto& rt = dragonx::runtime::current();
    check(rt.nnodes() >= 2, "gateway_abuse needs 2 nodes");
    auto pool = dragonx::pool::pool::create({.size = 1 << 20});
    auto stop = channel::create(pool, {.capacity = 1, .block_size = 64});
    auto holder_process = start_on(1, {"holder", stop.descriptor()});
    auto remote = channel::attach(rt.kv_get("holder", 30s));
    const auto round_trip = [&](const std::string& m) {
        remote.send(dragonx::as_bytes(m), 10s);
        std::byte b[64];
        const auto n = remote.recv(b, 10s);
        check(text(std::span(b, n)) == m, "a remote round trip lost '" + m + "'");
    };
    round_trip("before");

    const auto op_first = request(op::send);
    expect_closed_after(&op_first, sizeof op_first, "a send request");
    const std::vector<std::uint8_t> junk(48, 0xff);
    expect_closed_after(junk.data(), junk.size(), "garbage");

    // A proper session, then garbage into its gateway.
    const int fd = connect_agent();
    const auto attach = request(op::attach);
    write_all(fd, &attach, sizeof attach);
    frame_header answer;
    check(read_all(fd, &answer, sizeof answer) && answer.code == 0, "attach failed");
    std::string names(answer.payload_len, '\0');
    check(read_all(fd, names.data(), names.size()), "attach answer cut short");
    std::vector<std::string> parts;
    for (std::size_t at = 0;;) {
        const auto nl = names.find('\n', at);
        parts.push_back(names.substr(at, nl - at));
        if (nl == std::string::npos) {
            break;
        }
        at = nl + 1;
    }
    check(parts.size() == 3, "the attach answer should name 3 things: " + names);
    auto gateway = channel::attach(parts[0]);
    auto response = channel::attach(parts[2]);
    std::uint32_t seed = 12345;
    for (const std::size_t size : {0, 1, 47, 48, 100, 511, 600, 5000, 70000}) {
        std::vector<std::byte> bytes(size);
        for (auto& b : bytes) {
            seed = seed * 1103515245 + 12345;
            b = static_cast<std::byte>(seed >> 16);
        }
        gateway.send(bytes, 10s);
    }
    const auto send_frame = [&](frame_header h, const std::string& body) {
        std::vector<std::byte> f(sizeof h + body.size());
        std::memcpy(f.data(), &h, sizeof h);
        std::memcpy(f.data() + sizeof h, body.data(), body.size());
        gateway.send(f, 10s);
    };
    const auto target = remote.descriptor();
    auto h = request(op::send);
    h.session = static_cast<std::uint32_t>(answer.value);
    h.channel_len = static_cast<std::uint32_t>(target.size());
    h.payload_len = 100;  // but only 3 bytes follow
    send_frame(h, target + "abc");
    h.payload_len = 3;
    h.session += 1000;  // no such session
    send_frame(h, target + "abc");
    h.session = static_cast<std::uint32_t>(answer.value);
    h.op = static_cast<std::uint8_t>(op::attach);  // through the gateway
    send_frame(h, target + "abc");
    h.op = static_cast<std::uint8_t>(op::send);
    h.kind = static_cast<std::uint8_t>(frame_kind::result);
    send_frame(h, target + "abc");
    // A well-formed request naming no channel: an error answer in the session's channel.
    h.kind = static_cast<std::uint8_t>(frame_kind::request);
    h.channel_len = 8;
    send_frame(h, std::string("nonsenseabc"));
    write_all(fd, "!", 1);  // the doorbell, in case the agent sleeps
    std::vector<std::byte> reply(2048);
    const auto n = response.recv(reply, 10s);
    frame_header result;
    check(n >= sizeof result, "the error answer is too short");
    std::memcpy(&result, reply.data(), sizeof result);
    check(result.kind == static_cast<std::uint8_t>(frame_kind::result) && result.code != 0,
          "a request naming no channel should fail, code " + std::to_string(result.code));
    check(!response.poll(poll_event::readable, 200ms), "garbage got an answer");
    ::close(fd);

    round_trip("after");
    stop.send(dragonx::as_bytes("stop"), 10s);
    join_ok(holder_process, "the holder");
    std::cout << "PASS gateway_abuse: the agent dropped every bad request and kept serving"
              << std::endl;
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
        if (a.size() == 1 && a[0] == "gateway_abuse") {
            return gateway_abuse();
        }
    } catch (const std::exception& e) {
        fail(std::string("exception: ") + e.what());
    }
    std::cerr << "usage: remote_channels stress SENDERS MESSAGES | timeouts | kill_peer | "
                 "gateway_abuse\n";
    return 2;
}
