// runtime.cpp - this process's link to its node daemon: a blocking Unix-socket client.
#include <dragonx/runtime/runtime.hpp>

#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <sys/socket.h>
#include <unistd.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/unique_fd.hpp>

#include "unix_client.hpp"

namespace dragonx {

namespace {

std::string env_or(const char* name, std::string fallback)
{
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::move(fallback);
}

template <class T>
T parse_number(const char* name, const std::string& text)
{
    try {
        std::size_t used = 0;
        const auto v = std::stoull(text, &used);
        if (used == text.size()) {
            return static_cast<T>(v);
        }
    } catch (const std::exception&) {
    }
    throw_error(errc::invalid_argument, std::string(name) + " is not a number: '" + text + "'");
}

}  // namespace

/// One connection to the daemon, one request at a time.
struct runtime::channel {
    std::mutex mutex;
    std::string path;
    unique_fd fd;
    rt::frame_reader reader;
    std::uint64_t next_id = 1;

    void connect()
    {
        auto s = rt::detail::connect_unix(path, errc::no_runtime, "the dragonx runtime");
        fd = std::move(s);
        reader = {};
    }

    [[noreturn]] void lost(const std::string& what)
    {
        fd.reset();
        throw_error(errc::no_runtime, "lost the dragonx runtime daemon (" + what + ")");
    }

    rt::envelope call(rt::message body)
    {
        std::lock_guard lock(mutex);
        if (!fd) {
            connect();
        }
        const std::uint64_t id = next_id++;
        const auto frame = rt::encode_frame(rt::envelope{.id = id, .body = std::move(body)});
        std::size_t sent = 0;
        while (sent < frame.size()) {
            const ssize_t n = ::send(fd.get(), frame.data() + sent, frame.size() - sent,
                                     MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                lost(std::strerror(errno));
            }
            sent += static_cast<std::size_t>(n);
        }
        std::byte buffer[16 * 1024];
        for (;;) {
            while (auto e = reader.next()) {
                if (e->reply_to == id) {
                    return std::move(*e);
                }
            }
            const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                lost(n == 0 ? "connection closed" : std::strerror(errno));
            }
            reader.feed(std::span(buffer, static_cast<std::size_t>(n)));
        }
    }
};

runtime::runtime() : channel_(std::make_unique<channel>())
{
    socket_ = env_or("DRAGONX_RUNTIME", "");
    run_ = env_or("DRAGONX_RUN", "");
    if (socket_.empty() || run_.empty()) {
        throw_error(errc::no_runtime,
                    "not running under dragonx run (DRAGONX_RUNTIME is not set): start this "
                    "program with `dragonx run`");
    }
    node_ = parse_number<std::uint32_t>("DRAGONX_NODE", env_or("DRAGONX_NODE", "0"));
    nnodes_ = parse_number<std::uint32_t>("DRAGONX_NNODES", env_or("DRAGONX_NNODES", "1"));
    puid_ = parse_number<puid_t>("DRAGONX_PUID", env_or("DRAGONX_PUID", "0"));
    hostname_ = env_or("DRAGONX_HOSTNAME", "localhost");
    channel_->path = socket_;
}

runtime::~runtime() = default;

runtime& runtime::current()
{
    // Built on first use (thread-safe); a constructor that throws (no run) is tried again on
    // the next call.
    static runtime instance;
    return instance;
}

bool runtime::available() noexcept
{
    const char* s = std::getenv("DRAGONX_RUNTIME");
    return s != nullptr && *s != '\0';
}

rt::message runtime::request(rt::message body)
{
    auto reply = channel_->call(std::move(body)).body;
    if (const auto* a = std::get_if<rt::msg::ack>(&reply)) {
        a->result.throw_if_error();
    }
    return reply;
}

void runtime::kv_put(const std::string& key, const std::string& value)
{
    request(rt::msg::kv_put{key, value});
}

std::string runtime::kv_get(const std::string& key, timeout limit)
{
    std::int64_t ms = -1;
    if (limit) {
        if (limit->count() < 0) {
            throw_error(errc::invalid_argument, "negative timeout");
        }
        ms = std::chrono::ceil<std::chrono::milliseconds>(*limit).count();
    }
    auto reply = request(rt::msg::kv_get{key, ms});
    const auto* v = std::get_if<rt::msg::kv_value>(&reply);
    if (v == nullptr) {
        throw_error(errc::malformed_message, "kv_get: unexpected reply");
    }
    v->result.throw_if_error();
    return v->value;
}

void runtime::register_shm(const std::string& name)
{
    request(rt::msg::register_shm{puid_, name});
}

}  // namespace dragonx
