// ofi_library.cpp - dlopen of libfabric and the choice of an RDM provider.
#include "transport/ofi_library.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>  // before the libfabric headers: they use strdup without including it
#include <filesystem>
#include <string_view>
#include <utility>

#include <rdma/fabric.h>
#include <rdma/fi_errno.h>

#include <spdlog/spdlog.h>

#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

#include "config_file.hpp"

namespace dragonx::rt::detail {
namespace {

constexpr std::uint32_t header_version = FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION);

spdlog::logger& logger()
{
    return log::get("transport");
}

/// Resolves `name` in `handle`, or throws naming the library.
template <class Fn> Fn resolve(void* handle, const char* name, const std::string& path)
{
    ::dlerror();
    void* symbol = ::dlsym(handle, name);
    if (symbol == nullptr) {
        const char* why = ::dlerror();
        throw_error(errc::no_transport, "libfabric '" + path + "' has no " + name + ": " +
                                            (why != nullptr ? why : "symbol is null"));
    }
    return reinterpret_cast<Fn>(symbol);
}

/// True for providers the agents never pick on their own: deprecated or slow RDM emulations
/// (sockets, net, udp;ofi_rxd) and shm, which cannot leave the node.
bool excluded_by_default(std::string_view provider)
{
    while (!provider.empty()) {
        const auto semicolon = provider.find(';');
        const std::string_view part = provider.substr(0, semicolon);
        for (const std::string_view bad : {"sockets", "net", "udp", "ofi_rxd", "shm"}) {
            if (part == bad) {
                return true;
            }
        }
        if (semicolon == std::string_view::npos) {
            break;
        }
        provider.remove_prefix(semicolon + 1);
    }
    return false;
}

const char* fi_provider_env()
{
    const char* v = std::getenv("FI_PROVIDER");
    return v != nullptr && *v != '\0' ? v : nullptr;
}

}  // namespace

std::shared_ptr<const ofi_library> ofi_library::load(const std::string& dir)
{
    std::string path = "libfabric.so.1";
    if (!dir.empty()) {
        const std::filesystem::path d(dir);
        std::error_code ec;
        path = (d / "libfabric.so.1").string();
        if (!std::filesystem::exists(path, ec) && std::filesystem::exists(d / "libfabric.so", ec)) {
            path = (d / "libfabric.so").string();
        }
    }
    // RTLD_NODELETE: libfabric may start threads and install memory hooks (its MR cache
    // monitors) that must not be unmapped while the process runs, so it stays loaded after
    // the last ofi_library is gone; loading it again is then cheap.
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle == nullptr) {
        const char* why = ::dlerror();
        throw_error(errc::no_transport, "cannot load libfabric '" + path +
                                            "': " + (why != nullptr ? why : "dlopen failed"));
    }
    std::shared_ptr<ofi_library> lib(new ofi_library());
    lib->handle_ = handle;  // from here on, ~ofi_library dlcloses it
    lib->path_ = path;
    lib->getinfo = resolve<getinfo_fn>(handle, "fi_getinfo", path);
    lib->freeinfo = resolve<freeinfo_fn>(handle, "fi_freeinfo", path);
    lib->dupinfo = resolve<dupinfo_fn>(handle, "fi_dupinfo", path);
    lib->fabric = resolve<fabric_fn>(handle, "fi_fabric", path);
    lib->strerror = resolve<strerror_fn>(handle, "fi_strerror", path);
    lib->version_ = resolve<version_fn>(handle, "fi_version", path)();
    if (lib->version_ < min_version) {
        throw_error(errc::no_transport, "libfabric '" + path + "' is version " +
                                            lib->version_string() +
                                            "; dragonx needs 1.10 or newer");
    }
    return lib;
}

std::shared_ptr<const ofi_library> ofi_library::load_configured()
{
    const config_file config = config_file::load_default();
    const std::string dir = config.ofi_runtime_lib();
    try {
        return load(dir);
    } catch (const error& e) {
        if (dir.empty()) {
            throw;
        }
        throw error(e.code(), std::string(e.what()) + " (the directory comes from " +
                                  config.path().string() + "; see `dragonx config show`)");
    }
}

ofi_library::~ofi_library()
{
    if (handle_ != nullptr) {
        ::dlclose(handle_);
    }
}

std::uint32_t ofi_library::api_version() const noexcept
{
    return version_ < header_version ? version_ : header_version;
}

std::string ofi_library::version_string() const
{
    return std::to_string(FI_MAJOR(version_)) + "." + std::to_string(FI_MINOR(version_));
}

std::string ofi_library::error_text(long code) const
{
    const int positive = static_cast<int>(code < 0 ? -code : code);
    const char* text = strerror(positive);
    return std::string(text != nullptr ? text : "unknown error") + " (" + std::to_string(positive) +
           ")";
}

void ofi_info_deleter::operator()(fi_info* info) const noexcept
{
    if (info != nullptr) {
        library->freeinfo(info);
    }
}

ofi_info_ptr choose_provider(std::shared_ptr<const ofi_library> library,
                             const std::string& requested, const std::string& bind_address)
{
    const ofi_library& lib = *library;
    ofi_info_ptr hints(lib.dupinfo(nullptr), ofi_info_deleter{library});
    if (!hints) {
        throw_error(errc::no_transport, "fi_dupinfo failed (out of memory?)");
    }
    hints->ep_attr->type = FI_EP_RDM;
    hints->caps = FI_TAGGED;
    // Every operation's context is an fi_context2 we own (see ofi_link.cpp).
    hints->mode = FI_CONTEXT | FI_CONTEXT2;
    // We register no memory, so any mode is fine except FI_MR_LOCAL (registering send and
    // receive buffers); providers that need it are not offered.
    hints->domain_attr->mr_mode =
        FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    hints->domain_attr->threading = FI_THREAD_DOMAIN;
    if (!requested.empty()) {
        // Freed by fi_freeinfo, so it must come from malloc.
        hints->fabric_attr->prov_name = ::strdup(requested.c_str());
    }

    const bool any_node = bind_address.empty() || bind_address == "0.0.0.0";
    const char* node = any_node ? nullptr : bind_address.c_str();
    fi_info* list = nullptr;
    int r = lib.getinfo(lib.api_version(), node, nullptr, node != nullptr ? FI_SOURCE : 0,
                        hints.get(), &list);
    if (r == -FI_ENODATA && node != nullptr) {
        r = lib.getinfo(lib.api_version(), nullptr, nullptr, 0, hints.get(), &list);
        if (r == 0) {
            logger().warn("libfabric: provider {} has no interface for address {}; using its "
                          "default one",
                          list->fabric_attr->prov_name, bind_address);
        }
    }
    const char* env = fi_provider_env();
    const std::string asked =
        (requested.empty() ? std::string("an RDM provider") : "provider '" + requested + "'") +
        (env != nullptr ? std::string(" with FI_PROVIDER=") + env : "") +
        (node != nullptr ? " at " + bind_address : "");
    if (r != 0) {
        throw_error(errc::no_transport, "libfabric " + lib.version_string() + " ('" + lib.path() +
                                            "') has no " + asked + ": " + lib.error_text(r));
    }
    const ofi_info_ptr all(list, ofi_info_deleter{library});
    const bool explicit_choice = !requested.empty() || env != nullptr;
    std::string skipped;
    for (const fi_info* info = all.get(); info != nullptr; info = info->next) {
        const std::string name = info->fabric_attr->prov_name;
        if (explicit_choice || !excluded_by_default(name)) {
            ofi_info_ptr chosen(lib.dupinfo(info), ofi_info_deleter{library});
            if (!chosen) {
                throw_error(errc::no_transport, "fi_dupinfo failed (out of memory?)");
            }
            return chosen;
        }
        if (skipped.find(name) == std::string::npos) {
            skipped += (skipped.empty() ? "" : ", ") + name;
        }
    }
    throw_error(errc::no_transport, "libfabric " + lib.version_string() + " ('" + lib.path() +
                                        "') has no " + asked + " fit for dragonx (skipped: " +
                                        skipped + "; name one with -t ofi:<provider> to use it)");
}

ofi_provider_probe find_ofi_provider(std::shared_ptr<const ofi_library> library,
                                     const std::string& requested)
{
    try {
        const ofi_info_ptr info = choose_provider(std::move(library), requested);
        return {info->fabric_attr->prov_name, {}};
    } catch (const error& e) {
        return {{}, e.what()};
    }
}

ofi_provider_probe find_ofi_provider(const std::string& requested)
{
    try {
        return find_ofi_provider(ofi_library::load_configured(), requested);
    } catch (const error& e) {
        return {{}, e.what()};
    }
}

transport_choice choose_transport(const std::string& option)
{
    if (option == "tcp") {
        return {};
    }
    if (option == "ofi" || option.rfind("ofi:", 0) == 0) {
        const std::string requested = option == "ofi" ? "" : option.substr(4);
        const auto info = choose_provider(ofi_library::load_configured(), requested);
        return {true, info->fabric_attr->prov_name, {}};
    }
    if (!option.empty()) {
        throw_error(errc::invalid_argument,
                    "unknown transport '" + option + "' (expected tcp, ofi or ofi:<provider>)");
    }
    if (config_file::load_default().tcp_runtime()) {
        return {};
    }
    const auto probe = find_ofi_provider("");
    if (probe) {
        return {true, probe.provider, {}};
    }
    return {false,
            {},
            "dragonx: no libfabric transport (" + probe.problem +
                "); using TCP between nodes. `dragonx config add --tcp-runtime` makes TCP the "
                "choice and silences this notice."};
}

}  // namespace dragonx::rt::detail
