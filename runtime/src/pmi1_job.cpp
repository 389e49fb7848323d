// pmi1_job.cpp - the PMI-1 protocol state of one MPI job.
#include "pmi1_job.hpp"

#include <charconv>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

namespace dragonx::rt::detail {

namespace {

spdlog::logger& logger() { return log::get("runtime"); }

std::string error_line(const std::string& why)
{
    return pmi1_line("error", {{"rc", "-1"}, {"msg", pmi1_word(why)}});
}

/// Node numbers in order of first appearance: the i-th distinct node of node_of_rank is i.
std::vector<std::uint32_t> compact_nodes(const std::vector<std::uint32_t>& node_of_rank)
{
    std::map<std::uint32_t, std::uint32_t> number;
    std::vector<std::uint32_t> out;
    out.reserve(node_of_rank.size());
    for (const auto n : node_of_rank) {
        const auto next = static_cast<std::uint32_t>(number.size());
        out.push_back(number.emplace(n, next).first->second);
    }
    return out;
}

/// The exitcode= of an abort (any int; MPI_Abort passes the user's code), 1 if there is none
/// or it is not a number.
int exit_code_of(const pmi1_command& abort)
{
    const auto* text = abort.find("exitcode");
    int code = 1;
    if (text != nullptr) {
        const auto* end = text->data() + text->size();
        const auto [ptr, ec] = std::from_chars(text->data(), end, code);
        if (ec != std::errc{} || ptr != end) {
            code = 1;
        }
    }
    return code;
}

}  // namespace

std::vector<pmi1_local_rank> pmi1_local_ranks(const std::vector<std::uint32_t>& node_of_rank)
{
    std::map<std::uint32_t, int> seen;
    std::vector<pmi1_local_rank> out;
    out.reserve(node_of_rank.size());
    for (const auto n : node_of_rank) {
        out.push_back({seen[n]++, 0});
    }
    for (std::size_t r = 0; r < out.size(); ++r) {
        out[r].count = seen[node_of_rank[r]];
    }
    return out;
}

std::string pmi1_process_mapping(const std::vector<std::uint32_t>& node_of_rank,
                                 std::size_t max_length)
{
    struct block {
        std::uint32_t node;
        std::uint32_t nodes;
        std::uint32_t ranks;  // per node
    };
    std::vector<block> blocks;
    const auto nodes = compact_nodes(node_of_rank);
    for (std::size_t r = 0; r < nodes.size();) {
        std::size_t run = 1;  // consecutive ranks on nodes[r]
        while (r + run < nodes.size() && nodes[r + run] == nodes[r]) {
            ++run;
        }
        const auto ranks = static_cast<std::uint32_t>(run);
        auto* last = blocks.empty() ? nullptr : &blocks.back();
        if (last != nullptr && last->ranks == ranks && last->node + last->nodes == nodes[r]) {
            ++last->nodes;  // the next node, with as many ranks: one block
        } else {
            blocks.push_back({nodes[r], 1, ranks});
        }
        r += run;
    }
    std::string out = "(vector";
    for (const auto& b : blocks) {
        out += fmt::format(",({},{},{})", b.node, b.nodes, b.ranks);
    }
    out += ')';
    return out.size() <= max_length ? out : std::string();
}

pmi1_job::pmi1_job(std::string kvsname, std::vector<std::uint32_t> node_of_rank,
                   pmi1_job_hooks hooks)
    : kvsname_(std::move(kvsname)), hooks_(std::move(hooks)), ranks_(node_of_rank.size())
{
    if (ranks_.empty()) {
        throw_error(errc::invalid_argument, "a PMI-1 job needs at least one rank");
    }
    if (kvsname_.empty() || kvsname_.size() > kvsname_max || pmi1_word(kvsname_) != kvsname_) {
        throw_error(errc::invalid_argument,
                    fmt::format("bad PMI-1 kvsname '{}': 1 to {} characters, no space, '=' "
                                "or control character",
                                kvsname_, kvsname_max));
    }
    auto mapping = pmi1_process_mapping(node_of_rank, vallen_max);
    if (!mapping.empty()) {
        space_bytes_ += mapping.size();
        space_.emplace("PMI_process_mapping", std::move(mapping));
    }
}

bool pmi1_job::finalized(int rank) const noexcept
{
    return rank >= 0 && static_cast<std::size_t>(rank) < ranks_.size() &&
           ranks_[static_cast<std::size_t>(rank)].finalized;
}

int pmi1_job::rank_of(std::uint64_t client) const
{
    const auto it = clients_.find(client);
    return it == clients_.end() ? -1 : it->second;
}

void pmi1_job::line(std::uint64_t client, std::string_view text)
{
    if (failed_) {
        // Every client of the job was closed: this is a new one.
        hooks_.send(client, error_line("the PMI-1 job has failed already"));
        hooks_.close(client);
        return;
    }
    if (!clients_.contains(client)) {
        clients_.emplace(client, -1);
    }
    const int rank = rank_of(client);
    std::optional<pmi1_command> c;
    try {
        c.emplace(parse_pmi1_line(text));
    } catch (const dragonx::error& e) {
        refuse(client, e.what());
        if (rank >= 0) {
            fail(fmt::format("rank {} sent a bad line ({})", rank, e.what()));
        }
        return;
    }
    if (rank < 0) {
        if (c->name() != "initack") {
            refuse(client, fmt::format("the first PMI-1 command must be initack pmiid=<rank> "
                                       "(is PMI_ID set?), not {}",
                                       c->name()));
            return;
        }
        handshake(client, *c);
        return;
    }
    try {
        request(rank, client, *c);
    } catch (const dragonx::error& e) {  // a missing or bad attribute
        refuse(client, e.what());
        fail(fmt::format("rank {} sent a bad {} ({})", rank, c->name(), e.what()));
    }
}

void pmi1_job::handshake(std::uint64_t client, const pmi1_command& initack)
{
    int rank = -1;
    try {
        rank = initack.number("pmiid");
    } catch (const dragonx::error&) {
        rank = -1;  // missing or not a number: refused below
    }
    if (rank < 0 || static_cast<std::size_t>(rank) >= ranks_.size()) {
        const auto* pmiid = initack.find("pmiid");
        refuse(client, fmt::format("initack: pmiid '{}' is not a rank of this job (0 to {})",
                                   pmiid != nullptr ? pmiid->substr(0, 32) : std::string(),
                                   ranks_.size() - 1));
        return;
    }
    auto& r = ranks_[static_cast<std::size_t>(rank)];
    if (r.connected_once) {
        refuse(client, fmt::format("initack: rank {} has connected already", rank));
        return;
    }
    r.client = client;
    r.connected_once = true;
    clients_[client] = rank;
    hooks_.send(client, pmi1_line("initack"));
    hooks_.send(client, pmi1_line("set", {{"size", std::to_string(ranks_.size())}}));
    hooks_.send(client, pmi1_line("set", {{"rank", std::to_string(rank)}}));
    hooks_.send(client, pmi1_line("set", {{"debug", "0"}}));
}

void pmi1_job::request(int rank, std::uint64_t client, const pmi1_command& c)
{
    const auto& name = c.name();
    if (name == "init") {
        const bool v1 = c.number("pmi_version") == 1;
        hooks_.send(client, pmi1_line("response_to_init", {{"pmi_version", "1"},
                                                           {"pmi_subversion", "1"},
                                                           {"rc", v1 ? "0" : "-1"}}));
    } else if (name == "get_maxes") {
        hooks_.send(client, pmi1_line("maxes", {{"kvsname_max", std::to_string(kvsname_max)},
                                                {"keylen_max", std::to_string(keylen_max)},
                                                {"vallen_max", std::to_string(vallen_max)}}));
    } else if (name == "get_appnum") {
        hooks_.send(client, pmi1_line("appnum", {{"appnum", "0"}}));
    } else if (name == "get_my_kvsname") {
        hooks_.send(client, pmi1_line("my_kvsname", {{"kvsname", kvsname_}}));
    } else if (name == "get_universe_size") {
        hooks_.send(client, pmi1_line("universe_size", {{"size", std::to_string(size())}}));
    } else if (name == "put") {
        put(client, c);
    } else if (name == "get") {
        get(client, c);
    } else if (name == "barrier_in") {
        barrier_in(rank, client);
    } else if (name == "finalize") {
        ranks_[static_cast<std::size_t>(rank)].finalized = true;
        hooks_.send(client, pmi1_line("finalize_ack"));
    } else if (name == "abort") {
        const int exit_code = exit_code_of(c);
        if (hooks_.aborted) {
            hooks_.aborted(rank, exit_code);
        }
        // MPICH's client waits, reading, for its process to be killed; a reply would only
        // make it print "expecting cmd=, got error" first. So fail() leaves this client
        // alone (its connection ends with its process) and tells the other ranks.
        clients_.erase(client);
        ranks_[static_cast<std::size_t>(rank)].client = 0;
        fail(fmt::format("rank {} called PMI abort (exit code {})", rank, exit_code));
    } else {
        logger().warn("PMI-1 job {}: rank {} sent unsupported command {}", kvsname_, rank,
                      name.substr(0, 64));
        hooks_.send(client, error_line("unsupported PMI-1 command " + name.substr(0, 64)));
    }
}

void pmi1_job::put(std::uint64_t client, const pmi1_command& c)
{
    const auto& kvs = c.at("kvsname");
    const auto& key = c.at("key");
    const auto& value = c.at("value");
    std::string problem;
    if (kvs != kvsname_) {
        problem = "unknown kvsname";
    } else if (key.empty() || key.size() > keylen_max) {
        problem = fmt::format("key of {} characters (1 to {})", key.size(), keylen_max);
    } else if (value.size() > vallen_max) {
        problem = fmt::format("value of {} characters (at most {})", value.size(), vallen_max);
    } else if (space_bytes_ + key.size() + value.size() > space_max) {
        problem = fmt::format("the key-value space is full ({} bytes)", space_max);
    }
    if (!problem.empty()) {
        hooks_.send(client, pmi1_line("put_result", {{"rc", "-1"}, {"msg", pmi1_word(problem)}}));
        return;
    }
    auto [it, added] = space_.try_emplace(key);
    if (!added) {
        space_bytes_ -= key.size() + it->second.size();
    }
    it->second = value;
    space_bytes_ += key.size() + value.size();
    hooks_.send(client, pmi1_line("put_result", {{"rc", "0"}, {"msg", "success"}}));
}

void pmi1_job::get(std::uint64_t client, const pmi1_command& c)
{
    const auto& kvs = c.at("kvsname");
    const auto& key = c.at("key");
    if (kvs != kvsname_) {
        hooks_.send(client, pmi1_line("get_result", {{"rc", "-1"}, {"msg", "unknown_kvsname"}}));
        return;
    }
    const auto it = space_.find(key);
    if (it == space_.end()) {
        hooks_.send(client, pmi1_line("get_result",
                                      {{"rc", "-1"},
                                       {"msg", pmi1_word("key " + key.substr(0, 64) +
                                                         " not found")}}));
        return;
    }
    hooks_.send(client,
                pmi1_line("get_result", {{"rc", "0"}, {"msg", "success"}, {"value", it->second}}));
}

void pmi1_job::barrier_in(int rank, std::uint64_t client)
{
    auto& r = ranks_[static_cast<std::size_t>(rank)];
    if (r.in_barrier) {
        refuse(client, fmt::format("rank {} entered the barrier twice", rank));
        fail(fmt::format("rank {} entered the barrier twice", rank));
        return;
    }
    r.in_barrier = true;
    if (++in_barrier_ < ranks_.size()) {
        return;
    }
    in_barrier_ = 0;
    for (auto& each : ranks_) {
        each.in_barrier = false;
        if (each.client != 0) {
            hooks_.send(each.client, pmi1_line("barrier_out"));
        }
    }
}

void pmi1_job::refuse(std::uint64_t client, const std::string& why)
{
    logger().warn("PMI-1 job {}: closing a client: {}", kvsname_, why);
    hooks_.send(client, error_line(why));
    hooks_.close(client);
    const int rank = rank_of(client);
    clients_.erase(client);
    if (rank >= 0) {
        ranks_[static_cast<std::size_t>(rank)].client = 0;
    }
}

void pmi1_job::disconnected(std::uint64_t client)
{
    const int rank = rank_of(client);
    clients_.erase(client);
    if (rank < 0) {
        return;
    }
    auto& r = ranks_[static_cast<std::size_t>(rank)];
    r.client = 0;
    if (!r.finalized) {
        fail(fmt::format("rank {} closed its PMI connection before finalize", rank));
    }
}

void pmi1_job::rank_exited(int rank)
{
    if (rank < 0 || static_cast<std::size_t>(rank) >= ranks_.size()) {
        return;
    }
    if (!ranks_[static_cast<std::size_t>(rank)].finalized) {
        fail(fmt::format("rank {} exited before PMI finalize", rank));
    }
}

void pmi1_job::fail(const std::string& why)
{
    if (failed_) {
        return;
    }
    failed_ = true;
    logger().warn("PMI-1 job {} failed: {}", kvsname_, why);
    const auto line = error_line("job failed: " + why);
    for (const auto& [client, rank] : clients_) {
        hooks_.send(client, line);
        hooks_.close(client);
    }
    clients_.clear();
    for (auto& r : ranks_) {
        r.client = 0;
    }
    if (hooks_.failed) {
        hooks_.failed(why);
    }
}

}  // namespace dragonx::rt::detail
