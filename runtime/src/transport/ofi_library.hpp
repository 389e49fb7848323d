// ofi_library.hpp - libfabric, loaded at run time with dlopen (never linked), and the choice
// of a provider for the transport agents.
//
// dragonx is compiled against the libfabric headers but never links -lfabric, so that a
// cluster's own libfabric (with its cxi, verbs or efa providers) can be used without a
// rebuild: `dragonx config add --ofi-runtime-lib DIR` names the directory holding it.
//
// Only the few functions libfabric exports are looked up here (fi_getinfo, fi_freeinfo,
// fi_dupinfo, fi_fabric, fi_strerror, fi_version); everything else in <rdma/fi_*.h> is static
// inline and goes through the ops tables of the objects these return, so it works as is.
// Code that includes the libfabric headers must call these through an ofi_library, never the
// exported names directly: a direct call fails to link, which is how mistakes show.
//
// Notes:
// - An ofi_library is immutable after load(); share it (std::shared_ptr) between threads and
//   links freely. Every fabric object must be closed before the last owner lets go. The
//   library itself stays mapped after dlclose (RTLD_NODELETE), for libfabric's threads and
//   memory hooks.
// - Provider choice (choose_provider): an explicit name is taken as asked ("tcp" gives
//   "tcp;ofi_rxm", the RDM layering of the MSG-only tcp provider); so is FI_PROVIDER when set.
//   Otherwise libfabric's own order is followed, skipping providers that are slow, deprecated
//   or intra-node only (sockets, net, udp, ofi_rxd, shm).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct fi_info;
struct fi_fabric_attr;
struct fid_fabric;

namespace dragonx::rt::detail {

/// A loaded libfabric. Thread-safe (immutable).
class ofi_library {
public:
    using getinfo_fn = int (*)(std::uint32_t, const char*, const char*, std::uint64_t,
                               const fi_info*, fi_info**);
    using freeinfo_fn = void (*)(fi_info*);
    using dupinfo_fn = fi_info* (*)(const fi_info*);
    using fabric_fn = int (*)(fi_fabric_attr*, fid_fabric**, void*);
    using strerror_fn = const char* (*)(int);
    using version_fn = std::uint32_t (*)();

    /// The oldest libfabric API this code is written for (1.10).
    static constexpr std::uint32_t min_version = (1u << 16) | 10u;

    /// Loads `dir`/libfabric.so.1 (or `dir`/libfabric.so when there is no .so.1), or
    /// libfabric.so.1 from the dynamic linker's search path when `dir` is empty. Throws
    /// errc::no_transport naming the path and dlerror() when it cannot be loaded, lacks one
    /// of the functions, or is older than min_version.
    [[nodiscard]] static std::shared_ptr<const ofi_library> load(const std::string& dir);
    /// load() of the directory `dragonx config` recorded (config_file::ofi_runtime_lib()).
    [[nodiscard]] static std::shared_ptr<const ofi_library> load_configured();

    ofi_library(const ofi_library&) = delete;
    ofi_library& operator=(const ofi_library&) = delete;
    ~ofi_library();

    /// What was dlopened ("libfabric.so.1" or "DIR/libfabric.so.1"), for messages.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    /// The library's API version (FI_VERSION(major, minor)), and what we ask fi_getinfo for:
    /// the older of it and the headers we were compiled with.
    [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
    [[nodiscard]] std::uint32_t api_version() const noexcept;
    /// "1.17"
    [[nodiscard]] std::string version_string() const;
    /// fi_strerror of a positive or negative libfabric error code.
    [[nodiscard]] std::string error_text(long code) const;

    // The exported functions; see fi_getinfo(3), fi_fabric(3).
    getinfo_fn getinfo = nullptr;
    freeinfo_fn freeinfo = nullptr;
    dupinfo_fn dupinfo = nullptr;
    fabric_fn fabric = nullptr;
    strerror_fn strerror = nullptr;

private:
    ofi_library() = default;

    void* handle_ = nullptr;
    std::string path_;
    std::uint32_t version_ = 0;
};

/// fi_info lists, freed through the library that made them.
struct ofi_info_deleter {
    std::shared_ptr<const ofi_library> library;
    void operator()(fi_info* info) const noexcept;
};
using ofi_info_ptr = std::unique_ptr<fi_info, ofi_info_deleter>;

/// The fi_info of the provider the transport agents would use, with the hints they need
/// (FI_EP_RDM, FI_TAGGED, FI_CONTEXT mode, no local memory registration).
/// - `requested`: "" for automatic (see the Notes), else a provider name ("tcp", "verbs",
///   "tcp;ofi_rxm", "cxi").
/// - `bind_address`: the IP address this node's peers reach it by, or "" (or "0.0.0.0") for
///   the provider's default interface. A provider that knows no such address (not IP-based,
///   such as cxi) is asked again without it.
/// Throws errc::no_transport when no usable provider is found, naming what was asked and why.
[[nodiscard]] ofi_info_ptr choose_provider(std::shared_ptr<const ofi_library> library,
                                           const std::string& requested,
                                           const std::string& bind_address = {});

/// The answer of find_ofi_provider(): a provider name ("tcp;ofi_rxm"), or why there is none.
struct ofi_provider_probe {
    std::string provider;
    std::string problem;
    [[nodiscard]] explicit operator bool() const noexcept { return !provider.empty(); }
};

/// Whether libfabric (as configured by `dragonx config`) offers a provider the transport agent
/// can use; the runtime uses TCP when it does not. `requested` as for choose_provider().
/// Never throws for a missing or unusable libfabric: that is the answer's `problem`.
[[nodiscard]] ofi_provider_probe find_ofi_provider(const std::string& requested);
/// The same with a library already loaded.
[[nodiscard]] ofi_provider_probe find_ofi_provider(std::shared_ptr<const ofi_library> library,
                                                   const std::string& requested);

/// What a run's agents use between nodes, from -t/--transport and `dragonx config`.
struct transport_choice {
    bool ofi = false;      // false: TCP
    std::string provider;  // for ofi: the provider found ("tcp;ofi_rxm"), for make_ofi_link
    std::string notice;    // a line to print when falling back to TCP unasked, else ""
};

/// Decides the transport. `option` is the value of -t/--transport: "" (automatic), "tcp",
/// "ofi" or "ofi:<provider>".
/// - "tcp", or "" with tcp_runtime=true in the configuration: TCP, no notice.
/// - "ofi", "ofi:<provider>": libfabric; throws errc::no_transport, naming why, when it has
///   no usable provider (asked for explicitly: no fallback).
/// - "": libfabric where find_ofi_provider() finds a provider, else TCP with a notice that
///   says why and how to silence it.
[[nodiscard]] transport_choice choose_transport(const std::string& option);

}  // namespace dragonx::rt::detail
