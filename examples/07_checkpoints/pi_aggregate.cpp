// pi_aggregate.cpp - the aggregator of the π example: at each checkpoint, averages the
// workers' running averages and publishes the result for them (the C++ take on DragonHPC's
// ddict_pi_sim_aggregate).
//
//   pi_aggregate <descriptor> <workers> <digits>     (started by pi_driver)
//
// It attaches to the dictionary by its descriptor. At each checkpoint it reads key i of every
// worker (each read blocks until worker i has written it at this checkpoint), writes their mean
// under key -1 (which releases the workers' reads of it), prints 4 * the mean, and stops once
// the mean moved by less than 10^-digits since the last checkpoint (the workers apply the same
// test to the same values); otherwise it moves to the next checkpoint. At the end it stores
// the result and the number of steps as persistent keys -2 and -3 for pi_driver, prints
// `result: <4 * average>`, and compares it with π: the bound is five standard errors of a
// Monte-Carlo estimate from the points actually drawn (workers * steps * 20000).
//
// Exit code 0 when it converged and |result - π| is within the bound; 1 otherwise (or on an
// error: a timeout waiting for a worker, a retired checkpoint); 2 for a bad command line.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

#include "pi.hpp"

namespace {

using namespace pi_example;

int aggregate(const std::string& descriptor, std::int64_t workers, int digits)
{
    auto d = pi_dict::attach(descriptor);
    double prev_avg = -1;  // as the workers: the first checkpoint never stops
    double avg = 0;
    std::int64_t steps = 0;
    while (true) {
        double sum = 0;
        for (std::int64_t i = 0; i < workers; ++i) {
            sum += d[i];  // waits for worker i's write at this checkpoint
        }
        avg = sum / static_cast<double>(workers);
        d[average_key] = avg;
        ++steps;
        std::printf("pi_aggregate: checkpoint %llu: 4 * average = %.8f\n",
                    static_cast<unsigned long long>(d.checkpoint_id()), 4 * avg);
        if (converged(avg, prev_avg, digits)) {
            break;
        }
        prev_avg = avg;
        d.checkpoint();
    }
    // Persistent: readable at this checkpoint and every later one, for the driver.
    d.pput(result_key, 4 * avg);
    d.pput(steps_key, static_cast<double>(steps));

    // Every worker draws points_per_step points per step, all of them count in the average.
    const double points = static_cast<double>(workers * steps * points_per_step);
    const double standard_error = 4 * std::sqrt(avg * (1 - avg) / points);
    const double bound = 5 * standard_error;
    const double error = std::fabs(4 * avg - std::numbers::pi);
    const bool ok = error < bound;
    std::printf("pi_aggregate: result: %.8f after %lld step(s) of %lld worker(s), %.0f points; "
                "|result - pi| = %.2e, bound (5 standard errors) %.2e: %s\n",
                4 * avg, static_cast<long long>(steps), static_cast<long long>(workers), points,
                error, bound, ok ? "ok" : "TOO FAR");
    d.detach();
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::vector<std::string> args(argv + 1, argv + argc);
    const char* usage = "usage: pi_aggregate <descriptor> <workers> <digits>\n";
    if (args.size() != 3) {
        std::fprintf(stderr, "%s", usage);
        return 2;
    }
    try {
        const std::int64_t workers = std::stoll(args[1]);
        const int digits = std::stoi(args[2]);
        if (workers < 1 || digits < 1 || digits > max_digits) {
            std::fprintf(stderr, "pi_aggregate: want workers >= 1 and 1 <= digits <= %d\n",
                         max_digits);
            return 2;
        }
        return aggregate(args[0], workers, digits);
    } catch (const std::logic_error&) {  // std::stoll of something not a number
        std::fprintf(stderr, "%s", usage);
        return 2;
    } catch (const std::exception& e) {
        std::printf("pi_aggregate: %s\n", e.what());
        return 1;
    }
}
