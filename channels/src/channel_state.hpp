// channel_state.hpp - what a channel handle knows about its channel, and the three waits.
//
// Shared by the channel and channel_set implementations. A local handle points into the
// channel's pool block; a remote one only holds the descriptor and the transport.
#pragma once

#include <cstdio>
#include <string>

#include <dragonx/channels/channel.hpp>
#include <dragonx/channels/transport.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/wait.hpp>

#include "layout.hpp"

namespace dragonx::channels::detail {

inline constexpr std::uint8_t descriptor_version = 1;

struct channel_state {
    std::string descriptor;
    std::string block_descriptor;  // the pool block holding the channel
    std::uint64_t id = 0;
    std::uint64_t nonce = 0;
    std::uint32_t node = 0;
    std::uint32_t capacity = 0;
    std::uint32_t block_size = 0;
    bool owner = false;
    wait_policy policy;

    // Local channels:
    pool::pool pool;
    channel_header* header = nullptr;
    std::byte* slots = nullptr;

    // Remote channels: the transport given to attach(), else default_transport() on first use.
    mutable transport* remote = nullptr;

    [[nodiscard]] bool is_local() const noexcept { return header != nullptr; }

    [[nodiscard]] std::string name() const
    {
        char buf[40];
        std::snprintf(buf, sizeof buf, "channel %016llx", static_cast<unsigned long long>(id));
        return buf;
    }

    slot_header* slot(std::uint64_t index) const noexcept
    {
        return reinterpret_cast<slot_header*>(slots + (index % capacity) * header->slot_stride);
    }
    std::byte* payload(slot_header* s) const noexcept
    {
        return reinterpret_cast<std::byte*>(s) + sizeof(slot_header);
    }

    /// Throws errc::not_found once the channel has been destroyed (by any handle).
    void check_alive() const
    {
        if (header->nonce != nonce || header->destroyed.load(std::memory_order_acquire) != 0)
            [[unlikely]] {
            throw_error(errc::not_found, name() + " was destroyed");
        }
    }

    [[nodiscard]] bool has_message() const noexcept
    {
        return header->tail.load(std::memory_order_acquire) !=
               header->head.load(std::memory_order_acquire);
    }
    [[nodiscard]] bool has_room() const noexcept
    {
        return header->tail.load(std::memory_order_acquire) -
                   header->head.load(std::memory_order_acquire) <
               capacity;
    }
    [[nodiscard]] bool is_gone() const noexcept
    {
        return header->destroyed.load(std::memory_order_acquire) != 0;
    }

    // Waits (wait_policy) for the condition, or for the channel to be destroyed; false at the
    // deadline.
    bool wait_for_room(const deadline& until) const
    {
        return wait_until([&] { return has_room() || is_gone(); }, header->send_seq,
                          header->send_sleepers, until, policy);
    }
    bool wait_for_message(const deadline& until) const
    {
        return wait_until([&] { return has_message() || is_gone(); }, header->recv_seq,
                          header->recv_sleepers, until, policy);
    }
    bool wait_for_empty(const deadline& until) const
    {
        // Receivers wake the send side after each message they take.
        return wait_until([&] { return !has_message() || is_gone(); }, header->send_seq,
                          header->send_sleepers, until, policy);
    }

    transport& remote_or_throw() const
    {
        if (remote == nullptr) {
            remote = default_transport();
        }
        if (remote == nullptr) {
            throw_error(errc::no_transport,
                        name() + " lives on node " + std::to_string(node) +
                            ": reaching another node's channel needs the runtime's transport, "
                            "which this process does not have");
        }
        return *remote;
    }
};

}  // namespace dragonx::channels::detail
