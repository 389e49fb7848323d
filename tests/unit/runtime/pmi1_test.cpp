// pmi1_test.cpp - the PMI-1 server of pmi1 process groups: the wire parser, the protocol
// state (pmi1_job) driven line by line, and the TCP server with real sockets. Bad input of
// every kind gets a clear error and a closed connection, never a crash or a hang.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <dragonx/common/error.hpp>

#include "pmi1_job.hpp"
#include "pmi1_server.hpp"
#include "pmi1_wire.hpp"

using namespace dragonx::rt::detail;
using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<pmi1_server>);
static_assert(!std::is_copy_assignable_v<pmi1_server>);

namespace {

/// Parsing `line` throws malformed_message whose text contains `why`.
void expect_malformed(std::string_view line, const std::string& why)
{
    INFO("line: " << std::string(line.substr(0, 80)));
    try {
        (void)parse_pmi1_line(line);
        FAIL("parsed");
    } catch (const dragonx::error& e) {
        CHECK(e.is(dragonx::errc::malformed_message));
        CHECK_THAT(e.what(), Catch::Contains(why));
    }
}

/// A pmi1_job whose hooks record what it does.
struct recorded_job {
    std::map<std::uint64_t, std::vector<std::string>> sent;  // lines without '\n'
    std::vector<std::uint64_t> closed;
    std::vector<std::pair<int, int>> aborted;
    std::vector<std::string> failures;
    pmi1_job job;

    explicit recorded_job(std::vector<std::uint32_t> nodes)
        : job("kvs_test", std::move(nodes),
              {.send =
                   [this](std::uint64_t c, std::string line) {
                       REQUIRE(line.back() == '\n');
                       line.pop_back();
                       sent[c].push_back(std::move(line));
                   },
               .close = [this](std::uint64_t c) { closed.push_back(c); },
               .aborted = [this](int rank, int code) { aborted.emplace_back(rank, code); },
               .failed = [this](const std::string& why) { failures.push_back(why); }})
    {
    }

    /// The lines sent to `client` since the last call.
    std::vector<std::string> take(std::uint64_t client)
    {
        auto out = std::move(sent[client]);
        sent[client].clear();
        return out;
    }
    bool is_closed(std::uint64_t client) const
    {
        return std::find(closed.begin(), closed.end(), client) != closed.end();
    }
    /// Client `c` identifies as rank `rank` and does what MPICH's MPI_Init starts with.
    void connect(std::uint64_t c, int rank)
    {
        job.line(c, "cmd=initack pmiid=" + std::to_string(rank));
        job.line(c, "cmd=init pmi_version=1 pmi_subversion=1");
        (void)take(c);
    }
};

}  // namespace

TEST_CASE("pmi1 lines parse into a command and attributes", "[runtime][pmi]")
{
    const auto c = parse_pmi1_line("cmd=put kvsname=kvs_1 key=-bcast-1-0 value=2F6465");
    CHECK(c.name() == "put");
    CHECK(c.at("kvsname") == "kvs_1");
    CHECK(c.at("key") == "-bcast-1-0");
    CHECK(c.at("value") == "2F6465");
    CHECK(c.find("nothing") == nullptr);
    // Empty values, extra and trailing spaces, a '\r' before the '\n' are all accepted.
    const auto spaced = parse_pmi1_line("cmd=get  key= value=a=b \r");
    CHECK(spaced.at("key").empty());
    CHECK(spaced.at("value") == "a=b");
    CHECK(parse_pmi1_line("cmd=initack pmiid=12").number("pmiid") == 12);
    CHECK(pmi1_line("get_result", {{"rc", "0"}, {"value", "x"}}) ==
          "cmd=get_result rc=0 value=x\n");
    CHECK(pmi1_word("key k not found=") == "key_k_not_found_");
}

TEST_CASE("malformed pmi1 lines are refused with a clear error", "[runtime][pmi]")
{
    expect_malformed("", "empty line");
    expect_malformed("    ", "empty line");
    expect_malformed("cmd", "is not attribute=value");
    expect_malformed("cmd=get key", "'key' is not attribute=value");
    expect_malformed("=x cmd=get", "has no attribute name");
    expect_malformed("cmd=get key=a key=b", "attribute key given twice");
    expect_malformed("key=a cmd=get", "starts with 'key='");
    expect_malformed("cmd= key=a", "not cmd=<command>");
    expect_malformed("mcmd=spawn nprocs=2", "not supported");
    expect_malformed(std::string("cmd=get\0key=a", 13), "control character 0x00");
    expect_malformed("cmd=get key=\x1b[31m", "control character 0x1b");
    expect_malformed("cmd=put value=" + std::string(pmi1_max_line, 'a'), "longer than the limit");
    const auto c = parse_pmi1_line("cmd=initack pmiid=-3 other=7x");
    CHECK_THROWS_WITH(c.number("pmiid"), Catch::Contains("not a non-negative number"));
    CHECK_THROWS_WITH(c.number("other"), Catch::Contains("not a non-negative number"));
    CHECK_THROWS_WITH(c.number("absent"), Catch::Contains("lacks its absent= attribute"));
    CHECK_THROWS_WITH(parse_pmi1_line("cmd=x n=99999999999999").number("n"),
                      Catch::Contains("not a non-negative number"));
    CHECK_THROWS_AS(pmi1_line("x", {{"msg", "a b"}}), dragonx::error);
}

TEST_CASE("pmi1 local ranks and the process mapping follow the placement", "[runtime][pmi]")
{
    const std::vector<std::uint32_t> round_robin{0, 1, 0, 1};
    const auto local = pmi1_local_ranks(round_robin);
    REQUIRE(local.size() == 4);
    CHECK(local[0].index == 0);
    CHECK(local[1].index == 0);
    CHECK(local[2].index == 1);
    CHECK(local[3].index == 1);
    for (const auto& l : local) {
        CHECK(l.count == 2);
    }
    CHECK(pmi1_process_mapping(round_robin, 1024) == "(vector,(0,2,1),(0,2,1))");
    CHECK(pmi1_process_mapping({0, 0, 1, 1}, 1024) == "(vector,(0,2,2))");
    CHECK(pmi1_process_mapping({3, 3, 3}, 1024) == "(vector,(0,1,3))");
    // Nodes are numbered in order of first appearance: node 5 is 0, node 2 is 1.
    CHECK(pmi1_process_mapping({5, 2, 2}, 1024) == "(vector,(0,1,1),(1,1,2))");
    const auto uneven = pmi1_local_ranks({5, 2, 2});
    CHECK(uneven[0].count == 1);
    CHECK(uneven[2].index == 1);
    CHECK(uneven[2].count == 2);
    CHECK(pmi1_process_mapping(round_robin, 10).empty());  // too long: left to MPICH
}

TEST_CASE("a pmi1 job answers what MPICH's MPI_Init asks", "[runtime][pmi]")
{
    recorded_job r({0, 1, 0});
    r.job.line(7, "cmd=initack pmiid=2");
    CHECK(r.take(7) == std::vector<std::string>{"cmd=initack", "cmd=set size=3",
                                                "cmd=set rank=2", "cmd=set debug=0"});
    r.job.line(7, "cmd=init pmi_version=1 pmi_subversion=1");
    r.job.line(7, "cmd=get_maxes");
    r.job.line(7, "cmd=get_appnum");
    r.job.line(7, "cmd=get_my_kvsname");
    r.job.line(7, "cmd=get_universe_size");
    r.job.line(7, "cmd=get kvsname=kvs_test key=PMI_process_mapping");
    CHECK(r.take(7) ==
          std::vector<std::string>{
              "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0",
              "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024", "cmd=appnum appnum=0",
              "cmd=my_kvsname kvsname=kvs_test", "cmd=universe_size size=3",
              "cmd=get_result rc=0 msg=success value=(vector,(0,2,1),(0,1,1))"});
    r.job.line(7, "cmd=init pmi_version=2 pmi_subversion=0");
    CHECK(r.take(7) == std::vector<std::string>{
                           "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=-1"});
    CHECK(r.failures.empty());
}

TEST_CASE("a pmi1 barrier ends when the last rank enters; puts are seen after it",
          "[runtime][pmi]")
{
    recorded_job r({0, 1, 0});
    for (int rank = 0; rank < 3; ++rank) {
        r.connect(10 + static_cast<std::uint64_t>(rank), rank);
    }
    r.job.line(10, "cmd=put kvsname=kvs_test key=addr-0 value=AB12");
    CHECK(r.take(10) == std::vector<std::string>{"cmd=put_result rc=0 msg=success"});
    r.job.line(10, "cmd=barrier_in");
    r.job.line(11, "cmd=barrier_in");
    CHECK(r.take(10).empty());
    CHECK(r.take(11).empty());
    r.job.line(12, "cmd=barrier_in");
    for (std::uint64_t c = 10; c < 13; ++c) {
        CHECK(r.take(c) == std::vector<std::string>{"cmd=barrier_out"});
    }
    r.job.line(12, "cmd=get kvsname=kvs_test key=addr-0");
    r.job.line(12, "cmd=get kvsname=kvs_test key=addr-9");
    r.job.line(12, "cmd=get kvsname=other key=addr-0");
    CHECK(r.take(12) == std::vector<std::string>{
                            "cmd=get_result rc=0 msg=success value=AB12",
                            "cmd=get_result rc=-1 msg=key_addr-9_not_found",
                            "cmd=get_result rc=-1 msg=unknown_kvsname"});
    // A second barrier works the same.
    for (std::uint64_t c = 10; c < 13; ++c) {
        r.job.line(c, "cmd=barrier_in");
    }
    for (std::uint64_t c = 10; c < 13; ++c) {
        CHECK(r.take(c) == std::vector<std::string>{"cmd=barrier_out"});
    }
    // Finalized ranks may leave and exit.
    for (std::uint64_t c = 10; c < 13; ++c) {
        r.job.line(c, "cmd=finalize");
        CHECK(r.take(c) == std::vector<std::string>{"cmd=finalize_ack"});
        r.job.disconnected(c);
        r.job.rank_exited(static_cast<int>(c - 10));
    }
    CHECK_FALSE(r.job.failed());
    CHECK(r.closed.empty());
}

TEST_CASE("bad puts are answered with an error and the rank goes on", "[runtime][pmi]")
{
    recorded_job r({0});
    r.connect(1, 0);
    r.job.line(1, "cmd=put kvsname=nope key=k value=v");
    r.job.line(1, "cmd=put kvsname=kvs_test key=" + std::string(65, 'k') + " value=v");
    r.job.line(1, "cmd=put kvsname=kvs_test key=k value=" + std::string(1025, 'v'));
    r.job.line(1, "cmd=frobnicate");
    const auto lines = r.take(1);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "cmd=put_result rc=-1 msg=unknown_kvsname");
    CHECK_THAT(lines[1], Catch::StartsWith("cmd=put_result rc=-1 msg=key_of_65_characters"));
    CHECK_THAT(lines[2], Catch::StartsWith("cmd=put_result rc=-1 msg=value_of_1025"));
    CHECK(lines[3] == "cmd=error rc=-1 msg=unsupported_PMI-1_command_frobnicate");
    CHECK_FALSE(r.job.failed());
    CHECK(r.closed.empty());
}

TEST_CASE("clients that do not identify as a free rank are refused", "[runtime][pmi]")
{
    recorded_job r({0, 0});
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"cmd=init pmi_version=1 pmi_subversion=1", "must_be_initack"},
        {"cmd=initack", "pmiid_''_is_not_a_rank"},
        {"cmd=initack pmiid=2", "pmiid_'2'_is_not_a_rank_of_this_job_(0_to_1)"},
        {"cmd=initack pmiid=x1", "pmiid_'x1'_is_not_a_rank"},
        {"garbage", "malformed_PMI-1_line"},
    };
    std::uint64_t client = 100;
    for (const auto& [line, why] : cases) {
        INFO(line);
        r.job.line(client, line);
        const auto sent = r.take(client);
        REQUIRE(sent.size() == 1);
        CHECK_THAT(sent[0], Catch::StartsWith("cmd=error rc=-1 msg=") && Catch::Contains(why));
        CHECK(r.is_closed(client));
        ++client;
    }
    // A rank connects once: a second client claiming it is refused, the first goes on.
    r.connect(1, 0);
    r.job.line(2, "cmd=initack pmiid=0");
    CHECK_THAT(r.take(2).at(0), Catch::Contains("rank_0_has_connected_already"));
    CHECK(r.is_closed(2));
    CHECK_FALSE(r.job.failed());
    CHECK_FALSE(r.is_closed(1));
}

TEST_CASE("a rank lost before finalize fails the job and releases the barrier",
          "[runtime][pmi]")
{
    enum class loss { disconnect, exit, bad_line, abort, double_barrier };
    const auto how = GENERATE(loss::disconnect, loss::exit, loss::bad_line, loss::abort,
                              loss::double_barrier);
    recorded_job r({0, 1, 0});
    for (int rank = 0; rank < 3; ++rank) {
        r.connect(static_cast<std::uint64_t>(rank) + 1, rank);
    }
    r.job.line(1, "cmd=barrier_in");
    r.job.line(2, "cmd=barrier_in");
    switch (how) {
    case loss::disconnect:
        r.job.disconnected(3);
        break;
    case loss::exit:
        r.job.rank_exited(2);
        break;
    case loss::bad_line:
        r.job.line(3, "cmd=put kvsname=kvs_test");  // no key=
        break;
    case loss::abort:
        r.job.line(3, "cmd=abort exitcode=-7");
        break;
    case loss::double_barrier:
        r.job.line(2, "cmd=barrier_in");
        break;
    }
    REQUIRE(r.job.failed());
    REQUIRE(r.failures.size() == 1);
    INFO(r.failures[0]);
    CHECK_THAT(r.failures[0], Catch::StartsWith("rank "));
    // The waiting ranks get an error instead of barrier_out, and are closed (rank 1, which
    // entered twice, gets the error about that instead). An aborting rank (client 3) gets
    // nothing: MPICH waits for its process to be killed.
    if (how == loss::abort) {
        CHECK(r.take(3).empty());
        CHECK_FALSE(r.is_closed(3));
    }
    for (std::uint64_t c = 1; c <= 2; ++c) {
        const auto sent = r.take(c);
        REQUIRE(sent.size() == 1);
        CHECK_THAT(sent[0], Catch::StartsWith(how == loss::double_barrier && c == 2
                                                  ? "cmd=error rc=-1 msg=rank_1_entered"
                                                  : "cmd=error rc=-1 msg=job_failed:_rank_"));
        CHECK(r.is_closed(c));
    }
    if (how == loss::abort) {
        CHECK(r.aborted == std::vector<std::pair<int, int>>{{2, -7}});
    } else {
        CHECK(r.aborted.empty());
    }
    // Later clients are refused; later events change nothing.
    r.job.line(9, "cmd=initack pmiid=1");
    CHECK_THAT(r.take(9).at(0), Catch::Contains("has_failed_already"));
    r.job.rank_exited(0);
    r.job.disconnected(1);
    CHECK(r.failures.size() == 1);
}

TEST_CASE("a pmi1 job needs ranks and a usable kvsname", "[runtime][pmi]")
{
    CHECK_THROWS_AS(pmi1_job("kvs", {}, {}), dragonx::error);
    CHECK_THROWS_AS(pmi1_job("a b", {0}, {}), dragonx::error);
    CHECK_THROWS_AS(pmi1_job(std::string(300, 'k'), {0}, {}), dragonx::error);
}

// ---- over TCP ---------------------------------------------------------------------------

namespace {

/// A blocking client socket with a limit on every read.
class line_client {
public:
    explicit line_client(std::uint16_t port)
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    ~line_client() { close(); }
    line_client(const line_client&) = delete;
    line_client& operator=(const line_client&) = delete;

    void close()
    {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    /// Writes all of `text`; false if the server has closed.
    bool send(const std::string& text)
    {
        std::size_t done = 0;
        while (done < text.size()) {
            const auto n = ::send(fd_, text.data() + done, text.size() - done, MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            done += static_cast<std::size_t>(n);
        }
        return true;
    }
    /// The next line (without '\n'); "<eof>" when the server closed, "<timeout>" after 10 s.
    std::string line()
    {
        const auto limit = std::chrono::steady_clock::now() + 10s;
        for (;;) {
            if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
                auto out = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return out;
            }
            pollfd p{fd_, POLLIN, 0};
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                limit - std::chrono::steady_clock::now());
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                return "<timeout>";
            }
            char chunk[4096];
            const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) {
                return "<eof>";
            }
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

private:
    int fd_ = -1;
    std::string buffer_;
};

/// A pmi1_server on 127.0.0.1 with its event loop on a thread of its own, stopped (and the
/// server destroyed on that thread) by the destructor.
struct served_job {
    asio::io_context io;
    std::unique_ptr<pmi1_server> server;
    std::atomic<int> failures{0};
    std::thread loop;

    explicit served_job(std::vector<std::uint32_t> nodes)
    {
        server = std::make_unique<pmi1_server>(
            io, "127.0.0.1", "kvs_tcp", std::move(nodes),
            pmi1_job_hooks{.failed = [this](const std::string&) { ++failures; }});
        loop = std::thread([this] {
            auto guard = asio::make_work_guard(io);
            io.run();
        });
    }
    ~served_job()
    {
        asio::post(io, [this] {
            server.reset();
            io.stop();
        });
        loop.join();
    }
    served_job(const served_job&) = delete;
    served_job& operator=(const served_job&) = delete;
};

}  // namespace

TEST_CASE("pmi1 ranks meet in a barrier over TCP", "[runtime][pmi]")
{
    served_job s({0, 1});
    CHECK_THAT(s.server->port_string(), Catch::StartsWith("127.0.0.1:"));
    line_client a(s.server->port());
    line_client b(s.server->port());
    REQUIRE(a.send("cmd=initack pmiid=0\n"));
    REQUIRE(b.send("cmd=initack pmiid=1\ncmd=barrier_in\n"));
    for (const auto& want : {"cmd=initack", "cmd=set size=2", "cmd=set rank=0",
                             "cmd=set debug=0"}) {
        CHECK(a.line() == want);
    }
    for (int i = 0; i < 4; ++i) {
        (void)b.line();
    }
    // Two commands in one write, the second in two pieces.
    REQUIRE(a.send("cmd=put kvsname=kvs_tcp key=k value=v\ncmd=barr"));
    CHECK(a.line() == "cmd=put_result rc=0 msg=success");
    REQUIRE(a.send("ier_in\n"));
    CHECK(a.line() == "cmd=barrier_out");
    CHECK(b.line() == "cmd=barrier_out");
    REQUIRE(b.send("cmd=get kvsname=kvs_tcp key=k\ncmd=finalize\n"));
    CHECK(b.line() == "cmd=get_result rc=0 msg=success value=v");
    CHECK(b.line() == "cmd=finalize_ack");
    REQUIRE(a.send("cmd=finalize\n"));
    CHECK(a.line() == "cmd=finalize_ack");
    a.close();
    b.close();
    std::this_thread::sleep_for(50ms);
    CHECK(s.failures == 0);
}

TEST_CASE("bad input over TCP gets an error and a closed connection, never a hang",
          "[runtime][pmi]")
{
    served_job s({0, 0});
    SECTION("a line longer than the limit, without a newline")
    {
        line_client c(s.server->port());
        (void)c.send(std::string(3 * pmi1_max_line, 'z'));
        CHECK_THAT(c.line(), Catch::StartsWith("cmd=error rc=-1 msg=malformed_PMI-1_line"));
        CHECK(c.line() == "<eof>");
    }
    SECTION("binary garbage")
    {
        line_client c(s.server->port());
        (void)c.send(std::string("\x00\xff\x01garbage\n", 11));
        CHECK_THAT(c.line(), Catch::Contains("control_character"));
        CHECK(c.line() == "<eof>");
    }
    SECTION("a rank that leaves before finalize releases the other from its barrier")
    {
        line_client a(s.server->port());
        line_client b(s.server->port());
        REQUIRE(a.send("cmd=initack pmiid=0\ncmd=barrier_in\n"));
        REQUIRE(b.send("cmd=initack pmiid=1\n"));
        for (int i = 0; i < 4; ++i) {
            (void)a.line();
            (void)b.line();
        }
        b.close();
        CHECK_THAT(a.line(), Catch::Contains("closed_its_PMI_connection_before_finalize"));
        CHECK(a.line() == "<eof>");
        // The job has failed: a new client is refused.
        line_client late(s.server->port());
        (void)late.send("cmd=initack pmiid=1\n");
        CHECK_THAT(late.line(), Catch::Contains("has_failed_already"));
        CHECK(late.line() == "<eof>");
        CHECK(s.failures == 1);
    }
    SECTION("closing the server ends every connection")
    {
        line_client a(s.server->port());
        REQUIRE(a.send("cmd=initack pmiid=0\ncmd=barrier_in\n"));
        for (int i = 0; i < 4; ++i) {
            (void)a.line();
        }
        asio::post(s.io, [&s] { s.server.reset(); });
        CHECK(a.line() == "<eof>");
    }
}
