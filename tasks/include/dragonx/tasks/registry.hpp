// registry.hpp - dragonx::task_registry: the functions a task_pool may run, found by name.
//
//   dragonx::task_registry registry;                      // an ordinary object, no statics
//   const auto square = registry.add("square", [](int x) { return x * x; });
//   const auto greet = registry.add("greet", [](std::string who, int n) { ... });
//
// The head and every worker build the same registry (usually one function called from main,
// see worker.hpp); the pool sends a task's name and encoded arguments, and the worker looks
// the name up here. add() returns a typed handle, task<R(A...)>, that the pool's calls take,
// so arguments and results are checked by the compiler on the submitting side.
//
// Notes:
// - Arguments and results travel through dragonx::codec<T> (codec.hpp): argument and result
//   types are taken by value (decayed), and must be encodable and decodable. A void result
//   is allowed.
// - Names are unique: adding a name twice throws errc::already_exists.
// - The registry is read-only once a pool or worker uses it: add() is not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <dragonx/common/codec.hpp>
#include <dragonx/common/error.hpp>

namespace dragonx {

/// A call of a registered function with its arguments already encoded (an initializer).
struct task_call {
    std::string name;
    bytes args;
};

template <class Signature>
class task;

/// A handle on a function of a task_registry, with its signature.
template <class R, class... A>
class task<R(A...)> {
public:
    using result_type = R;
    using args_type = std::tuple<A...>;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    /// This task with `args`, encoded: what task_pool_options::initializer takes.
    [[nodiscard]] task_call bind(const A&... args) const
    {
        encoder out;
        (codec<A>::encode(args, out), ...);
        return {name_, out.to_bytes()};
    }

    /// Encodes one call's arguments onto `out` (a chunk of tasks). Codecs may refer to the
    /// arguments' bytes: they must outlive the writing out of `out` (no temporaries).
    static void encode_args(encoder& out, const A&... args) { (codec<A>::encode(args, out), ...); }

private:
    friend class task_registry;
    explicit task(std::string name) : name_(std::move(name)) {}
    std::string name_;
};

namespace detail {

/// Runs one call: decodes the arguments from `in`, calls the function, and appends the encoded
/// result to `results` (using `scratch`). Throws what the function throws.
using task_invoker = std::function<void(decoder& in, encoder& scratch, bytes& results)>;

/// Appends `value`, encoded, to `results`. The value must stay alive meanwhile: codecs may
/// refer to its bytes until written out.
template <class T>
void append_encoded(const T& value, encoder& scratch, bytes& results)
{
    scratch.clear();
    codec<T>::encode(value, scratch);
    const std::size_t at = results.size();
    results.resize(at + scratch.size());
    scratch.write_to(std::span(results).subspan(at));
}

template <class F>
struct callable_traits : callable_traits<decltype(&F::operator())> {};
template <class R, class... A>
struct callable_traits<R (*)(A...)> {
    using type = task<R(std::decay_t<A>...)>;
};
template <class R, class... A>
struct callable_traits<R(A...)> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...)> : callable_traits<R (*)(A...)> {};

template <class Task>
struct invoker_for;
template <class R, class... A>
struct invoker_for<task<R(A...)>> {
    template <class F>
    static task_invoker make(F f)
    {
        return [f = std::move(f)](decoder& in, encoder& scratch, bytes& results) mutable {
            // A braced list decodes the arguments in order.
            std::tuple<A...> args{codec<A>::decode(in)...};
            if constexpr (std::is_void_v<R>) {
                std::apply(f, std::move(args));
            } else {
                const R result = std::apply(f, std::move(args));
                append_encoded(result, scratch, results);
            }
        };
    }
};

}  // namespace detail

class task_registry {
public:
    /// Registers `f` (a function, function pointer or lambda without auto parameters) under
    /// `name` and returns its typed handle. Throws errc::already_exists or, for an empty name,
    /// errc::invalid_argument.
    template <class F>
    auto add(std::string name, F f)
    {
        using task_type = typename detail::callable_traits<std::remove_pointer_t<F>>::type;
        if (name.empty()) {
            throw_error(errc::invalid_argument, "task_registry::add: empty task name");
        }
        if (!tasks_.emplace(name, detail::invoker_for<task_type>::make(std::move(f))).second) {
            throw_error(errc::already_exists,
                        "task_registry::add: a task named '" + name + "' exists already");
        }
        return task_type(std::move(name));
    }

    /// The function registered as `name`, or nullptr.
    [[nodiscard]] const detail::task_invoker* find(std::string_view name) const
    {
        const auto it = tasks_.find(name);
        return it == tasks_.end() ? nullptr : &it->second;
    }

    [[nodiscard]] std::vector<std::string> names() const
    {
        std::vector<std::string> out;
        for (const auto& entry : tasks_) {
            out.push_back(entry.first);
        }
        return out;
    }

private:
    std::map<std::string, detail::task_invoker, std::less<>> tasks_;
};

}  // namespace dragonx
