// pi_train.cpp - a worker of the π example: estimates π/4 by Monte Carlo, one batch of points
// per checkpoint, in lockstep with the other workers through the dictionary (the C++ take on
// DragonHPC's ddict_pi_sim_train).
//
//   pi_train <descriptor> <i> <workers> <digits>     (started by pi_driver, one per worker)
//
// Worker i attaches to the dictionary by its descriptor. At each checkpoint it draws 20000
// points in [-1, 1)^2 (std::mt19937_64 seeded with i, so every run draws the same points),
// folds the fraction inside the unit circle into its running average over all its points so
// far, writes that average under key i at its checkpoint, then reads the global average
// (key -1), which blocks until pi_aggregate has published it for this checkpoint. It stops
// once the global average moved by less than 10^-digits since the last checkpoint (the test
// pi_aggregate applies to the same values, so everyone stops at the same checkpoint), and
// otherwise moves to the next checkpoint. It prints its own estimate (4 * its average) and
// the number of checkpoints.
//
// Exit code 0 when it converged; 1 on an error (a timeout waiting for the others, a retired
// checkpoint); 2 for a bad command line.
#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "pi.hpp"

namespace {

using namespace pi_example;

int train(const std::string& descriptor, std::int64_t me, int digits)
{
    const auto& rt = dragonx::runtime::current();
    auto d = pi_dict::attach(descriptor);
    sampler points(me);
    double local_avg = 0;  // over all of this worker's points so far
    std::int64_t samples = 0;
    double prev_avg = -1;  // no global average yet: the first checkpoint never stops
    std::int64_t steps = 0;
    while (true) {
        const double frac = points.fraction_inside(points_per_step);
        local_avg = (local_avg * static_cast<double>(samples) +
                     frac * static_cast<double>(points_per_step)) /
                    static_cast<double>(samples + points_per_step);
        samples += points_per_step;
        // Non-persistent: the key is ours at this checkpoint only, and the aggregator's read
        // of it at this checkpoint waits for this write.
        d[me] = local_avg;
        // Blocks until the aggregator has read every worker's value here and published.
        const double avg = d[average_key];
        ++steps;
        if (converged(avg, prev_avg, digits)) {
            break;
        }
        prev_avg = avg;
        d.checkpoint();
    }
    std::printf("pi_train %lld on %s: 4 * own average = %.8f over %lld points, stopped at "
                "checkpoint %llu after %lld step(s)\n",
                static_cast<long long>(me), rt.hostname().c_str(), 4 * local_avg,
                static_cast<long long>(samples),
                static_cast<unsigned long long>(d.checkpoint_id()),
                static_cast<long long>(steps));
    d.detach();
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() != 4) {
        std::fprintf(stderr, "usage: pi_train <descriptor> <i> <workers> <digits>\n");
        return 2;
    }
    try {
        const std::int64_t me = std::stoll(args[1]);
        const std::int64_t workers = std::stoll(args[2]);
        const int digits = std::stoi(args[3]);
        if (me < 0 || me >= workers || digits < 1 || digits > max_digits) {
            std::fprintf(stderr, "pi_train: want 0 <= i < workers and 1 <= digits <= %d\n",
                         max_digits);
            return 2;
        }
        return train(args[0], me, digits);
    } catch (const std::logic_error&) {  // std::stoll of something not a number
        std::fprintf(stderr, "usage: pi_train <descriptor> <i> <workers> <digits>\n");
        return 2;
    } catch (const std::exception& e) {
        std::printf("pi_train %s: %s\n", args[1].c_str(), e.what());
        return 1;
    }
}
