// orchestrator.cpp - see orchestrator.hpp.
#include "orchestrator.hpp"

#include <chrono>
#include <csignal>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <dragonx/common/encoding.hpp>
#include <dragonx/runtime/runtime.hpp>

namespace dragonx::dict {

namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr auto bring_up_limit = 90s;
constexpr auto manager_exit_patience = 10s;
constexpr auto reply_patience = 5s;

}  // namespace

orchestrator::orchestrator(server_options options, std::string self_exe)
    : options_(std::move(options)), self_exe_(std::move(self_exe))
{
    pool_ = pool::pool::create({.size = std::uint64_t{4} << 20});
    runtime::current().register_shm(pool_.name());
    requests_ = channels::channel::create(pool_, {.capacity = 256, .block_size = 4096});
}

bool orchestrator::bring_up(const std::string& creator_reply)
{
    const auto n = options_.managers;
    std::string failure;
    managers_.resize(n);
    std::vector<bool> ready(n, false);
    try {
        const auto encoded = base64url_encode(encode(options_));
        for (std::uint32_t i = 0; i < n; ++i) {
            process_template t;
            t.exe = self_exe_;
            t.args = {"manager", std::to_string(i), encoded, requests_.descriptor()};
            t.where = options_.manager_policies.at(i);
            processes_.push_back(process::start(t));
        }
        std::vector<std::byte> scratch(4096);
        std::uint32_t count = 0;
        const auto until = clock::now() + bring_up_limit;
        while (count < n && failure.empty()) {
            if (clock::now() > until) {
                failure = fmt::format("ddict {}: only {} of {} managers were ready after {} s",
                                      options_.name, count, n, bring_up_limit.count());
                break;
            }
            if (!requests_.poll(channels::poll_event::readable, 250ms)) {
                for (std::uint32_t i = 0; i < n; ++i) {
                    if (!ready[i] && !processes_[i].alive()) {
                        const auto code = processes_[i].exit_code();
                        failure = fmt::format(
                            "ddict {}: manager {} (node {}) exited during start-up{}",
                            options_.name, i, processes_[i].node(),
                            code ? fmt::format(" with code {}", *code) : std::string());
                    }
                }
                continue;
            }
            auto msg = requests_.try_take(scratch);
            if (!msg) {
                continue;
            }
            const auto r = parse_request(msg->bytes());
            if (r.header.code != op::manager_ready) {
                continue;  // clients cannot know the descriptor yet
            }
            auto info = decode<manager_info>(r.body, "ddict manager_ready");
            if (info.id >= n || ready[info.id]) {
                continue;
            }
            ready[info.id] = true;
            managers_[info.id] = std::move(info);
            ++count;
        }
    } catch (const std::exception& e) {
        failure = fmt::format("ddict {}: cannot start the managers: {}", options_.name, e.what());
    }
    if (!failure.empty()) {
        for (auto& p : processes_) {
            try {
                p.kill(SIGKILL);
                (void)p.join(manager_exit_patience);
            } catch (const std::exception&) {
            }
        }
        answer(creator_reply, 1, errc::process_failed, failure, {});
        return false;
    }
    descriptor_ = encode_descriptor({options_.name, requests_.descriptor(),
                                     runtime::current().puid(), n});
    // (chunk_view: the encoder refers to the values, which must outlive to_bytes())
    const auto dir = directory_for(next_client_++);
    encoder out;
    codec<std::string>::encode(descriptor_, out);
    codec<directory>::encode(dir, out);
    answer(creator_reply, 1, errc::ok, {}, out.to_bytes());
    return true;
}

void orchestrator::serve()
{
    std::vector<std::byte> scratch(4096);
    for (;;) {
        auto msg = requests_.try_take(scratch);
        if (!msg) {
            (void)requests_.poll(channels::poll_event::readable, 1s);
            continue;
        }
        parsed_request r;
        orchestrator_request body;
        try {
            r = parse_request(msg->bytes());
            if (r.header.code == op::manager_ready) {
                continue;
            }
            body = decode<orchestrator_request>(r.body, "ddict orchestrator request");
        } catch (const std::exception& e) {
            spdlog::warn("ddict {} orchestrator: dropped a request: {}", options_.name, e.what());
            continue;
        }
        switch (r.header.code) {
        case op::attach: {
            const auto dir = encode(directory_for(next_client_++));
            answer(body.reply_channel, r.header.tag, errc::ok, {}, dir);
            break;
        }
        case op::destroy:
            stop_managers();
            answer(body.reply_channel, r.header.tag, errc::ok, {}, {});
            return;
        default:
            answer(body.reply_channel, r.header.tag, errc::invalid_argument,
                   "ddict orchestrator: unknown request", {});
        }
    }
}

void orchestrator::stop_managers()
{
    request_header h{};
    h.code = op::shutdown;
    for (std::size_t i = 0; i < managers_.size(); ++i) {
        const auto& m = managers_[i];
        try {
            if (!processes_[i].alive()) {
                continue;  // gone already (killed, or crashed): nothing to stop
            }
            auto ch = channels::channel::attach(m.channel);
            ch.send(std::as_bytes(std::span(&h, 1)), reply_patience);
        } catch (const std::exception& e) {
            spdlog::warn("ddict {}: manager {}: {}", options_.name, m.id, e.what());
        }
    }
    for (std::size_t i = 0; i < processes_.size(); ++i) {
        try {
            if (!processes_[i].join(manager_exit_patience)) {
                spdlog::warn("ddict {}: manager {} did not stop in {} s: killing it",
                             options_.name, i, manager_exit_patience.count());
                processes_[i].kill(SIGKILL);
                (void)processes_[i].join(manager_exit_patience);
            }
        } catch (const std::exception& e) {
            spdlog::warn("ddict {}: manager {}: {}", options_.name, i, e.what());
        }
    }
}

directory orchestrator::directory_for(std::uint64_t client_id) const
{
    directory d;
    d.name = options_.name;
    d.client_id = client_id;
    d.timeout_us = options_.timeout_us;
    d.base_checkpoint = 0;
    d.managers = managers_;
    return d;
}

void orchestrator::answer(const std::string& reply_channel, std::uint64_t tag, errc status,
                          std::string_view info, byte_view body)
{
    response_header h{};
    h.status = static_cast<std::uint16_t>(status);
    h.info_size = static_cast<std::uint32_t>(info.size());
    h.tag = tag;
    std::vector<std::byte> msg(sizeof h + info.size() + body.size());
    std::memcpy(msg.data(), &h, sizeof h);
    if (!info.empty()) {
        std::memcpy(msg.data() + sizeof h, info.data(), info.size());
    }
    if (!body.empty()) {
        std::memcpy(msg.data() + sizeof h + info.size(), body.data(), body.size());
    }
    try {
        auto ch = channels::channel::attach(reply_channel);
        ch.send(msg, reply_patience);
    } catch (const std::exception& e) {
        spdlog::warn("ddict {} orchestrator: cannot answer a client: {}", options_.name,
                     e.what());
    }
}

}  // namespace dragonx::dict
