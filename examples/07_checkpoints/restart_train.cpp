// restart_train.cpp - a training loop whose state lives in a distributed dictionary that is
// destroyed with allow_restart and brought back, data and checkpoints, by a later run.
//
//   dragonx run --wlm local -N 2 build/examples/restart_train --steps 5      # keeps it
//   dragonx run --wlm local -N 2 build/examples/restart_train --steps 5 --restart --expect-step 5
//   dragonx run --wlm local -N 2 build/examples/restart_train --steps 10 --no-keep  # in one go
//   options: [--name NAME] (default restart_demo)
//
// The model is a line y = w * x + b fitted to 16 fixed points by full-batch gradient descent.
// Its weights {w, b} and a step counter are persistent keys (pput) of a dictionary named NAME
// with one manager per node, waiting for keys, a working set of 2: step n writes them at
// checkpoint n, so the managers retire old checkpoints as the steps go (a persistent key is
// carried into the next checkpoint). Each step prints `step <n> loss <loss>` with every digit
// of the double, after the update (a new dictionary's initial weights print as step 0).
//
// Without --restart the program creates the dictionary, stores the initial weights at
// checkpoint 0, runs K steps (--steps, default 5) and destroys it with allow_restart: each
// manager keeps its memory and state outside the run (/dev/shm/dragonx-kept-NAME-m<i>) and
// the creator leaves a restart record in the working directory. With --restart it creates
// the dictionary again with `restart = true` and the same name (from the same directory, in
// a run with the same nodes); a client starts at checkpoint 0 but the managers kept their
// newer ones, so it moves to the newest with sync_to_newest_checkpoint(), reads the step
// counter and the weights there, checks the step against --expect-step S if given, runs K
// more steps and destroys the dictionary for good (no allow_restart: the kept memory and the
// record go). --no-keep runs without --restart and destroys for good too: K + K steps with a
// restart in between print the same lines as one run of 2K steps.
//
// Exit code 0 when the steps ran (and, with --restart, every manager came back with its data
// and the step is the expected one); 1 otherwise; 2 for a bad command line.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;
using weights_dict = dragonx::ddict<std::string, std::vector<double>>;
using counter_dict = dragonx::ddict<std::string, std::int64_t>;

const std::string weights_key = "weights";  // {w, b}
const std::string step_key = "step";        // steps done
constexpr int points = 16;
constexpr double learning_rate = 0.3;

double x_of(int j) { return j / double{points - 1}; }
double y_of(int j) { return 2.5 * x_of(j) - 0.75 + 0.1 * std::sin(3.0 * j); }

/// The mean squared error of {w, b} over the points, halved.
double loss_of(const std::vector<double>& wb)
{
    double sum = 0;
    for (int j = 0; j < points; ++j) {
        const double r = wb[0] * x_of(j) + wb[1] - y_of(j);
        sum += r * r;
    }
    return sum / (2 * points);
}

/// One step of gradient descent on loss_of.
std::vector<double> step_of(const std::vector<double>& wb)
{
    double gw = 0;
    double gb = 0;
    for (int j = 0; j < points; ++j) {
        const double r = wb[0] * x_of(j) + wb[1] - y_of(j);
        gw += r * x_of(j);
        gb += r;
    }
    return {wb[0] - learning_rate * gw / points, wb[1] - learning_rate * gb / points};
}

struct options {
    std::int64_t steps = 5;
    std::string name = "restart_demo";
    bool restart = false;
    bool keep = true;
    std::optional<std::int64_t> expect_step;
};

int train(const options& o)
{
    const auto& rt = dragonx::runtime::current();
    dragonx::ddict_options opt;
    opt.name = o.name;
    opt.managers_per_node = 1;
    opt.n_nodes = rt.nnodes();
    opt.total_mem = std::uint64_t{16} << 20;
    opt.wait_for_keys = true;  // persistent keys carry over, others would be per checkpoint
    opt.working_set_size = 2;
    opt.timeout = 20s;
    opt.restart = o.restart;
    auto d = weights_dict::create(opt);
    // A second view of the dictionary, for the counter. Each handle has a checkpoint id of its
    // own: store() moves the counter's to the weights'.
    auto counter = counter_dict::attach(d.serialize());
    const auto store = [&](std::int64_t step, const std::vector<double>& wb) {
        counter.set_checkpoint_id(d.checkpoint_id());
        d.pput(weights_key, wb);
        counter.pput(step_key, step);
    };

    bool ok = true;
    try {
        std::int64_t step = 0;
        std::vector<double> wb{0.0, 0.0};
        if (!o.restart) {
            store(step, wb);
            std::printf("restart_train: created dictionary %s (%u manager(s)); initial weights "
                        "at checkpoint 0\n",
                        d.name().c_str(), d.managers());
            std::printf("step 0 loss %.17g\n", loss_of(wb));
        } else {
            const auto empty = d.empty_managers();
            if (!empty.empty()) {
                throw std::runtime_error(std::to_string(empty.size()) +
                                         " manager(s) came back empty (their node is gone)");
            }
            const auto at_start = d.checkpoint_id();
            d.sync_to_newest_checkpoint();
            counter.set_checkpoint_id(d.checkpoint_id());
            step = counter.get(step_key);
            wb = d.get(weights_key);
            std::printf("restart_train: restarted dictionary %s (%u manager(s)); checkpoint %llu "
                        "-> newest %llu: step %lld, w %.17g, b %.17g\n",
                        d.name().c_str(), d.managers(), static_cast<unsigned long long>(at_start),
                        static_cast<unsigned long long>(d.checkpoint_id()),
                        static_cast<long long>(step), wb[0], wb[1]);
            if (o.expect_step && step != *o.expect_step) {
                throw std::runtime_error("step " + std::to_string(step) + ", expected " +
                                         std::to_string(*o.expect_step));
            }
        }
        for (std::int64_t n = 0; n < o.steps; ++n) {
            wb = step_of(wb);
            ++step;
            d.checkpoint();
            store(step, wb);
            std::printf("step %lld loss %.17g\n", static_cast<long long>(step), loss_of(wb));
        }
    } catch (const std::exception& e) {
        std::printf("restart_train: %s\n", e.what());
        ok = false;
    }
    counter.detach();
    const bool keep = ok && o.keep && !o.restart;
    d.destroy(keep);
    std::printf("restart_train: destroyed at checkpoint %llu, %s; %s\n",
                static_cast<unsigned long long>(d.checkpoint_id()),
                keep ? "kept for a restart" : "for good", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const char* usage = "usage: restart_train [--steps K] [--name NAME] [--restart] "
                        "[--expect-step S] [--no-keep]\n";
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        options o;
        for (std::size_t i = 0; i < args.size(); ++i) {
            const bool has_value = i + 1 < args.size();
            if (args[i] == "--steps" && has_value) {
                o.steps = std::stoll(args[++i]);
            } else if (args[i] == "--name" && has_value) {
                o.name = args[++i];
            } else if (args[i] == "--expect-step" && has_value) {
                o.expect_step = std::stoll(args[++i]);
            } else if (args[i] == "--restart") {
                o.restart = true;
            } else if (args[i] == "--no-keep") {
                o.keep = false;
            } else {
                std::fprintf(stderr, "%s", usage);
                return 2;
            }
        }
        if (o.steps < 0) {
            std::fprintf(stderr, "restart_train: want K >= 0\n");
            return 2;
        }
        return train(o);
    } catch (const std::logic_error&) {  // std::stoll of something not a number
        std::fprintf(stderr, "%s", usage);
        return 2;
    } catch (const std::exception& e) {
        std::printf("restart_train: %s\n", e.what());
        return 1;
    }
}
