// persist_train.cpp - a training loop whose checkpoints a distributed dictionary persists to
// files; a later run restores the newest one and carries on, another replays them read-only.
//
//   dragonx run --wlm local -N 2 build/examples/persist_train --mode persist --steps 5
//   dragonx run --wlm local -N 2 build/examples/persist_train --mode restore --steps 5
//   dragonx run --wlm local -N 2 build/examples/persist_train --mode replay
//   dragonx run --wlm local -N 2 build/examples/persist_train --mode validate --steps 5  # 10
//   options: [--dir DIR] (default ./persist_train_data) [--name NAME] (default persist_train)
//
// The model is a linear regression (three features and a bias) on 32 fixed samples, trained by SGD
// on batches of 4 samples in turn. Its state (step counter and weights, one struct) is the value of
// key "state": step n reads it at checkpoint n-1, moves to checkpoint n and writes the new state
// there with bput (a copy on every manager, so that every manager moves to each checkpoint and
// persists it), then prints `step <n> loss <loss>` (the loss over all samples, every digit of the
// double; step 0 is the initial state, at checkpoint 0, printed by validate and persist). The
// dictionary is named NAME, one manager per node, a working set of 2, the POSIX persister writing
// into DIR with persist_freq 1 and persist_count -1: each checkpoint a manager retires (when a
// write at 2 checkpoints later arrives) is written to a file,
// DIR/NAME_<manager>_<checkpoint>.ddict.
//
// - persist: creates the dictionary, runs K steps (--steps, default 5), then persist()s the
//   last checkpoint, K, which is still in the working set (checkpoints are persisted as they
//   retire, and at destroy the working set is not), prints `persisted ids: ...`
//   (persisted_ids()), writes K into DIR/last_id and destroys the dictionary.
// - restore: creates it with restore_from = DIR/last_id (or --from ID): the managers load
//   that checkpoint and the creator starts there; checks the state's step is that id and runs
//   K more steps. K + K steps of persist and restore print the same lines as validate's 2K.
// - replay: creates it read-only from DIR/last_id, lists persisted_ids(), goes to the first
//   with restore() and through the rest with advance() (the next checkpoint) or, past a gap
//   (the last checkpoints of a run are not persisted), restore(); prints each checkpoint's
//   state as `replay: checkpoint <c> step <n> loss <loss>` and checks it was written at step
//   c. Then it removes the persisted files, DIR/last_id and DIR if it is left empty.
// - validate: runs 2K steps (twice --steps) in one go, in a dictionary that persists nothing.
//
// Exit code 0 when the mode's steps ran and its checks held (restore: the restored step is the
// id; replay: every checkpoint holds the state of its step); 1 otherwise; 2 for a bad command
// line.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <dragonx/dragonx.hpp>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

/// The model's state: a value with a codec built from its fields().
struct model_state {
    std::int64_t step = 0;
    std::vector<double> weights;  // three features, then the bias
    static auto fields(auto& self) { return std::tie(self.step, self.weights); }
};
using state_dict = dragonx::ddict<std::string, model_state>;

const std::string state_key = "state";
constexpr int samples = 32;
constexpr int batch = 4;
constexpr double learning_rate = 0.1;

/// Sample j: three features and the target (a known linear function plus a little noise).
std::array<double, 3> features_of(int j)
{
    return {std::sin(0.37 * (j + 1)), std::cos(0.91 * (j + 2)), (j % 7) / 7.0 - 0.5};
}
double target_of(int j)
{
    const auto x = features_of(j);
    return 1.5 * x[0] - 2.0 * x[1] + 0.5 * x[2] + 0.3 + 0.05 * std::cos(1.3 * j);
}
double residual(const std::vector<double>& w, int j)
{
    const auto x = features_of(j);
    return w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] - target_of(j);
}

/// Half the mean squared error over all samples.
double loss_of(const std::vector<double>& w)
{
    double sum = 0;
    for (int j = 0; j < samples; ++j) {
        sum += residual(w, j) * residual(w, j);
    }
    return sum / (2 * samples);
}

/// Step s + 1 of SGD: the batch of samples that comes next after s steps.
model_state step_of(const model_state& s)
{
    std::vector<double> grad(4, 0.0);
    for (int k = 0; k < batch; ++k) {
        const int j = static_cast<int>((s.step * batch + k) % samples);
        const auto x = features_of(j);
        const double r = residual(s.weights, j);
        for (int f = 0; f < 3; ++f) {
            grad[f] += r * x[f];
        }
        grad[3] += r;
    }
    model_state next{s.step + 1, s.weights};
    for (int f = 0; f < 4; ++f) {
        next.weights[f] -= learning_rate * grad[f] / batch;
    }
    return next;
}

struct options {
    std::string mode;
    std::int64_t steps = 5;
    fs::path dir = "persist_train_data";
    std::string name = "persist_train";
    std::optional<std::uint64_t> from;
};

dragonx::ddict_options dict_options(const options& o)
{
    dragonx::ddict_options opt;
    opt.managers_per_node = 1;
    opt.n_nodes = dragonx::runtime::current().nnodes();
    opt.total_mem = std::uint64_t{16} << 20;
    opt.working_set_size = 2;
    opt.timeout = 20s;
    if (o.mode != "validate") {
        opt.name = o.name;
        opt.persister = dragonx::ddict_options::persister_kind::posix;
        opt.persist_path = o.dir.string();
        opt.persist_freq = 1;
        opt.persist_count = -1;
    }
    return opt;
}

/// `steps` steps from the state at the handle's checkpoint.
void run_steps(state_dict& d, std::int64_t steps)
{
    for (std::int64_t n = 0; n < steps; ++n) {
        const auto next = step_of(d.bget(state_key));
        d.checkpoint();
        d.bput(state_key, next);
        std::printf("step %lld loss %.17g\n", static_cast<long long>(next.step),
                    loss_of(next.weights));
    }
}

std::string ids_text(const std::vector<std::uint64_t>& ids)
{
    std::string out;
    for (const auto id : ids) {
        out += (out.empty() ? "" : " ") + std::to_string(id);
    }
    return out.empty() ? "(none)" : out;
}

fs::path last_id_file(const options& o) { return o.dir / "last_id"; }

std::uint64_t last_id(const options& o)
{
    if (o.from) {
        return *o.from;
    }
    std::ifstream in(last_id_file(o));
    std::uint64_t id = 0;
    if (!(in >> id)) {
        throw std::runtime_error("no checkpoint id in " + last_id_file(o).string() +
                                 " (run --mode persist first)");
    }
    return id;
}

/// validate and persist: a new dictionary, from step 0.
bool train(state_dict& d, const options& o)
{
    const model_state initial{0, std::vector<double>(4, 0.0)};
    d.bput(state_key, initial);
    std::printf("step 0 loss %.17g\n", loss_of(initial.weights));
    const auto steps = o.mode == "validate" ? 2 * o.steps : o.steps;
    run_steps(d, steps);
    if (o.mode == "validate") {
        return true;
    }
    const auto last = d.checkpoint_id();
    d.persist();
    const auto ids = d.persisted_ids();
    std::printf("persisted ids: %s\n", ids_text(ids).c_str());
    std::ofstream(last_id_file(o)) << last << "\n";
    std::printf("persist_train: checkpoint %llu persisted, its id in %s\n",
                static_cast<unsigned long long>(last), last_id_file(o).c_str());
    return std::find(ids.begin(), ids.end(), last) != ids.end();
}

/// restore: carries on from the restored checkpoint.
bool carry_on(state_dict& d, std::uint64_t from, const options& o)
{
    const model_state s = d.bget(state_key);
    std::printf("persist_train: restored checkpoint %llu: step %lld, loss %.17g\n",
                static_cast<unsigned long long>(d.checkpoint_id()),
                static_cast<long long>(s.step), loss_of(s.weights));
    if (d.checkpoint_id() != from || s.step != static_cast<std::int64_t>(from)) {
        std::printf("persist_train: expected checkpoint and step %llu\n",
                    static_cast<unsigned long long>(from));
        return false;
    }
    run_steps(d, o.steps);
    return true;
}

/// replay: every persisted checkpoint in turn, read-only.
bool replay(state_dict& d)
{
    const auto ids = d.persisted_ids();
    std::printf("persisted ids: %s\n", ids_text(ids).c_str());
    bool ok = !ids.empty();
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i > 0 && ids[i] == d.checkpoint_id() + 1) {
            (void)d.advance();  // the next one: persist_freq after this one
        } else {
            d.restore(ids[i]);  // the first, or past a gap
        }
        const model_state s = d.bget(state_key);
        const bool right = d.checkpoint_id() == ids[i] &&
                           s.step == static_cast<std::int64_t>(ids[i]);
        std::printf("replay: checkpoint %llu step %lld loss %.17g%s\n",
                    static_cast<unsigned long long>(d.checkpoint_id()),
                    static_cast<long long>(s.step), loss_of(s.weights),
                    right ? "" : " WRONG");
        ok = ok && right;
    }
    return ok;
}

/// After a replay: the persisted files (DIR/NAME_<manager>_<checkpoint>.ddict), last_id, and
/// DIR if nothing else is in it.
void remove_files(const options& o)
{
    int removed = 0;
    for (const auto& entry : fs::directory_iterator(o.dir)) {
        const auto file = entry.path().filename().string();
        if (file.starts_with(o.name + "_") && file.ends_with(".ddict")) {
            removed += fs::remove(entry.path()) ? 1 : 0;
        }
    }
    fs::remove(last_id_file(o));
    std::error_code not_empty;
    const bool dir_gone = fs::remove(o.dir, not_empty);
    std::printf("persist_train: removed %d persisted file(s)%s\n", removed,
                dir_gone ? (" and " + o.dir.string()).c_str() : "");
}

int run(const options& o)
{
    auto opt = dict_options(o);
    std::uint64_t from = 0;
    if (o.mode == "persist") {
        fs::create_directories(o.dir);
    } else if (o.mode == "restore" || o.mode == "replay") {
        from = last_id(o);
        opt.restore_from = from;
    }
    if (o.mode == "replay") {
        opt.read_only = true;
        opt.working_set_size = 1;
        opt.persist_count = 0;
    }
    auto d = state_dict::create(opt);
    std::printf("persist_train: %s: dictionary %s (%u manager(s))%s\n", o.mode.c_str(),
                d.name().c_str(), d.managers(),
                opt.restore_from ? (", from checkpoint " + std::to_string(from)).c_str() : "");
    bool ok = false;
    try {
        if (o.mode == "validate" || o.mode == "persist") {
            ok = train(d, o);
        } else if (o.mode == "restore") {
            ok = carry_on(d, from, o);
        } else {
            ok = replay(d);
        }
    } catch (const std::exception& e) {
        std::printf("persist_train: %s\n", e.what());
    }
    d.destroy();
    if (ok && o.mode == "replay") {
        remove_files(o);
    }
    std::printf("persist_train: %s: %s\n", o.mode.c_str(), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const char* usage = "usage: persist_train --mode validate|persist|restore|replay "
                        "[--steps K] [--dir DIR] [--name NAME] [--from ID]\n";
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        options o;
        for (std::size_t i = 0; i + 1 < args.size(); i += 2) {
            if (args[i] == "--mode") {
                o.mode = args[i + 1];
            } else if (args[i] == "--steps") {
                o.steps = std::stoll(args[i + 1]);
            } else if (args[i] == "--dir") {
                o.dir = args[i + 1];
            } else if (args[i] == "--name") {
                o.name = args[i + 1];
            } else if (args[i] == "--from") {
                o.from = std::stoull(args[i + 1]);
            } else {
                o.mode.clear();
                break;
            }
        }
        const bool known = o.mode == "validate" || o.mode == "persist" ||
                           o.mode == "restore" || o.mode == "replay";
        if (args.size() % 2 != 0 || !known || o.steps < 0) {
            std::fprintf(stderr, "%s", usage);
            return 2;
        }
        return run(o);
    } catch (const std::logic_error&) {  // std::stoll of something not a number
        std::fprintf(stderr, "%s", usage);
        return 2;
    } catch (const std::exception& e) {
        std::printf("persist_train: %s\n", e.what());
        return 1;
    }
}
