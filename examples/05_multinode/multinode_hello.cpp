// multinode_hello.cpp - the head program of the batch scripts (examples/batch/): the nodes
// of the allocation, a process on every other node, and a message over a channel from each
// of them (--no-channel: without the messages).
//
//   dragonx run build/examples/multinode_hello             # inside salloc/sbatch/qsub
//   dragonx run --wlm local -N 3 build/examples/multinode_hello
//
// The head prints the run's nodes (system::current().nodes()), then starts this program again
// on every node but its own, pinned there by a host_id policy. Each child checks that the
// runtime put it on the node it was meant for and prints where it runs (node, name, and the
// host name the OS reports). Unless --no-channel, the head first creates a pool and a channel on
// its node and passes the channel's descriptor on each child's command line; the child
// attaches and sends "hello from node N", and the head receives one message per child with a
// timeout. (A channel of another node is reached through the daemons' transport agent.)
//
// Exit code 0 when every child ran where it should (and every message came), 1 otherwise.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;

constexpr auto child_limit = 60s;    // a child's whole life
constexpr auto message_limit = 30s;  // waiting for the channel messages

std::string os_hostname()
{
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return name;
}

/// A child: on node `want_node` named `want_name`; sends a message if given a descriptor.
int child(std::uint32_t want_node, const std::string& want_name,
          const std::optional<std::string>& channel_descriptor)
{
    const auto& rt = dragonx::runtime::current();
    const bool placed = rt.node() == want_node && rt.hostname() == want_name;
    std::printf("child on node %u (%s), host %s, pid %d: %s\n", rt.node(), rt.hostname().c_str(),
                os_hostname().c_str(), static_cast<int>(::getpid()),
                placed ? "where it was sent" : "NOT where it was sent");
    if (!placed) {
        return 1;
    }
    if (channel_descriptor) {
        auto ch = dragonx::channels::channel::attach(*channel_descriptor);
        const std::string text = "hello from node " + std::to_string(rt.node());
        ch.send(std::as_bytes(std::span(text)), message_limit);
    }
    return 0;
}

int head(const char* self, bool use_channel)
{
    const auto sys = dragonx::system::current();
    const auto& rt = dragonx::runtime::current();
    std::string names;
    for (const auto& n : sys.nodes()) {
        names += (names.empty() ? "" : ", ") + n.hostname;
    }
    std::printf("multinode_hello: %u node(s): %s\n", sys.nnodes(), names.c_str());
    std::printf("multinode_hello: head on node %u (%s), host %s\n", rt.node(),
                rt.hostname().c_str(), os_hostname().c_str());

    // The channel lives in a pool on the head's node; children on other nodes attach to it
    // by its descriptor.
    std::optional<dragonx::pool::pool> pool;
    std::optional<dragonx::channels::channel> ch;
    if (use_channel) {
        pool.emplace(dragonx::pool::pool::create({.size = 1 << 20}));
        ch.emplace(dragonx::channels::channel::create(*pool, {.capacity = 64, .block_size = 256}));
    }

    struct started {
        std::uint32_t node;
        dragonx::process proc;
    };
    std::vector<started> children;
    for (const auto& n : sys.nodes()) {
        if (n.index == rt.node()) {
            continue;
        }
        dragonx::policy there;
        there.placement_kind = dragonx::placement::host_id;
        there.host_id = n.index;
        std::vector<std::string> args = {"--child", std::to_string(n.index), n.hostname};
        if (ch) {
            args.push_back(ch->descriptor());
        }
        children.push_back(
            {n.index, dragonx::process::start({.exe = self, .args = args, .where = there})});
    }

    bool ok = true;
    std::set<std::string> messages;
    if (ch) {
        // One message per child, within message_limit; a child that failed (exited without
        // sending) ends the wait early.
        std::vector<std::byte> buffer(256);
        const auto deadline = std::chrono::steady_clock::now() + message_limit;
        bool last_look = false;
        while (messages.size() < children.size() && std::chrono::steady_clock::now() < deadline) {
            if (const auto size = ch->try_recv(buffer)) {
                const std::string text(reinterpret_cast<const char*>(buffer.data()), *size);
                std::printf("multinode_hello: received \"%s\"\n", text.c_str());
                messages.insert(text);
                continue;
            }
            const bool any_alive = std::any_of(children.begin(), children.end(),
                                               [](started& c) { return c.proc.alive(); });
            if (!any_alive) {
                if (last_look) {
                    break;
                }
                last_look = true;  // once more: a message may have come as the last one exited
                continue;
            }
            (void)ch->poll(dragonx::channels::poll_event::readable, 100ms);
        }
        if (messages.size() < children.size()) {
            std::printf("multinode_hello: %zu of %zu channel message(s) came\n", messages.size(),
                        children.size());
            ok = false;
        }
    }
    for (auto& c : children) {
        const auto code = c.proc.join(child_limit);
        const bool good = code == 0 && c.proc.node() == c.node;
        if (!code) {
            c.proc.kill();
        }
        if (!good) {
            std::printf("multinode_hello: the child for node %u %s\n", c.node,
                        code ? ("exited with " + std::to_string(*code)).c_str()
                             : "did not finish in time");
            ok = false;
        }
        if (ch && messages.count("hello from node " + std::to_string(c.node)) == 0) {
            ok = false;
        }
    }
    const std::string received =
        ch ? ", " + std::to_string(messages.size()) + " channel message(s) received" : "";
    std::printf("multinode_hello: processes ran on %zu other node(s)%s: %s\n", children.size(),
                received.c_str(), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        if (args.size() >= 3 && args[0] == "--child") {
            return child(static_cast<std::uint32_t>(std::stoul(args[1])), args[2],
                         args.size() >= 4 ? std::optional<std::string>(args[3]) : std::nullopt);
        }
        if (args.size() > 1 || (args.size() == 1 && args[0] != "--no-channel")) {
            std::fprintf(stderr, "usage: multinode_hello [--no-channel]\n");
            return 2;
        }
        return head(argv[0], args.empty());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "multinode_hello: %s\n", e.what());
        return 1;
    }
}
