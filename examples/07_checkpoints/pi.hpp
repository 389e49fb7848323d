// pi.hpp - what the three programs of the π example share: the dictionary's type, its keys,
// the samples each worker draws per checkpoint and the stopping test.
//
// Included by pi_driver.cpp, pi_train.cpp and pi_aggregate.cpp (not a program of its own).
//
// Notes:
// - Keys: worker i writes its running average under key i, the aggregator the global average
//   under key -1; both are non-persistent (d[k] = v), so they are rewritten at every
//   checkpoint and a read at checkpoint c waits for the write at c. The aggregator's result
//   (4 * average) and its step count are persistent (pput) under keys -2 and -3, for the
//   driver to read once everyone is done.
// - Every process applies converged() to the same sequence of global averages (the doubles
//   read back from key -1 are exactly the ones written), so all stop at the same checkpoint.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include <dragonx/dragonx.hpp>

namespace pi_example {

using pi_dict = dragonx::ddict<std::int64_t, double>;

constexpr std::int64_t average_key = -1;  // the global average at this checkpoint
constexpr std::int64_t result_key = -2;   // persistent: 4 * the final average
constexpr std::int64_t steps_key = -3;    // persistent: checkpoints until convergence
constexpr std::int64_t points_per_step = 20000;
constexpr int max_digits = 6;  // 10^-6 takes about a thousand checkpoints already

/// Points in [-1, 1)^2 drawn by worker `worker`: the same sequence in every run.
class sampler {
public:
    explicit sampler(std::int64_t worker) : rng_(static_cast<std::uint64_t>(worker)) {}
    /// The fraction of `n` fresh points that fall inside the unit circle.
    double fraction_inside(std::int64_t n)
    {
        std::int64_t inside = 0;
        for (std::int64_t j = 0; j < n; ++j) {
            const double x = coordinate();
            const double y = coordinate();
            inside += (x * x + y * y < 1.0) ? 1 : 0;
        }
        return static_cast<double>(inside) / static_cast<double>(n);
    }

private:
    // 53 random bits to a double in [-1, 1): exact, the same on every standard library.
    double coordinate() { return static_cast<double>(rng_() >> 11) * 0x1.0p-52 - 1.0; }
    std::mt19937_64 rng_;
};

/// The stopping test of every process: the global average moved by less than 10^-digits.
inline bool converged(double avg, double prev_avg, int digits)
{
    return std::fabs(avg - prev_avg) < std::pow(10.0, -digits);
}

}  // namespace pi_example
