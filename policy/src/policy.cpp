// policy.cpp - policy merge, validation, text form and wire codec.
#include <dragonx/policy/policy.hpp>

#include <string>

#include <dragonx/common/error.hpp>

namespace dragonx {

namespace {

// Bits of the field mask on the wire, one per optional field, in declaration order.
constexpr std::uint8_t bit_placement = 1U << 0U;
constexpr std::uint8_t bit_host_name = 1U << 1U;
constexpr std::uint8_t bit_host_id = 1U << 2U;
constexpr std::uint8_t bit_distribution = 1U << 3U;
constexpr std::uint8_t bit_cpu_affinity = 1U << 4U;
constexpr std::uint8_t bit_gpu_affinity = 1U << 5U;
constexpr std::uint8_t all_bits = (1U << 6U) - 1U;

template <class T>
void take_if_set(std::optional<T>& into, const std::optional<T>& from)
{
    if (from) {
        into = from;
    }
}

void check_ids(const std::optional<std::vector<int>>& ids, const char* field)
{
    if (!ids) {
        return;
    }
    for (int id : *ids) {
        if (id < 0) {
            throw_error(errc::invalid_argument, std::string("policy: ") + field +
                                                    " holds the negative id " +
                                                    std::to_string(id));
        }
    }
}

std::string join(const std::vector<int>& ids)
{
    std::string s = "[";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i != 0) {
            s += ',';
        }
        s += std::to_string(ids[i]);
    }
    return s + "]";
}

}  // namespace

policy merge(const policy& low, const policy& high)
{
    policy out = low;
    take_if_set(out.placement_kind, high.placement_kind);
    take_if_set(out.host_name, high.host_name);
    take_if_set(out.host_id, high.host_id);
    take_if_set(out.distribution_kind, high.distribution_kind);
    take_if_set(out.cpu_affinity, high.cpu_affinity);
    take_if_set(out.gpu_affinity, high.gpu_affinity);
    return out;
}

policy global_policy()
{
    policy p;
    p.placement_kind = placement::anywhere;
    p.distribution_kind = distribution::roundrobin;
    return p;
}

void validate(const policy& p)
{
    if (p.placement_kind == placement::host_name && (!p.host_name || p.host_name->empty())) {
        throw_error(errc::invalid_argument,
                    "policy: placement host_name needs a host_name, and none is set");
    }
    if (p.placement_kind == placement::host_id && !p.host_id) {
        throw_error(errc::invalid_argument,
                    "policy: placement host_id needs a host_id, and none is set");
    }
    check_ids(p.cpu_affinity, "cpu_affinity");
    check_ids(p.gpu_affinity, "gpu_affinity");
}

std::string_view to_string(placement p) noexcept
{
    switch (p) {
    case placement::local:
        return "local";
    case placement::anywhere:
        return "anywhere";
    case placement::host_name:
        return "host_name";
    case placement::host_id:
        return "host_id";
    }
    return "invalid";
}

std::string_view to_string(distribution d) noexcept
{
    switch (d) {
    case distribution::roundrobin:
        return "roundrobin";
    case distribution::block:
        return "block";
    }
    return "invalid";
}

std::string to_string(const policy& p)
{
    std::string s = "policy{";
    bool first = true;
    auto field = [&](std::string_view name, const std::string& value) {
        if (!first) {
            s += ", ";
        }
        first = false;
        s += name;
        s += '=';
        s += value;
    };
    if (p.placement_kind) {
        field("placement", std::string(to_string(*p.placement_kind)));
    }
    if (p.host_name) {
        field("host_name", *p.host_name);
    }
    if (p.host_id) {
        field("host_id", std::to_string(*p.host_id));
    }
    if (p.distribution_kind) {
        field("distribution", std::string(to_string(*p.distribution_kind)));
    }
    if (p.cpu_affinity) {
        field("cpu_affinity", join(*p.cpu_affinity));
    }
    if (p.gpu_affinity) {
        field("gpu_affinity", join(*p.gpu_affinity));
    }
    return s + "}";
}

void codec<policy>::encode(const policy& p, encoder& out)
{
    unsigned mask = 0;
    mask |= p.placement_kind ? bit_placement : 0U;
    mask |= p.host_name ? bit_host_name : 0U;
    mask |= p.host_id ? bit_host_id : 0U;
    mask |= p.distribution_kind ? bit_distribution : 0U;
    mask |= p.cpu_affinity ? bit_cpu_affinity : 0U;
    mask |= p.gpu_affinity ? bit_gpu_affinity : 0U;
    out.value(static_cast<std::uint8_t>(mask));
    if (p.placement_kind) {
        out.value(static_cast<std::uint8_t>(*p.placement_kind));
    }
    if (p.host_name) {
        codec<std::string>::encode(*p.host_name, out);
    }
    if (p.host_id) {
        out.value(*p.host_id);
    }
    if (p.distribution_kind) {
        out.value(static_cast<std::uint8_t>(*p.distribution_kind));
    }
    if (p.cpu_affinity) {
        codec<std::vector<int>>::encode(*p.cpu_affinity, out);
    }
    if (p.gpu_affinity) {
        codec<std::vector<int>>::encode(*p.gpu_affinity, out);
    }
}

policy codec<policy>::decode(decoder& in)
{
    const unsigned mask = in.value<std::uint8_t>();
    if ((mask & ~unsigned{all_bits}) != 0) {
        in.fail("policy: unknown field bits " + std::to_string(mask & ~unsigned{all_bits}) +
                " in the field mask");
    }
    policy p;
    if ((mask & bit_placement) != 0) {
        const auto v = in.value<std::uint8_t>();
        if (v > static_cast<std::uint8_t>(placement::host_id)) {
            in.fail("policy: placement " + std::to_string(v) + " is out of range");
        }
        p.placement_kind = static_cast<placement>(v);
    }
    if ((mask & bit_host_name) != 0) {
        p.host_name = in.string();
    }
    if ((mask & bit_host_id) != 0) {
        p.host_id = in.value<std::uint32_t>();
    }
    if ((mask & bit_distribution) != 0) {
        const auto v = in.value<std::uint8_t>();
        if (v > static_cast<std::uint8_t>(distribution::block)) {
            in.fail("policy: distribution " + std::to_string(v) + " is out of range");
        }
        p.distribution_kind = static_cast<distribution>(v);
    }
    if ((mask & bit_cpu_affinity) != 0) {
        p.cpu_affinity = codec<std::vector<int>>::decode(in);
    }
    if ((mask & bit_gpu_affinity) != 0) {
        p.gpu_affinity = codec<std::vector<int>>::decode(in);
    }
    return p;
}

}  // namespace dragonx
