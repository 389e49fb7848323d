// transport.cpp - the default transport: a provider installed by the runtime library.
#include <dragonx/channels/transport.hpp>

#include <atomic>

namespace dragonx::channels {

namespace {
std::atomic<transport_provider> installed_provider{nullptr};
}

void set_default_transport_provider(transport_provider provider) noexcept
{
    installed_provider.store(provider, std::memory_order_release);
}

transport* default_transport() noexcept
{
    const auto provider = installed_provider.load(std::memory_order_acquire);
    return provider != nullptr ? provider() : nullptr;
}

}  // namespace dragonx::channels
