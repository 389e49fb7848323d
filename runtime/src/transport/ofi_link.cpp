// ofi_link.cpp - peer_link over a libfabric RDM endpoint (tagged messages), driven by Asio.
//
// Wire protocol (one endpoint per agent):
// - Every frame starts with a frame_header: magic, sender node, run token, generation,
//   sequence, payload length, payload tag. Host byte order: the nodes of a run share an
//   architecture.
// - Small frames (payload <= eager_payload) go as one message, header and payload, with the
//   fixed eager_tag, into a ring of receive buffers kept posted (eager_slot); on_frame reads
//   the payload where it landed. Small frames queued together for one node (while the link
//   is corked, or while the provider refuses sends) share one message, back to back, up to
//   the size of an eager buffer: one send, one receive and one completion for a result and
//   the request that follows it.
// - Large frames: the header goes alone, eagerly, announcing the length and a tag used by
//   this frame only; the payload follows as a second message with that tag, and lands in a
//   buffer allocated for exactly that size by a receive posted when the header arrives (rxm
//   moves it by rendezvous: no copy on either side besides the one send() makes).
// - Order: frames from one sender to one destination carry consecutive sequence numbers; the
//   receiver delivers in that order and holds frames that arrive early (an eager frame behind
//   a large one whose payload is still arriving). Nothing here relies on provider ordering.
// - Generations: when a sender gives up on a destination (on_lost), it drops what it queued
//   for it and starts a new generation at sequence 0. A receiver that sees a newer generation
//   drops what it held of the older one; frames of an older generation are dropped. A link
//   also draws a random incarnation number: a sender that restarted (sequence 0 again) is
//   heard afresh.
//
// Progress: the completion queue has an FI_WAIT_FD wait object, watched by an Asio
// stream_descriptor. After draining the queue, fi_trywait() says whether it is safe to sleep
// on the fd; if not, progress runs again from a posted handler. (Checked with tcp;ofi_rxm:
// the fd wakes for eager messages, rendezvous and connection requests.)
// With owner_polls, the owner calls poll() while busy, and the fd is armed only in
// prepare_to_sleep(): a provider writes its wake-up signal only when the signal is clear, and
// fi_trywait() clears it, so polling without trywait saves a write, a read and an epoll_ctl
// per completion (measured with tcp;ofi_rxm: 14 system calls per forwarded frame instead of 21).
// Sends the provider refuses for now (-FI_EAGAIN: connection being set up, queue full) are
// retried from the event loop, first at once, then every 100 us, which busy-polls only while
// sends are blocked.
#include "transport/ofi_link.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstring>  // before the libfabric headers: they use strdup without including it
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <dragonx/common/encoding.hpp>
#include <dragonx/common/error.hpp>
#include <dragonx/common/log.hpp>

namespace dragonx::rt::detail {
namespace {

using clock = std::chrono::steady_clock;

constexpr std::uint32_t frame_magic = 0x46'4f'58'44;  // "DXOF", version 1
constexpr std::uint64_t eager_tag = 1;
constexpr std::size_t token_bytes = 16;
/// Bytes of one eager receive buffer: one frame header and its payload.
constexpr std::size_t eager_slot_bytes = 16u << 10;
constexpr std::size_t max_ring_slots = 256;
/// Retries of a blocked send run from posted handlers this many times, then from a timer.
constexpr int immediate_retries = 64;
constexpr auto retry_interval = std::chrono::microseconds(100);
constexpr auto poll_interval = std::chrono::milliseconds(1);
/// How long close() waits for the sends already posted.
constexpr auto close_flush = std::chrono::milliseconds(500);
/// Dropped-frame warnings: the first few, then one in this many.
constexpr std::uint64_t drop_warning_every = 1000;

spdlog::logger& logger()
{
    return log::get("transport");
}

struct frame_header {
    std::uint32_t magic;
    std::uint32_t from;  // the sender's node
    std::array<std::uint8_t, token_bytes> token;
    std::uint32_t generation;
    std::uint32_t incarnation;  // random, per link: tells a restarted sender from the old one
    std::uint64_t sequence;
    std::uint64_t length;       // payload bytes
    std::uint64_t payload_tag;  // 0: the payload follows the header in this message
};
static_assert(std::is_trivially_copyable_v<frame_header>);
static_assert(sizeof(frame_header) == 56);

constexpr std::size_t header_bytes = sizeof(frame_header);
constexpr std::size_t eager_payload = eager_slot_bytes - header_bytes;

/// What a completion is for.
enum class op_kind : std::uint8_t { eager_recv, large_recv, send };

/// The context of one posted operation: libfabric hands its address back in the completion.
/// In FI_CONTEXT(2) mode the provider owns the fi_context2 while the operation is
/// outstanding, so the object holding it must stay put until the completion is read.
struct op_context {
    fi_context2 fi{};
    op_kind kind{};
    void* owner = nullptr;
};
static_assert(std::is_standard_layout_v<op_context> && offsetof(op_context, fi) == 0);

/// One buffer of the eager receive ring.
struct eager_slot {
    op_context op;
    std::unique_ptr<std::byte[]> buffer =
        std::make_unique_for_overwrite<std::byte[]>(eager_slot_bytes);
};

/// A receive for the payload of one large frame.
struct large_recv {
    op_context op;
    std::uint32_t from = 0;
    std::uint32_t generation = 0;
    std::uint64_t sequence = 0;
    std::uint64_t tag = 0;
    std::size_t size = 0;
    std::unique_ptr<std::byte[]> buffer;
    bool posted = false;
    /// Its frame was dropped (a newer generation came): discard the payload when it lands.
    bool orphaned = false;
};

/// A frame being sent: header and payload in one buffer. The header (with the payload when
/// small) is one message, the payload of a large frame a second one. Small frames queued
/// behind a small one may be merged into its message (ofi_link::coalesce).
struct out_frame {
    op_context header_op;
    op_context payload_op;
    std::uint32_t node = 0;
    std::uint32_t generation = 0;
    bool large = false;
    bool header_posted = false;
    bool payload_posted = false;
    int outstanding = 0;  // posted messages not yet completed
    std::size_t payload = 0;      // bytes after the header (a large frame's second message)
    std::size_t eager_bytes = 0;  // the first message's bytes, from the start of `bytes`
    std::unique_ptr<std::byte[]> bytes;

    [[nodiscard]] bool fully_posted() const noexcept
    {
        return header_posted && (!large || payload_posted);
    }
};

/// A frame received ahead of its turn.
struct held_frame {
    std::unique_ptr<std::byte[]> bytes;
    std::size_t size = 0;
    large_recv* arriving = nullptr;  // set while the payload is still arriving
    bool failed = false;             // the payload never arrived: skip it
};

/// What a node has sent us.
struct inbound {
    bool started = false;
    std::uint32_t incarnation = 0;
    std::uint32_t generation = 0;
    std::uint64_t next_sequence = 0;
    std::map<std::uint64_t, held_frame> held;
};

/// A node we send to.
struct peer {
    std::string address;                           // hex, as published
    fi_addr_t addr = FI_ADDR_NOTAVAIL;             // in our address vector
    std::deque<std::unique_ptr<out_frame>> queue;  // not yet fully posted, in order
    std::uint32_t generation = 0;
    std::uint64_t next_sequence = 0;
    bool blocked = false;             // the head of the queue got -FI_EAGAIN
    clock::time_point last_progress;  // of the blocked queue: a post or a send completion
};

/// True if generation a comes after b (modulo 2^32).
bool newer(std::uint32_t a, std::uint32_t b)
{
    return static_cast<std::int32_t>(a - b) > 0;
}

bool same_token(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b)
{
    std::uint8_t diff = 0;
    for (std::size_t i = 0; i < token_bytes; ++i) {
        diff |= static_cast<std::uint8_t>(a[i] ^ b[i]);
    }
    return diff == 0;
}

const char* fid_class_name(const fid& f)
{
    switch (f.fclass) {
    case FI_CLASS_FABRIC:
        return "fabric";
    case FI_CLASS_DOMAIN:
        return "domain";
    case FI_CLASS_CQ:
        return "completion queue";
    case FI_CLASS_AV:
        return "address vector";
    case FI_CLASS_EP:
        return "endpoint";
    default:
        return "libfabric object";
    }
}

template <class T> struct fid_closer {
    void operator()(T* object) const noexcept
    {
        if (const int r = fi_close(&object->fid); r != 0) {
            // EBUSY: operations were still in flight (close() gave up waiting); the provider
            // keeps the object, nothing else breaks.
            logger().warn("libfabric: fi_close of a {} failed: error {}",
                          fid_class_name(object->fid), -r);
        }
    }
};
/// Owns a libfabric object: fi_close in the destructor.
template <class T> using fid_ptr = std::unique_ptr<T, fid_closer<T>>;

/// A stream_descriptor over an fd someone else owns (libfabric's wait fd): released, never
/// closed.
class borrowed_descriptor {
public:
    explicit borrowed_descriptor(asio::io_context& io) : descriptor_(io) {}
    borrowed_descriptor(const borrowed_descriptor&) = delete;
    borrowed_descriptor& operator=(const borrowed_descriptor&) = delete;
    ~borrowed_descriptor() { reset(); }

    void assign(int fd) { descriptor_.assign(fd); }
    asio::posix::stream_descriptor& get() noexcept { return descriptor_; }
    void reset() noexcept
    {
        if (descriptor_.is_open()) {
            std::error_code ignored;
            descriptor_.cancel(ignored);
            (void)descriptor_.release();
        }
    }

private:
    asio::posix::stream_descriptor descriptor_;
};

class ofi_link final : public peer_link {
public:
    ofi_link(asio::io_context& io, const run_secret& secret, std::uint32_t my_node,
             ofi_link_options options);
    ofi_link(const ofi_link&) = delete;
    ofi_link& operator=(const ofi_link&) = delete;
    ~ofi_link() override { close(); }

    [[nodiscard]] std::string name() const override { return "ofi:" + provider_; }
    [[nodiscard]] std::string address() const override { return address_; }
    void start(handlers h) override;
    void set_peers(std::vector<std::string> addresses) override;
    void send(std::uint32_t node, std::span<const std::span<const std::byte>> parts) override;
    void cork() override { corked_ = true; }
    void uncork() override;
    void close() override;
    bool poll() override;
    bool prepare_to_sleep() override;

private:
    // Setup.
    void open_endpoint(const run_secret& secret);
    // Progress.
    bool arm_wait();
    void progress();
    bool progress_once();
    void kick();
    std::size_t drain_completions();
    void on_completion(const fi_cq_tagged_entry& entry);
    void on_error(const fi_cq_err_entry& err);
    // Receiving.
    void post_eager(eager_slot& slot);
    void post_large(large_recv& r);
    void post_waiting_receives();
    void on_eager(eager_slot& slot, std::size_t length);
    void accept(const frame_header& h, std::span<const std::byte> payload);
    void start_large(const frame_header& h, bool wanted);
    void on_large(large_recv& r, bool ok, const std::string& why);
    void restart_inbound(inbound& in, const frame_header& h);
    void flush(std::uint32_t node);
    void deliver(std::uint32_t node, std::span<const std::byte> frame);
    void drop(const std::string& why);
    // Sending.
    void pump(std::uint32_t node);
    void coalesce(peer& p);
    void pump_blocked();
    void schedule_retry();
    void on_sent(out_frame& f, bool ok, const std::string& why);
    void lose(std::uint32_t node, const std::string& why);
    void report_lost(std::uint32_t node, std::string why);
    [[nodiscard]] std::uint64_t next_large_tag();

    template <class F> auto guarded(F f)
    {
        return [alive = std::weak_ptr<bool>(alive_), f = std::move(f)](auto&&... args) mutable {
            if (!alive.expired()) {
                f(std::forward<decltype(args)>(args)...);
            }
        };
    }

    asio::io_context& io_;
    const std::uint32_t my_node_;
    ofi_link_options options_;
    std::shared_ptr<const ofi_library> library_;
    std::array<std::uint8_t, token_bytes> token_{};
    std::uint64_t tag_mix_ = 0;     // a secret-derived value xored into large-frame tags
    std::uint64_t large_flag_ = 0;  // the highest tag bit the provider offers
    std::uint32_t large_counter_ = 0;
    std::uint32_t incarnation_ = 0;  // random: see frame_header
    std::string provider_;
    std::string address_;
    handlers handlers_;
    bool started_ = false;
    bool closing_ = false;  // close() is flushing sends: no more handlers
    bool closed_ = false;   // the fabric objects are closed
    bool corked_ = false;   // cork(): frames queue, unposted, until uncork()
    std::vector<std::uint32_t> corked_nodes_;  // nodes given frames while corked
    std::uint64_t dropped_ = 0;

    // Buffers the provider may be writing: declared before the fabric objects, so that they
    // outlive the endpoint even when close() was not called.
    std::vector<std::unique_ptr<eager_slot>> ring_;
    std::vector<eager_slot*> eager_waiting_;  // ring slots to post again (-FI_EAGAIN)
    std::unordered_map<const large_recv*, std::unique_ptr<large_recv>> large_recvs_;
    std::vector<large_recv*> large_waiting_;  // not posted yet (-FI_EAGAIN)
    std::unordered_map<const out_frame*, std::unique_ptr<out_frame>> in_flight_;
    std::unordered_map<std::uint32_t, inbound> inbound_;
    std::deque<peer> peers_;              // by node (a deque: peers do not move when it grows)
    std::vector<std::uint32_t> blocked_;  // nodes whose queue head got -FI_EAGAIN

    // Closed in reverse order: endpoint, address vector, completion queue, domain, fabric.
    ofi_info_ptr info_;
    fid_ptr<fid_fabric> fabric_;
    fid_ptr<fid_domain> domain_;
    fid_ptr<fid_cq> cq_;
    fid_ptr<fid_av> av_;
    fid_ptr<fid_ep> ep_;
    int wait_fd_ = -1;

    borrowed_descriptor wait_;
    asio::steady_timer poll_timer_;
    asio::steady_timer retry_timer_;
    bool waiting_ = false;  // an async_wait or poll timer is pending
    bool retry_scheduled_ = false;
    bool kick_scheduled_ = false;
    int retries_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

ofi_link::ofi_link(asio::io_context& io, const run_secret& secret, std::uint32_t my_node,
                   ofi_link_options options)
    : io_(io), my_node_(my_node), options_(std::move(options)), wait_(io), poll_timer_(io),
      retry_timer_(io)
{
    library_ = options_.library ? options_.library : ofi_library::load_configured();
    open_endpoint(secret);
}

void ofi_link::open_endpoint(const run_secret& secret)
{
    const ofi_library& lib = *library_;
    info_ = choose_provider(library_, options_.provider, options_.bind_address);
    provider_ = info_->fabric_attr->prov_name;
    const auto check = [&](long r, const char* what) {
        if (r != 0) {
            throw_error(errc::no_transport, std::string("libfabric ") + what + " (" + provider_ +
                                                "): " + lib.error_text(r));
        }
    };
    if (info_->ep_attr->max_msg_size < max_link_frame) {
        throw_error(errc::no_transport, "libfabric provider " + provider_ + " sends at most " +
                                            std::to_string(info_->ep_attr->max_msg_size) +
                                            " bytes per message; dragonx needs " +
                                            std::to_string(max_link_frame));
    }
    // Tags: eager frames use eager_tag; large payloads set the highest tag bit the provider
    // offers, above (node << 32 | counter) xored with a secret-derived value (so that another
    // run's payloads do not match our receives).
    const std::uint64_t format = info_->ep_attr->mem_tag_format;
    const int tag_bits = format == 0 ? 64 : 64 - std::countl_zero(format);
    if (tag_bits < 40 || (tag_bits < 64 && my_node_ >= (1ull << (tag_bits - 33)))) {
        throw_error(errc::no_transport, "libfabric provider " + provider_ + " offers " +
                                            std::to_string(tag_bits) + "-bit tags: too few for " +
                                            "node " + std::to_string(my_node_));
    }
    large_flag_ = 1ull << (tag_bits - 1);

    const std::string_view label = "dragonx-ofi-run-token";
    const auto proof =
        prove(secret, auth_role::connector,
              std::span(reinterpret_cast<const std::uint8_t*>(label.data()), label.size()));
    std::memcpy(token_.data(), proof.data(), token_bytes);
    std::memcpy(&tag_mix_, proof.data() + token_bytes, sizeof(tag_mix_));
    tag_mix_ &= large_flag_ - 1;
    const auto random = make_challenge();
    std::memcpy(&incarnation_, random.data(), sizeof(incarnation_));

    fid_fabric* fabric = nullptr;
    check(lib.fabric(info_->fabric_attr, &fabric, nullptr), "fi_fabric");
    fabric_.reset(fabric);
    fid_domain* domain = nullptr;
    check(fi_domain(fabric_.get(), info_.get(), &domain, nullptr), "fi_domain");
    domain_.reset(domain);

    const std::size_t ring = std::clamp<std::size_t>(info_->rx_attr->size / 2, 16, max_ring_slots);
    fi_cq_attr cq_attr{};
    cq_attr.format = FI_CQ_FORMAT_TAGGED;
    cq_attr.size = std::max<std::size_t>(4096, info_->tx_attr->size + info_->rx_attr->size);
    fid_cq* cq = nullptr;
    if (options_.use_wait_fd) {
        cq_attr.wait_obj = FI_WAIT_FD;
        if (const int r = fi_cq_open(domain_.get(), &cq_attr, &cq, nullptr); r != 0) {
            logger().info("libfabric provider {} has no completion queue with a wait fd ({}): "
                          "polling every {} ms",
                          provider_, lib.error_text(r), poll_interval.count());
            options_.use_wait_fd = false;
        }
    }
    if (!options_.use_wait_fd) {
        cq_attr.wait_obj = FI_WAIT_NONE;
        check(fi_cq_open(domain_.get(), &cq_attr, &cq, nullptr), "fi_cq_open");
    }
    cq_.reset(cq);
    if (options_.use_wait_fd) {
        check(fi_control(&cq_->fid, FI_GETWAIT, &wait_fd_), "fi_control(FI_GETWAIT)");
    }

    fi_av_attr av_attr{};
    av_attr.type = FI_AV_TABLE;
    fid_av* av = nullptr;
    check(fi_av_open(domain_.get(), &av_attr, &av, nullptr), "fi_av_open");
    av_.reset(av);

    fid_ep* ep = nullptr;
    check(fi_endpoint(domain_.get(), info_.get(), &ep, nullptr), "fi_endpoint");
    ep_.reset(ep);
    check(fi_ep_bind(ep_.get(), &cq_->fid, FI_TRANSMIT | FI_RECV), "fi_ep_bind(cq)");
    check(fi_ep_bind(ep_.get(), &av_->fid, 0), "fi_ep_bind(av)");
    check(fi_enable(ep_.get()), "fi_enable");

    std::vector<std::byte> name(256);
    std::size_t length = name.size();
    long r = fi_getname(&ep_->fid, name.data(), &length);
    if (r == -FI_ETOOSMALL) {
        name.resize(length);
        r = fi_getname(&ep_->fid, name.data(), &length);
    }
    check(r, "fi_getname");
    name.resize(length);
    address_ = hex_encode(name);

    ring_.reserve(ring);
    for (std::size_t i = 0; i < ring; ++i) {
        ring_.push_back(std::make_unique<eager_slot>());
        ring_.back()->op.kind = op_kind::eager_recv;
        ring_.back()->op.owner = ring_.back().get();
    }
    logger().debug("ofi link of node {}: provider {}, fabric {}, domain {}, {} eager buffers",
                   my_node_, provider_, info_->fabric_attr->name, info_->domain_attr->name, ring);
}

void ofi_link::start(handlers h)
{
    if (started_ || closed_) {
        throw_error(errc::invalid_argument, "ofi link: start() is called once, before close()");
    }
    started_ = true;
    handlers_ = std::move(h);
    for (auto& slot : ring_) {
        post_eager(*slot);
    }
    if (options_.use_wait_fd) {
        wait_.assign(wait_fd_);
    }
    if (!options_.owner_polls) {
        progress();
    }
}

void ofi_link::set_peers(std::vector<std::string> addresses)
{
    if (closed_) {
        return;
    }
    if (peers_.size() < addresses.size()) {
        peers_.resize(addresses.size());
    }
    for (std::uint32_t node = 0; node < addresses.size(); ++node) {
        peer& p = peers_[node];
        if (addresses[node].empty() || addresses[node] == p.address) {
            continue;
        }
        if (p.addr != FI_ADDR_NOTAVAIL) {
            (void)fi_av_remove(av_.get(), &p.addr, 1, 0);
            p.addr = FI_ADDR_NOTAVAIL;
        }
        p.address = std::move(addresses[node]);
        const auto raw = hex_decode(p.address);
        fi_addr_t addr = FI_ADDR_NOTAVAIL;
        const int n = raw ? fi_av_insert(av_.get(), raw->data(), 1, &addr, 0, nullptr) : 0;
        if (n != 1) {
            logger().error("ofi link: cannot use the address '{}' of node {}: {}", p.address, node,
                           raw ? library_->error_text(n) : std::string("not hexadecimal"));
            continue;
        }
        p.addr = addr;
    }
}

void ofi_link::send(std::uint32_t node, std::span<const std::span<const std::byte>> parts)
{
    std::size_t total = 0;
    for (const auto& part : parts) {
        total += part.size();
    }
    if (total > max_link_frame) {
        throw_error(errc::message_too_large, "ofi link: a frame of " + std::to_string(total) +
                                                 " bytes is over the limit of " +
                                                 std::to_string(max_link_frame));
    }
    if (closed_ || closing_) {
        return;
    }
    if (node >= peers_.size() || peers_[node].addr == FI_ADDR_NOTAVAIL) {
        report_lost(node, "no usable address for node " + std::to_string(node));
        return;
    }
    peer& p = peers_[node];
    auto f = std::make_unique<out_frame>();
    f->header_op = {.kind = op_kind::send, .owner = f.get()};
    f->payload_op = {.kind = op_kind::send, .owner = f.get()};
    f->node = node;
    f->generation = p.generation;
    f->large = total > eager_payload;
    f->payload = total;
    f->eager_bytes = header_bytes + (f->large ? 0 : total);
    f->bytes = std::make_unique_for_overwrite<std::byte[]>(header_bytes + total);
    frame_header h{};
    h.magic = frame_magic;
    h.from = my_node_;
    h.token = token_;
    h.generation = p.generation;
    h.incarnation = incarnation_;
    h.sequence = p.next_sequence++;
    h.length = total;
    h.payload_tag = f->large ? next_large_tag() : 0;
    std::memcpy(f->bytes.get(), &h, header_bytes);
    std::byte* out = f->bytes.get() + header_bytes;
    for (const auto& part : parts) {
        if (!part.empty()) {
            std::memcpy(out, part.data(), part.size());
            out += part.size();
        }
    }
    p.queue.push_back(std::move(f));
    if (p.queue.size() != 1) {
        return;  // pump() or uncork() posts it after those before it
    }
    if (corked_) {
        corked_nodes_.push_back(node);
    } else {
        pump(node);
    }
}

void ofi_link::uncork()
{
    corked_ = false;
    for (auto nodes = std::exchange(corked_nodes_, {}); const std::uint32_t node : nodes) {
        if (!closed_ && !peers_[node].blocked) {
            pump(node);
        }
    }
}

void ofi_link::close()
{
    if (closed_ || closing_) {
        return;
    }
    // Let the sends already posted finish (a last frame before shutdown should arrive; rxm
    // also keeps rendezvous buffers registered until their send completes), without calling
    // any handler, for at most close_flush.
    closing_ = true;
    const auto until = clock::now() + close_flush;
    while (!in_flight_.empty() && clock::now() < until) {
        drain_completions();
        if (!in_flight_.empty()) {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }
    if (!in_flight_.empty()) {
        logger().info("ofi link of node {}: closing with {} frames still being sent", my_node_,
                      in_flight_.size());
    }
    closed_ = true;
    poll_timer_.cancel();
    retry_timer_.cancel();
    wait_.reset();  // before the completion queue that owns the fd
    // The endpoint goes first and takes its outstanding operations with it; the buffers they
    // used are freed with this object, not here: a handler may be reading one.
    ep_.reset();
    av_.reset();
    cq_.reset();
    domain_.reset();
    fabric_.reset();
    for (peer& p : peers_) {
        p.queue.clear();
    }
}

// --- Progress -------------------------------------------------------------------------------

bool ofi_link::poll()
{
    return progress_once();
}

bool ofi_link::prepare_to_sleep()
{
    return !options_.owner_polls || arm_wait();
}

// Arms the wake-up for the link's next event: the wait fd once fi_trywait() allows it, or the
// poll timer. False when completions are pending (fi_trywait said so): progress first.
bool ofi_link::arm_wait()
{
    if (closed_) {
        return true;
    }
    if (!options_.use_wait_fd) {
        if (!waiting_) {
            waiting_ = true;
            poll_timer_.expires_after(poll_interval);
            poll_timer_.async_wait(guarded([this](const std::error_code& ec) {
                waiting_ = false;
                if (!ec) {
                    progress();
                }
            }));
        }
        return true;
    }
    if (waiting_ && !options_.owner_polls) {
        return true;  // an event-driven link re-arms only from its handler
    }
    fid* fids[] = {&cq_->fid};
    const int r = fi_trywait(fabric_.get(), fids, 1);
    if (r == -FI_EAGAIN) {
        return false;
    }
    if (r != 0) {
        logger().error("ofi link: fi_trywait failed ({}); polling instead",
                       library_->error_text(r));
        options_.use_wait_fd = false;
        wait_.reset();
        waiting_ = false;
        return arm_wait();
    }
    if (!waiting_) {
        waiting_ = true;
        wait_.get().async_wait(asio::posix::stream_descriptor::wait_read,
                               guarded([this](const std::error_code& ec) {
                                   waiting_ = false;
                                   if (!ec) {
                                       progress();
                                   }
                               }));
    }
    return true;
}

// From a wake-up. An event-driven link re-arms its wait here; with owner_polls the owner does,
// in prepare_to_sleep(), once it is idle again.
void ofi_link::progress()
{
    progress_once();
    if (!options_.owner_polls && !arm_wait()) {
        asio::post(io_, guarded([this] { progress(); }));
    }
}

// True if anything happened: a completion, or a blocked send posted.
bool ofi_link::progress_once()
{
    if (closed_) {
        return false;
    }
    const std::size_t blocked = blocked_.size();
    const std::size_t completions = drain_completions();
    pump_blocked();
    post_waiting_receives();
    return completions > 0 || blocked_.size() != blocked;
}

// Reads the completion queue until a read finds less than a full batch (a further read would
// find at most what the provider makes of it meanwhile); how many completions it handled.
std::size_t ofi_link::drain_completions()
{
    std::array<fi_cq_tagged_entry, 32> entries;
    std::size_t handled = 0;
    while (!closed_) {
        const ssize_t n = fi_cq_read(cq_.get(), entries.data(), entries.size());
        if (n == -FI_EAGAIN) {
            break;
        }
        if (n == -FI_EAVAIL) {
            fi_cq_err_entry err{};
            if (fi_cq_readerr(cq_.get(), &err, 0) == 1) {
                ++handled;
                on_error(err);
            }
            continue;
        }
        if (n < 0) {
            logger().error("ofi link: fi_cq_read failed: {}", library_->error_text(n));
            break;
        }
        handled += static_cast<std::size_t>(n);
        for (ssize_t i = 0; i < n && !closed_; ++i) {
            on_completion(entries[static_cast<std::size_t>(i)]);
        }
        if (static_cast<std::size_t>(n) < entries.size()) {
            break;  // drained for now: another read would only run the provider's progress again
        }
    }
    return handled;
}

void ofi_link::on_completion(const fi_cq_tagged_entry& entry)
{
    auto* op = static_cast<op_context*>(entry.op_context);
    if (op == nullptr) {
        return;
    }
    switch (op->kind) {
    case op_kind::eager_recv: {
        auto& slot = *static_cast<eager_slot*>(op->owner);
        on_eager(slot, entry.len);
        if (!closed_) {
            post_eager(slot);
        }
        break;
    }
    case op_kind::large_recv: {
        auto& r = *static_cast<large_recv*>(op->owner);
        const bool whole = entry.len == r.size;
        on_large(r, whole, whole ? std::string() : "got " + std::to_string(entry.len) + " bytes");
        break;
    }
    case op_kind::send:
        on_sent(*static_cast<out_frame*>(op->owner), true, {});
        break;
    }
}

void ofi_link::on_error(const fi_cq_err_entry& err)
{
    auto* op = static_cast<op_context*>(err.op_context);
    const std::string why = library_->error_text(err.err);
    if (op == nullptr) {
        logger().error("ofi link: provider error without an operation: {}", why);
        return;
    }
    switch (op->kind) {
    case op_kind::eager_recv: {
        auto& slot = *static_cast<eager_slot*>(op->owner);
        if (err.err == FI_ETRUNC) {
            drop("a message of " + std::to_string(err.len + err.olen) +
                 " bytes, larger than any eager frame");
        } else if (err.err != FI_ECANCELED) {
            logger().error("ofi link: a receive failed: {}", why);
        }
        if (!closed_) {
            post_eager(slot);
        }
        break;
    }
    case op_kind::large_recv:
        on_large(*static_cast<large_recv*>(op->owner), false, why);
        break;
    case op_kind::send:
        on_sent(*static_cast<out_frame*>(op->owner), false, why);
        break;
    }
}

// --- Receiving ------------------------------------------------------------------------------

void ofi_link::post_eager(eager_slot& slot)
{
    const ssize_t r = fi_trecv(ep_.get(), slot.buffer.get(), eager_slot_bytes, nullptr,
                               FI_ADDR_UNSPEC, eager_tag, 0, &slot.op.fi);
    if (r == -FI_EAGAIN) {
        eager_waiting_.push_back(&slot);
    } else if (r != 0) {
        logger().error("ofi link: fi_trecv failed: {}; one receive buffer fewer",
                       library_->error_text(r));
    }
}

void ofi_link::post_large(large_recv& r)
{
    const ssize_t rc =
        fi_trecv(ep_.get(), r.buffer.get(), r.size, nullptr, FI_ADDR_UNSPEC, r.tag, 0, &r.op.fi);
    if (rc == 0) {
        r.posted = true;
    } else if (rc == -FI_EAGAIN) {
        large_waiting_.push_back(&r);
    } else {
        on_large(r, false, "fi_trecv: " + library_->error_text(rc));
    }
}

void ofi_link::post_waiting_receives()
{
    for (auto waiting = std::exchange(eager_waiting_, {}); eager_slot * slot : waiting) {
        if (!closed_) {
            post_eager(*slot);
        }
    }
    for (auto waiting = std::exchange(large_waiting_, {}); large_recv * r : waiting) {
        if (!closed_) {
            post_large(*r);
        }
    }
}

// An eager message: one frame, or several small ones back to back (coalesce()). A large
// frame's header always travels alone.
void ofi_link::on_eager(eager_slot& slot, std::size_t length)
{
    if (length < header_bytes) {
        drop("a message of " + std::to_string(length) + " bytes, shorter than a frame header");
        return;
    }
    const std::byte* message = slot.buffer.get();
    std::size_t at = 0;
    while (at < length && !closed_) {
        const std::size_t left = length - at;
        if (left < header_bytes) {
            drop("a message whose last " + std::to_string(left) + " bytes are not a frame");
            return;
        }
        frame_header h;
        std::memcpy(&h, message + at, header_bytes);
        if (h.magic != frame_magic) {
            drop("a message that is not a dragonx frame");
            return;
        }
        if (!same_token(h.token, token_)) {
            drop("a frame from node " + std::to_string(h.from) + " of another run (wrong token)");
            return;
        }
        if (h.payload_tag == 0 && h.length > left - header_bytes) {
            drop("a frame from node " + std::to_string(h.from) + " whose length is wrong");
            return;
        }
        if (h.payload_tag != 0 && (length != header_bytes || h.length > max_link_frame ||
                                   (h.payload_tag & large_flag_) == 0)) {
            drop("a malformed large-frame header from node " + std::to_string(h.from));
            return;
        }
        const std::size_t payload = h.payload_tag == 0 ? h.length : 0;
        accept(h, std::span(message + at + header_bytes, payload));
        at += header_bytes + payload;
    }
}

void ofi_link::accept(const frame_header& h, std::span<const std::byte> payload)
{
    inbound& in = inbound_[h.from];
    if (!in.started || h.incarnation != in.incarnation || newer(h.generation, in.generation)) {
        restart_inbound(in, h);
    } else if (h.generation != in.generation || h.sequence < in.next_sequence ||
               in.held.contains(h.sequence)) {
        logger().debug("ofi link: dropped a stale frame from node {} (generation {}, "
                       "sequence {})",
                       h.from, h.generation, h.sequence);
        if (h.payload_tag != 0) {
            start_large(h, false);  // take the payload off the provider's hands
        }
        return;
    }
    if (h.payload_tag != 0) {
        start_large(h, true);
        return;
    }
    if (h.sequence == in.next_sequence && in.held.empty()) {
        ++in.next_sequence;
        deliver(h.from, payload);  // straight from the receive buffer
        flush(h.from);
        return;
    }
    held_frame& held = in.held[h.sequence];
    held.bytes = std::make_unique_for_overwrite<std::byte[]>(payload.size());
    held.size = payload.size();
    std::memcpy(held.bytes.get(), payload.data(), payload.size());
    flush(h.from);
}

void ofi_link::start_large(const frame_header& h, bool wanted)
{
    auto owned = std::make_unique<large_recv>();
    large_recv& r = *owned;
    r.op = {.kind = op_kind::large_recv, .owner = &r};
    r.from = h.from;
    r.generation = h.generation;
    r.sequence = h.sequence;
    r.tag = h.payload_tag;
    r.size = h.length;
    r.buffer = std::make_unique_for_overwrite<std::byte[]>(h.length);
    r.orphaned = !wanted;
    large_recvs_.emplace(&r, std::move(owned));
    if (wanted) {
        inbound_[h.from].held[h.sequence].arriving = &r;
    }
    post_large(r);
}

void ofi_link::on_large(large_recv& r, bool ok, const std::string& why)
{
    const auto owned = std::move(large_recvs_.at(&r));
    large_recvs_.erase(&r);
    if (r.orphaned) {
        return;
    }
    inbound& in = inbound_[r.from];
    const auto it = in.held.find(r.sequence);
    if (in.generation != r.generation || it == in.held.end() || it->second.arriving != &r) {
        return;
    }
    held_frame& held = it->second;
    held.arriving = nullptr;
    if (ok) {
        held.bytes = std::move(r.buffer);
        held.size = r.size;
    } else {
        held.failed = true;
        logger().error("ofi link: the payload of a {}-byte frame from node {} did not arrive: {}",
                       r.size, r.from, why);
        report_lost(r.from,
                    "a frame from node " + std::to_string(r.from) + " did not arrive: " + why);
    }
    flush(r.from);
}

void ofi_link::restart_inbound(inbound& in, const frame_header& h)
{
    for (auto& [sequence, held] : in.held) {
        if (held.arriving == nullptr) {
            continue;
        }
        large_recv& r = *held.arriving;
        r.orphaned = true;
        if (r.posted) {
            // Completes with FI_ECANCELED (or with its data, if too late); freed then.
            (void)fi_cancel(&ep_->fid, &r.op.fi);
        }
    }
    if (in.started && !in.held.empty()) {
        logger().info("ofi link: dropped {} held frames of an older generation", in.held.size());
    }
    in.held.clear();
    in.started = true;
    in.incarnation = h.incarnation;
    in.generation = h.generation;
    in.next_sequence = 0;
}

void ofi_link::flush(std::uint32_t node)
{
    while (!closed_) {
        inbound& in = inbound_[node];
        const auto it = in.held.begin();
        if (it == in.held.end() || it->first != in.next_sequence ||
            it->second.arriving != nullptr) {
            return;
        }
        held_frame held = std::move(it->second);
        in.held.erase(it);
        ++in.next_sequence;
        if (!held.failed) {
            deliver(node, std::span(held.bytes.get(), held.size));
        }
    }
}

void ofi_link::deliver(std::uint32_t node, std::span<const std::byte> frame)
{
    if (!closing_ && handlers_.on_frame) {
        handlers_.on_frame(node, frame);
    }
}

void ofi_link::drop(const std::string& why)
{
    ++dropped_;
    if (dropped_ <= 10 || dropped_ % drop_warning_every == 0) {
        logger().warn("ofi link of node {}: dropped {} ({} dropped so far)", my_node_, why,
                      dropped_);
    }
}

// --- Sending --------------------------------------------------------------------------------

void ofi_link::pump(std::uint32_t node)
{
    peer& p = peers_[node];
    const auto blocked = [&] {
        if (!p.blocked) {
            p.blocked = true;
            p.last_progress = clock::now();
            blocked_.push_back(node);
        }
        schedule_retry();
    };
    while (!p.queue.empty() && !closed_) {
        out_frame& f = *p.queue.front();
        if (!f.header_posted) {
            if (!f.large) {
                coalesce(p);
            }
            const ssize_t r = fi_tsend(ep_.get(), f.bytes.get(), f.eager_bytes, nullptr, p.addr,
                                       eager_tag, &f.header_op.fi);
            if (r == -FI_EAGAIN) {
                return blocked();
            }
            if (r != 0) {
                return lose(node, "fi_tsend: " + library_->error_text(r));
            }
            f.header_posted = true;
            ++f.outstanding;
        }
        if (f.large && !f.payload_posted) {
            frame_header h;
            std::memcpy(&h, f.bytes.get(), header_bytes);
            const ssize_t r = fi_tsend(ep_.get(), f.bytes.get() + header_bytes, f.payload, nullptr,
                                       p.addr, h.payload_tag, &f.payload_op.fi);
            if (r == -FI_EAGAIN) {
                return blocked();
            }
            if (r != 0) {
                return lose(node, "fi_tsend: " + library_->error_text(r));
            }
            f.payload_posted = true;
            ++f.outstanding;
        }
        p.last_progress = clock::now();
        const out_frame* key = p.queue.front().get();
        in_flight_.emplace(key, std::move(p.queue.front()));
        p.queue.pop_front();
        kick();  // read its completion even if no fd event comes
    }
    p.blocked = false;
}

// Merges the small frames queued right behind the small frame at the front (not posted yet)
// into its message, as long as the message fits an eager buffer.
void ofi_link::coalesce(peer& p)
{
    auto& queue = p.queue;
    std::size_t total = queue.front()->eager_bytes;
    std::size_t merged = 1;
    while (merged < queue.size() && !queue[merged]->large &&
           total + queue[merged]->eager_bytes <= eager_slot_bytes) {
        total += queue[merged]->eager_bytes;
        ++merged;
    }
    if (merged == 1) {
        return;
    }
    auto bytes = std::make_unique_for_overwrite<std::byte[]>(total);
    std::size_t at = 0;
    for (std::size_t i = 0; i < merged; ++i) {
        std::memcpy(bytes.get() + at, queue[i]->bytes.get(), queue[i]->eager_bytes);
        at += queue[i]->eager_bytes;
    }
    out_frame& first = *queue.front();
    first.bytes = std::move(bytes);
    first.eager_bytes = total;
    queue.erase(queue.begin() + 1, queue.begin() + static_cast<std::ptrdiff_t>(merged));
}

void ofi_link::pump_blocked()
{
    const auto now = clock::now();
    for (auto nodes = std::exchange(blocked_, {}); const std::uint32_t node : nodes) {
        if (closed_) {
            return;
        }
        peer& p = peers_[node];
        if (!p.blocked || p.queue.empty()) {
            p.blocked = false;  // lost meanwhile, or a duplicate entry
            continue;
        }
        p.blocked = false;
        if (now - p.last_progress > options_.unreachable_after) {
            lose(node, "nothing could be sent to it for " +
                           std::to_string(options_.unreachable_after.count()) + " ms");
            continue;
        }
        const auto since = p.last_progress;
        pump(node);
        if (p.blocked) {
            p.last_progress = since;  // still stuck: keep counting from the last progress
        }
    }
}

void ofi_link::schedule_retry()
{
    if (retry_scheduled_ || closed_) {
        return;
    }
    retry_scheduled_ = true;
    auto retry = guarded([this](const std::error_code& ec = {}) {
        retry_scheduled_ = false;
        if (ec || closed_) {
            return;
        }
        retries_ = std::min(retries_ + 1, immediate_retries);
        progress_once();
        if (blocked_.empty()) {
            retries_ = 0;
        }
    });
    if (retries_ < immediate_retries) {
        asio::post(io_, std::move(retry));
    } else {
        retry_timer_.expires_after(retry_interval);
        retry_timer_.async_wait(std::move(retry));
    }
}

// Makes sure the completion of what was just posted is read. An owner that polls reads it in
// its next poll() (it polls again after any work), so only an event-driven link needs this.
void ofi_link::kick()
{
    if (options_.owner_polls || kick_scheduled_ || closed_) {
        return;
    }
    kick_scheduled_ = true;
    asio::post(io_, guarded([this] {
                   kick_scheduled_ = false;
                   progress_once();
               }));
}

void ofi_link::on_sent(out_frame& f, bool ok, const std::string& why)
{
    --f.outstanding;
    const std::uint32_t node = f.node;
    const std::uint32_t generation = f.generation;
    if (f.outstanding == 0 && f.fully_posted()) {
        in_flight_.erase(&f);  // f is gone from here on
    }
    peer& p = peers_[node];
    if (generation != p.generation) {
        return;  // an error of a generation already reported lost
    }
    if (ok) {
        p.last_progress = clock::now();
        return;
    }
    lose(node, "a send to node " + std::to_string(node) + " failed: " + why);
}

void ofi_link::lose(std::uint32_t node, const std::string& why)
{
    peer& p = peers_[node];
    ++p.generation;
    p.next_sequence = 0;
    p.blocked = false;
    // Frames partly posted stay alive until their completions arrive.
    for (auto& f : p.queue) {
        if (f->outstanding > 0) {
            f->payload_posted = f->header_posted = true;  // nothing more will be posted
            const out_frame* key = f.get();
            in_flight_.emplace(key, std::move(f));
        }
    }
    if (!p.queue.empty()) {
        logger().info("ofi link: dropped {} frames queued for node {}", p.queue.size(), node);
    }
    p.queue.clear();
    report_lost(node, why);
}

void ofi_link::report_lost(std::uint32_t node, std::string why)
{
    logger().warn("ofi link of node {}: lost node {}: {}", my_node_, node, why);
    asio::post(io_, guarded([this, node, why = std::move(why)] {
                   if (!closing_ && handlers_.on_lost) {
                       handlers_.on_lost(node, why);
                   }
               }));
}

std::uint64_t ofi_link::next_large_tag()
{
    const std::uint64_t id = (std::uint64_t{my_node_} << 32) | large_counter_++;
    return large_flag_ | ((id ^ tag_mix_) & (large_flag_ - 1));
}

}  // namespace

std::unique_ptr<peer_link> make_ofi_link(asio::io_context& io, const run_secret& secret,
                                         std::uint32_t my_node, ofi_link_options options)
{
    return std::make_unique<ofi_link>(io, secret, my_node, std::move(options));
}

std::unique_ptr<peer_link> make_ofi_link(asio::io_context& io, const run_secret& secret,
                                         std::uint32_t my_node, std::string provider,
                                         std::string bind_address)
{
    return make_ofi_link(
        io, secret, my_node,
        ofi_link_options{.provider = std::move(provider), .bind_address = std::move(bind_address)});
}

}  // namespace dragonx::rt::detail
