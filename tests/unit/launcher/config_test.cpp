// config_test.cpp - `dragonx config`: the command line, and add/show/clear round trips on a
// temporary $DRAGONX_CONFIG; a directory without libfabric is refused.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <dragonx/common/error.hpp>

#include "config_command.hpp"
#include "config_file.hpp"
#include "options.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using dragonx::launcher::config_options;
using dragonx::launcher::early_exit;
using dragonx::launcher::parse_command_line;
using dragonx::launcher::run_config;
using dragonx::rt::detail::config_file;

namespace {

dragonx::launcher::command parse(const std::vector<std::string>& args)
{
    std::vector<const char*> argv{"dragonx"};
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

config_options parse_config(const std::vector<std::string>& args)
{
    const auto c = parse(args);
    if (const auto* e = std::get_if<early_exit>(&c)) {
        FAIL_CHECK("unexpected early exit " << e->code << ": " << e->out << e->err);
    }
    REQUIRE(std::holds_alternative<config_options>(c));
    return std::get<config_options>(c);
}

/// The config file in a subdirectory that does not exist yet: `add` must create it.
class temp_config : public dragonx::test::scoped_config_file {
public:
    temp_config() : scoped_config_file("sub/config") {}
};

struct result {
    int code;
    std::string out;
    std::string err;
};

result config(const std::vector<std::string>& args)
{
    std::vector<std::string> line{"config"};
    line.insert(line.end(), args.begin(), args.end());
    std::ostringstream out;
    std::ostringstream err;
    const int code = run_config(parse_config(line), out, err);
    return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("config: the command line", "[launcher][config]")
{
    using action = config_options::action;
    CHECK(parse_config({"config"}).what == action::show);
    CHECK(parse_config({"config", "show"}).what == action::show);
    CHECK(parse_config({"config", "clear"}).what == action::clear);
    CHECK(parse_config({"config", "--clean"}).what == action::clear);
    CHECK(parse_config({"config", "-c"}).what == action::clear);
    const auto add = parse_config({"config", "add", "--ofi-runtime-lib", "/opt/ofi/lib"});
    CHECK(add.what == action::add);
    CHECK(add.ofi_runtime_lib == "/opt/ofi/lib");
    CHECK_FALSE(add.tcp_runtime);
    const auto tcp = parse_config({"config", "add", "--tcp-runtime"});
    CHECK(tcp.tcp_runtime);
    CHECK(tcp.ofi_runtime_lib.empty());

    for (const std::vector<std::string>& bad : {std::vector<std::string>{"config", "add"},
                                                {"config", "add", "--ofi-runtime-lib"},
                                                {"config", "add", "--ofi-runtime-lib", ""},
                                                {"config", "add", "/opt/ofi/lib"},
                                                {"config", "--clean", "show"},
                                                {"config", "frobnicate"}}) {
        const auto c = parse(bad);
        REQUIRE(std::holds_alternative<early_exit>(c));
        CHECK(std::get<early_exit>(c).code == 2);
    }
}

TEST_CASE("config: add, show and clear round trip", "[launcher][config]")
{
    temp_config tmp;
    CHECK(config_file::default_path() == tmp.file());

    auto r = config({"show"});
    CHECK(r.code == 0);
    CHECK(r.out.find(tmp.file().string()) != std::string::npos);
    CHECK(r.out.find("no settings") != std::string::npos);

    // A directory with a libfabric in it (a stand-in file is enough for `add`).
    const fs::path lib = tmp.dir() / "ofi" / "lib";
    fs::create_directories(lib);
    std::ofstream(lib / "libfabric.so.1") << "not really";
    r = config({"add", "--ofi-runtime-lib", lib.string()});
    INFO(r.err);
    CHECK(r.code == 0);
    CHECK(config_file::load_default().ofi_runtime_lib() == lib.string());
    CHECK_FALSE(config_file::load_default().tcp_runtime());

    r = config({"add", "--tcp-runtime"});
    CHECK(r.code == 0);
    const auto both = config_file::load_default();
    CHECK(both.ofi_runtime_lib() == lib.string());  // kept
    CHECK(both.tcp_runtime());

    r = config({"show"});
    CHECK(r.code == 0);
    CHECK(r.out.find("ofi_runtime_lib=" + lib.string()) != std::string::npos);
    CHECK(r.out.find("tcp_runtime=true") != std::string::npos);
    CHECK(r.out.find(tmp.file().string()) != std::string::npos);

    // Unknown keys a newer version wrote survive an add.
    {
        std::ofstream(tmp.file(), std::ios::app) << "# a comment\nfuture_key = some value\n";
    }
    r = config({"add", "--tcp-runtime"});
    CHECK(config_file::load_default().get("future_key") == "some value");

    r = config({"clear"});
    CHECK(r.code == 0);
    CHECK(r.out.find("removed") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.file()));
    CHECK(config_file::load_default().settings().empty());
    r = config({"--clean"});
    CHECK(r.code == 0);
    CHECK(r.out.find("nothing to remove") != std::string::npos);
}

TEST_CASE("config: a directory without libfabric is refused", "[launcher][config]")
{
    temp_config tmp;
    auto r = config({"add", "--ofi-runtime-lib", tmp.dir().string()});
    CHECK(r.code == 1);
    CHECK(r.err.find("holds no libfabric.so") != std::string::npos);
    CHECK(r.err.find(tmp.dir().string()) != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.file()));

    r = config({"add", "--ofi-runtime-lib", (tmp.dir() / "missing").string()});
    CHECK(r.code == 1);
    CHECK(r.err.find("is not a directory") != std::string::npos);

    // A relative directory is recorded as an absolute one.
    const fs::path lib = tmp.dir() / "lib";
    fs::create_directories(lib);
    std::ofstream(lib / "libfabric.so") << "";
    const auto cwd = fs::current_path();
    fs::current_path(tmp.dir());
    r = config({"add", "--ofi-runtime-lib", "lib"});
    fs::current_path(cwd);
    CHECK(r.code == 0);
    CHECK(config_file::load_default().ofi_runtime_lib() == lib.string());
}

TEST_CASE("config: a malformed file is an error naming the file and line", "[launcher][config]")
{
    temp_config tmp;
    fs::create_directories(tmp.file().parent_path());
    std::ofstream(tmp.file()) << "ofi_runtime_lib=/x\njust words\n";
    std::string what;
    CHECK(dragonx::test::errc_of([] { (void)config_file::load_default(); }, &what) ==
          dragonx::errc::invalid_argument);
    CHECK(what.find(tmp.file().string() + ":2") != std::string::npos);
    const auto r = config({"show"});
    CHECK(r.code == 1);
    CHECK(r.err.find(":2") != std::string::npos);
}
