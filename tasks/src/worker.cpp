// worker.cpp - a task_pool worker: take a chunk, run its calls, send back the results.
#include <dragonx/tasks/worker.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <dragonx/channels/channel.hpp>
#include <dragonx/runtime/process.hpp>
#include <dragonx/runtime/runtime.hpp>

#include "protocol.hpp"

namespace dragonx {

namespace {

using tasks::message_kind;

// How often a waiting worker checks that the pool's creator still runs.
constexpr auto creator_check = std::chrono::seconds(1);

std::string take_env(const char* name)
{
    const char* v = std::getenv(name);
    if (v == nullptr) {
        throw_error(errc::invalid_argument,
                    std::string("task worker: ") + name + " is not set");
    }
    std::string value = v;
    ::unsetenv(name);
    return value;
}

std::string describe(const std::exception_ptr& e)
{
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

class worker {
public:
    explicit worker(const task_registry& registry) : registry_(registry)
    {
        slot_ = static_cast<std::uint32_t>(std::stoul(take_env(tasks::worker_env::slot)));
        creator_ = std::stoull(take_env(tasks::worker_env::creator));
        input_ = channels::channel::attach(take_env(tasks::worker_env::input));
        results_ = channels::channel::attach(take_env(tasks::worker_env::results));
        const std::string init = take_env(tasks::worker_env::init_name);
        const bytes init_args = tasks::from_hex(take_env(tasks::worker_env::init_args));
        if (!init.empty()) {
            run_initializer(init, init_args);
        }
    }

    int serve()
    {
        say_hello();
        std::vector<std::byte> scratch(input_.block_size());
        for (;;) {
            std::optional<channels::message> m;
            try {
                m = input_.take(scratch, creator_check);
            } catch (const error& e) {
                if (!e.is(errc::timeout)) {
                    throw;
                }
                if (!creator_alive()) {
                    return 0;
                }
                continue;
            }
            decoder in(m->bytes(), "task message");
            if (tasks::read_kind(in) == message_kind::stop) {
                return 0;
            }
            run_chunk(in);
        }
    }

private:
    void run_initializer(const std::string& name, const bytes& args)
    {
        const auto* fn = registry_.find(name);
        if (fn == nullptr) {
            init_error_ = "initializer: no task named '" + name + "' in the worker's registry";
            return;
        }
        try {
            decoder in(args, "initializer arguments");
            encoder scratch;
            bytes ignored;
            (*fn)(in, scratch, ignored);
            in.expect_end();
        } catch (...) {
            init_error_ = "initializer '" + name + "' failed: " +
                          describe(std::current_exception());
        }
    }

    void say_hello()
    {
        auto& rt = runtime::current();
        // Codecs refer to the bytes of what they encode: keep the message alive until sent.
        const tasks::hello_message hello{slot_, rt.puid(), rt.node(), rt.hostname(),
                                         init_error_};
        encoder out;
        tasks::write_kind(out, message_kind::hello);
        codec<tasks::hello_message>::encode(hello, out);
        send(out);
    }

    // Runs the calls of one chunk; answers done, or failed at the first call that throws.
    void run_chunk(decoder& in)
    {
        const auto key = in.value<std::uint64_t>();
        const auto name_bytes = in.chunk();  // a view into the message, no copy per chunk
        const std::string_view name(reinterpret_cast<const char*>(name_bytes.data()),
                                    name_bytes.size());
        const auto count = in.value<std::uint32_t>();
        const auto* fn = registry_.find(name);
        std::uint32_t index = 0;
        results_buffer_.clear();
        try {
            if (!init_error_.empty()) {
                throw std::runtime_error(init_error_);
            }
            if (fn == nullptr) {
                throw std::runtime_error("no task named '" + std::string(name) +
                                         "' in the worker's registry");
            }
            for (; index < count; ++index) {
                (*fn)(in, scratch_, results_buffer_);
            }
            in.expect_end();
        } catch (...) {
            const tasks::failed_message failed{key, index, describe(std::current_exception())};
            encoder out;
            tasks::write_kind(out, message_kind::failed);
            codec<tasks::failed_message>::encode(failed, out);
            send(out);
            return;
        }
        encoder out;
        tasks::write_kind(out, message_kind::done);
        out.value(key);
        out.value(count);
        out.chunk_view(results_buffer_);
        send(out);
    }

    void send(const encoder& out)
    {
        message_.resize(out.size());
        out.write_to(message_);
        for (;;) {
            try {
                results_.send(message_, creator_check);
                return;
            } catch (const error& e) {
                if (!e.is(errc::timeout) || !creator_alive()) {
                    throw;
                }
            }
        }
    }

    bool creator_alive() const
    {
        try {
            return process::attach(creator_).alive();
        } catch (const error&) {
            return false;
        }
    }

    const task_registry& registry_;
    std::uint32_t slot_ = 0;
    puid_t creator_ = 0;
    channels::channel input_;
    channels::channel results_;
    std::string init_error_;
    encoder scratch_;
    bytes results_buffer_;
    bytes message_;
};

}  // namespace

std::optional<int> serve_tasks_if_worker(const task_registry& registry)
{
    if (std::getenv(tasks::worker_env::slot) == nullptr) {
        return std::nullopt;
    }
    try {
        worker w(registry);
        return w.serve();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dragonx task worker: %s\n", e.what());
        return 1;
    }
}

}  // namespace dragonx
