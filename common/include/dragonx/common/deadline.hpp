// deadline.hpp - timeouts as the API takes them, and deadlines as blocking loops use them.
//
// Every blocking dragonx call takes a dragonx::timeout:
//   dragonx::forever (std::nullopt)  wait as long as it takes;
//   0ns                               try once, never block;
//   d > 0                             give up after d, with errc::timeout.
// A negative timeout is an error (errc::invalid_argument), never "forever".
#pragma once

#include <chrono>
#include <optional>

#include <dragonx/common/error.hpp>

namespace dragonx {

using timeout = std::optional<std::chrono::nanoseconds>;
inline constexpr std::nullopt_t forever = std::nullopt;

/// A point in (steady) time by which a blocking call must return.
class deadline {
public:
    using clock = std::chrono::steady_clock;

    /// The deadline `t` from now. Throws errc::invalid_argument if `t` is negative.
    static deadline after(timeout t)
    {
        if (!t) {
            return deadline();
        }
        if (t->count() < 0) {
            throw_error(errc::invalid_argument, "negative timeout");
        }
        return deadline(clock::now() + *t);
    }

    [[nodiscard]] bool is_forever() const noexcept { return !at_; }
    [[nodiscard]] bool expired() const noexcept { return at_ && clock::now() >= *at_; }

    /// Time left, clamped at zero; std::nullopt when there is no deadline.
    [[nodiscard]] timeout remaining() const noexcept
    {
        if (!at_) {
            return forever;
        }
        const auto left = *at_ - clock::now();
        return left.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(left)
                                : std::chrono::nanoseconds(0);
    }

private:
    deadline() noexcept = default;
    explicit deadline(clock::time_point at) noexcept : at_(at) {}

    std::optional<clock::time_point> at_;
};

}  // namespace dragonx
