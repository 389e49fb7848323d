// options.cpp - the `dragonx` command line, parsed with CLI11 and checked.
//
// Notes:
// - One CLI::App per call, nothing global. The shorthand `dragonx [options] PROG` is parsed as
//   `dragonx run [options] PROG`: "run" is put in front unless argv[1] is a subcommand or a
//   top-level flag (--version, -h, --help).
// - `run` is a CLI11 prefix command: options are parsed up to the first argument that is not
//   one of them, and that argument (PROG) and everything after it come back untouched in
//   remaining(). An unknown option before PROG also lands there, so a "PROG" that starts with
//   '-' is reported as an unknown option; "--" ends the options, for the rare PROG that does.
// - Values are taken as strings and checked here, so every usage error names the option and
//   the value. Given twice, a value option keeps the last one (as argparse does).
#include "options.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <CLI/CLI.hpp>

#ifndef DRAGONX_VERSION
#define DRAGONX_VERSION "0.1.0"
#endif

namespace dragonx::launcher {
namespace {

/// A usage error found while checking the values; becomes an early_exit with code 2. It never
/// leaves this file.
class usage_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

early_exit usage(const std::string& message)
{
    return early_exit{2, {}, "dragonx: " + message + "\nRun 'dragonx --help' for usage.\n"};
}

/// Prints the usage lines of options.hpp instead of CLI11's generic ones.
class usage_formatter : public CLI::Formatter {
public:
    std::string make_usage(const CLI::App* app, std::string name) const override
    {
        if (app->get_parent() == nullptr) {
            return "Usage: dragonx run [OPTIONS] PROG [ARGS...]\n"
                   "       dragonx [OPTIONS] PROG [ARGS...]\n"
                   "       dragonx cleanup [--dry-run] [--this-node-only]\n"
                   "       dragonx config add [--ofi-runtime-lib DIR] [--tcp-runtime]\n"
                   "       dragonx config show | clear\n"
                   "       dragonx --version | --help\n";
        }
        if (app->get_name() == "run") {
            return "Usage: " + name + " [OPTIONS] PROG [ARGS...]\n";
        }
        return CLI::Formatter::make_usage(app, std::move(name));
    }
};

bool is_space(char c)
{
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return s;
}

void add_host(std::vector<std::string>& hosts, std::string_view host)
{
    if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
        hosts.emplace_back(host);
    }
}

/// The hosts of a host file: one per line, '#' starts a comment, blank lines are skipped,
/// duplicates dropped (first one kept).
std::vector<std::string> read_hostfile(const std::string& path)
{
    std::ifstream in(path);
    if (!in) {
        throw usage_error("--hostfile: cannot read '" + path + "': " + std::strerror(errno));
    }
    std::vector<std::string> hosts;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        std::string_view host = line;
        if (const auto hash = host.find('#'); hash != std::string_view::npos) {
            host = host.substr(0, hash);
        }
        host = trim(host);
        if (host.empty()) {
            continue;
        }
        if (std::any_of(host.begin(), host.end(), is_space)) {
            throw usage_error("--hostfile: " + path + ":" + std::to_string(number) + ": '" +
                              std::string(host) + "' is not a host name");
        }
        add_host(hosts, host);
    }
    if (in.bad()) {
        throw usage_error("--hostfile: cannot read '" + path + "': " + std::strerror(errno));
    }
    if (hosts.empty()) {
        throw usage_error("--hostfile: '" + path + "' names no host");
    }
    return hosts;
}

/// The hosts of "a,b,c": trimmed, empty entries skipped, duplicates dropped.
std::vector<std::string> parse_hostlist(const std::string& list)
{
    std::vector<std::string> hosts;
    std::string_view rest = list;
    for (;;) {
        const auto comma = rest.find(',');
        const std::string_view host = trim(rest.substr(0, comma));
        if (std::any_of(host.begin(), host.end(), is_space)) {
            throw usage_error("--hostlist: '" + std::string(host) + "' is not a host name");
        }
        if (!host.empty()) {
            add_host(hosts, host);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(comma + 1);
    }
    if (hosts.empty()) {
        throw usage_error("--hostlist: '" + list + "' names no host");
    }
    return hosts;
}

std::uint32_t parse_nodes(const std::string& text)
{
    std::uint32_t n = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, n);
    if (ec == std::errc::result_out_of_range) {
        throw usage_error("-N/--nodes: '" + text + "' is too large");
    }
    if (text.empty() || ec != std::errc{} || ptr != end) {
        throw usage_error("-N/--nodes: '" + text + "' is not a non-negative integer");
    }
    return n;
}

wlm_kind parse_wlm(const std::string& text)
{
    for (const wlm_kind w : {wlm_kind::local, wlm_kind::slurm, wlm_kind::pbs, wlm_kind::ssh}) {
        if (text == to_string(w)) {
            return w;
        }
    }
    throw usage_error("--wlm: unknown workload manager '" + text +
                      "' (expected local, slurm, pbs or ssh)");
}

label_mode parse_label(const std::string& text)
{
    for (const label_mode l : {label_mode::none, label_mode::basic, label_mode::verbose}) {
        if (text == to_string(l)) {
            return l;
        }
    }
    throw usage_error("--label: unknown label mode '" + text +
                      "' (expected none, basic or verbose)");
}

std::string parse_log_level(const std::string& text)
{
    std::string level = lower(text);
    for (const char* known : {"debug", "info", "warning", "error", "critical", "none"}) {
        if (level == known) {
            return level;
        }
    }
    throw usage_error("-l/--log-level: unknown log level '" + text +
                      "' (expected debug, info, warning, error, critical or none)");
}

/// tcp, ofi or ofi:<provider> (a libfabric provider name such as tcp, verbs or cxi).
std::string parse_transport(const std::string& text)
{
    if (text == "tcp" || text == "ofi") {
        return text;
    }
    if (text.rfind("ofi:", 0) == 0) {
        const std::string provider = text.substr(4);
        const bool plain = std::all_of(provider.begin(), provider.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' ||
                   c == ';' || c == '.';
        });
        if (!provider.empty() && plain) {
            return text;
        }
        throw usage_error("-t/--transport: '" + text + "' does not name a libfabric provider");
    }
    throw usage_error("-t/--transport: unknown transport '" + text +
                      "' (expected tcp, ofi or ofi:<provider>)");
}

/// The values of `run`'s options as given, before they are checked.
struct raw_run_options {
    std::string nodes;
    std::string wlm;
    std::string hostfile;
    std::string hostlist;
    bool single_node = false;
    std::string label;
    std::string log_level;
    std::string transport;
    CLI::Option* nodes_opt = nullptr;
    CLI::Option* wlm_opt = nullptr;
    CLI::Option* hostfile_opt = nullptr;
    CLI::Option* hostlist_opt = nullptr;
    CLI::Option* label_opt = nullptr;
    CLI::Option* log_level_opt = nullptr;
    CLI::Option* transport_opt = nullptr;
};

void add_run_options(CLI::App& run, raw_run_options& raw)
{
    raw.nodes_opt =
        run.add_option("-N,--nodes", raw.nodes, "Number of nodes to use (default: all offered)")
            ->type_name("N");
    raw.wlm_opt = run.add_option("--wlm", raw.wlm,
                                 "Workload manager to take the allocation from (default: detect)")
                      ->type_name("local|slurm|pbs|ssh");
    raw.hostfile_opt =
        run.add_option("--hostfile", raw.hostfile,
                       "File naming the hosts to use, one per line ('#' starts a comment)")
            ->type_name("PATH");
    raw.hostlist_opt = run.add_option("--hostlist", raw.hostlist, "Comma-separated hosts to use")
                           ->type_name("HOST[,HOST...]");
    run.add_flag("-s,--single-node", raw.single_node,
                 "Run on this node only, without a workload manager");
    raw.label_opt = run.add_option("--label", raw.label,
                                   "Prefix output lines with their origin (default: none)")
                        ->type_name("none|basic|verbose");
    raw.log_level_opt =
        run.add_option("-l,--log-level", raw.log_level, "Runtime log level (default: warning)")
            ->type_name("debug|info|warning|error|critical|none");
    raw.transport_opt =
        run.add_option("-t,--transport", raw.transport,
                       "Data transport between nodes (default: ofi where libfabric has a "
                       "provider, else tcp)")
            ->type_name("tcp|ofi|ofi:PROVIDER");
    for (CLI::Option* opt : {raw.nodes_opt, raw.wlm_opt, raw.hostfile_opt, raw.hostlist_opt,
                             raw.label_opt, raw.log_level_opt, raw.transport_opt}) {
        opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
}

/// Checks the values and takes PROG and ARGS from `command_line` (PROG first).
run_options make_run_options(const raw_run_options& raw, std::vector<std::string> command_line)
{
    run_options o;
    if (raw.nodes_opt->count() > 0) {
        o.nodes = parse_nodes(raw.nodes);
    }
    if (raw.wlm_opt->count() > 0) {
        o.wlm = parse_wlm(raw.wlm);
    }
    if (raw.hostfile_opt->count() > 0 && raw.hostlist_opt->count() > 0) {
        throw usage_error("--hostfile and --hostlist cannot be used together");
    }
    if (raw.hostfile_opt->count() > 0) {
        o.hosts = read_hostfile(raw.hostfile);
    }
    if (raw.hostlist_opt->count() > 0) {
        o.hosts = parse_hostlist(raw.hostlist);
    }
    o.single_node = raw.single_node;
    if (o.single_node && raw.wlm_opt->count() > 0) {
        throw usage_error("-s/--single-node cannot be used with --wlm");
    }
    if (o.single_node && o.nodes > 1) {
        throw usage_error("-s/--single-node cannot be used with -N " + std::to_string(o.nodes));
    }
    if (raw.label_opt->count() > 0) {
        o.label = parse_label(raw.label);
    }
    if (raw.log_level_opt->count() > 0) {
        o.log_level = parse_log_level(raw.log_level);
    }
    if (raw.transport_opt->count() > 0) {
        o.transport = parse_transport(raw.transport);
    }
    if (command_line.empty() || command_line.front().empty()) {
        throw usage_error("no program specified");
    }
    o.program = std::move(command_line.front());
    o.args.assign(std::make_move_iterator(command_line.begin() + 1),
                  std::make_move_iterator(command_line.end()));
    return o;
}

bool is_top_level(const std::string& arg)
{
    return arg == "run" || arg == "cleanup" || arg == "config" || arg == "--version" ||
           arg == "-h" || arg == "--help";
}

}  // namespace

command parse_command_line(int argc, const char* const* argv)
{
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) {
        args.emplace_back(argv[i]);
    }
    if (args.empty() || !is_top_level(args.front())) {
        args.insert(args.begin(), "run");
    }
    // A "--" ends run's options: what follows is PROG and ARGS, kept away from CLI11. If PROG
    // comes before the first "--", that "--" is one of PROG's arguments (see below).
    std::vector<std::string> after_mark;
    bool has_mark = false;
    if (args.front() == "run") {
        const auto mark = std::find(args.begin() + 1, args.end(), "--");
        if (mark != args.end()) {
            has_mark = true;
            after_mark.assign(mark + 1, args.end());
            args.erase(mark, args.end());
        }
    }

    CLI::App app{"dragonx: run a program on the nodes of an allocation.", "dragonx"};
    app.formatter(std::make_shared<usage_formatter>());
    app.require_subcommand(0, 1);
    app.footer("Run 'dragonx run --help' for the options of a run.");
    bool version = false;
    app.add_flag("--version", version, "Print the version and exit");

    CLI::App* run = app.add_subcommand("run", "Start a run with PROG as its head process");
    run->prefix_command();
    run->footer("PROG and everything after it are passed to PROG unchanged.\n"
                "Put -- before a PROG that starts with '-'.");
    raw_run_options raw;
    add_run_options(*run, raw);

    CLI::App* cleanup = app.add_subcommand(
        "cleanup", "Remove what crashed runs left on the nodes of the allocation");
    cleanup->footer("Inside a Slurm or PBS allocation every node is cleaned; elsewhere this one.");
    bool dry_run = false;
    bool this_node_only = false;
    cleanup->add_flag("--dry-run", dry_run, "Only print what would be removed");
    cleanup->add_flag("--this-node-only", this_node_only,
                      "Clean this node only, even inside an allocation");

    CLI::App* config = app.add_subcommand(
        "config", "Show or change your dragonx settings (which libfabric to load, TCP or not)");
    config->require_subcommand(0, 1);
    config->footer("The settings file: $DRAGONX_CONFIG, else "
                   "${XDG_CONFIG_HOME:-$HOME/.config}/dragonx/config.");
    bool config_clean = false;
    config->add_flag("-c,--clean", config_clean, "Remove every setting (same as `clear`)");
    CLI::App* config_add = config->add_subcommand("add", "Add settings");
    std::string ofi_runtime_lib;
    bool tcp_runtime = false;
    CLI::Option* ofi_runtime_lib_opt =
        config_add
            ->add_option("--ofi-runtime-lib", ofi_runtime_lib,
                         "Load libfabric from DIR (DIR/libfabric.so.1) instead of the system's")
            ->type_name("DIR");
    ofi_runtime_lib_opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    config_add->add_flag("--tcp-runtime", tcp_runtime,
                         "Use TCP between nodes even where libfabric has a provider");
    CLI::App* config_show = config->add_subcommand("show", "Print the settings and their file");
    CLI::App* config_clear = config->add_subcommand("clear", "Remove every setting");

    try {
        std::vector<std::string> reversed(args.rbegin(), args.rend());
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        return early_exit{0, app.help(), {}};
    } catch (const CLI::ParseError& e) {
        return usage(e.what());
    }

    if (version) {
        return early_exit{0, "dragonx " DRAGONX_VERSION "\n", {}};
    }
    if (app.got_subcommand(cleanup)) {
        return cleanup_options{.dry_run = dry_run, .this_node_only = this_node_only};
    }
    if (app.got_subcommand(config)) {
        config_options c;
        const int actions = static_cast<int>(config->got_subcommand(config_add)) +
                            static_cast<int>(config->got_subcommand(config_show)) +
                            static_cast<int>(config->got_subcommand(config_clear)) +
                            static_cast<int>(config_clean);
        if (actions > 1) {
            return usage("config: give one of add, show, clear or --clean");
        }
        if (config->got_subcommand(config_add)) {
            if (ofi_runtime_lib_opt->count() == 0 && !tcp_runtime) {
                return usage("config add: nothing to add (--ofi-runtime-lib DIR, --tcp-runtime)");
            }
            if (ofi_runtime_lib_opt->count() > 0 && ofi_runtime_lib.empty()) {
                return usage("config add: --ofi-runtime-lib needs a directory");
            }
            c.what = config_options::action::add;
            c.ofi_runtime_lib = ofi_runtime_lib;
            c.tcp_runtime = tcp_runtime;
        } else if (config->got_subcommand(config_clear) || config_clean) {
            c.what = config_options::action::clear;
        }
        return c;
    }
    std::vector<std::string> command_line = run->remaining();
    if (!command_line.empty()) {
        const std::string& first = command_line.front();
        if (first.size() > 1 && first.front() == '-') {
            return usage("unknown option '" + first + "'");
        }
        if (has_mark) {
            command_line.emplace_back("--");
        }
    }
    command_line.insert(command_line.end(), std::make_move_iterator(after_mark.begin()),
                        std::make_move_iterator(after_mark.end()));
    try {
        return make_run_options(raw, std::move(command_line));
    } catch (const usage_error& e) {
        return usage(e.what());
    }
}

const char* to_string(wlm_kind w) noexcept
{
    switch (w) {
    case wlm_kind::automatic:
        return "automatic";
    case wlm_kind::local:
        return "local";
    case wlm_kind::slurm:
        return "slurm";
    case wlm_kind::pbs:
        return "pbs";
    case wlm_kind::ssh:
        return "ssh";
    }
    return "unknown";
}

const char* to_string(label_mode l) noexcept
{
    switch (l) {
    case label_mode::none:
        return "none";
    case label_mode::basic:
        return "basic";
    case label_mode::verbose:
        return "verbose";
    }
    return "unknown";
}

}  // namespace dragonx::launcher
