// AF_XDP sockets and the bpf() calls that steer a queue into one: kernel ABI values,
// ring accessors with the memory ordering the kernel expects, and thin syscall wrappers.
// Every wrapper returns a non-negative result or -errno (EINTR retried here).
#ifndef CNM_XDP_H
#define CNM_XDP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- AF_XDP ABI (linux/if_xdp.h; values are kernel ABI facts) -------------------------

#define CNM_AF_XDP                 44
#define CNM_SOL_XDP                283

#define CNM_XDP_SHARED_UMEM        (1 << 0)
#define CNM_XDP_COPY               (1 << 1)
#define CNM_XDP_ZEROCOPY           (1 << 2)
#define CNM_XDP_USE_NEED_WAKEUP    (1 << 3)
#define CNM_XDP_RING_NEED_WAKEUP   (1 << 0)

#define CNM_XDP_MMAP_OFFSETS       1
#define CNM_XDP_RX_RING            2
#define CNM_XDP_TX_RING            3
#define CNM_XDP_UMEM_REG           4
#define CNM_XDP_UMEM_FILL_RING     5
#define CNM_XDP_UMEM_COMPLETION_RING 6
#define CNM_XDP_STATISTICS         7

#define CNM_XDP_PGOFF_RX_RING              0ULL
#define CNM_XDP_PGOFF_TX_RING              0x80000000ULL
#define CNM_XDP_UMEM_PGOFF_FILL_RING       0x100000000ULL
#define CNM_XDP_UMEM_PGOFF_COMPLETION_RING 0x180000000ULL

/// The headroom the kernel keeps in front of every frame (XDP_PACKET_HEADROOM).
#define CNM_XDP_PACKET_HEADROOM    256

/// Mirrors `struct xdp_ring_offset`.
struct cnm_xdp_ring_offset {
    uint64_t producer;
    uint64_t consumer;
    uint64_t desc;
    uint64_t flags;
};

/// Mirrors `struct xdp_mmap_offsets`.
struct cnm_xdp_mmap_offsets {
    struct cnm_xdp_ring_offset rx;
    struct cnm_xdp_ring_offset tx;
    struct cnm_xdp_ring_offset fr;
    struct cnm_xdp_ring_offset cr;
};

/// Mirrors `struct xdp_desc`.
struct cnm_xdp_desc {
    uint64_t addr;
    uint32_t len;
    uint32_t options;
};

/// Mirrors `struct xdp_statistics`.
struct cnm_xdp_statistics {
    uint64_t rx_dropped;
    uint64_t rx_invalid_descs;
    uint64_t tx_invalid_descs;
    uint64_t rx_ring_full;
    uint64_t rx_fill_ring_empty_descs;
    uint64_t tx_ring_empty_descs;
};

// ---- Ring accessors --------------------------------------------------------------------
// The producer/consumer words are shared with the kernel: loads of the other side's
// index are acquire, stores of our own index are release (the kernel's xsk_queue.h
// ordering contract).

static inline uint32_t cnm_xdp_load_acquire(const uint32_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void cnm_xdp_store_release(uint32_t *p, uint32_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline uint32_t cnm_xdp_load_relaxed(const uint32_t *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

// ---- Socket calls ----------------------------------------------------------------------

/// Mirrors `socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`. Returns the fd or -errno.
int cnm_xsk_socket(void);

/// Mirrors `setsockopt(fd, SOL_XDP, opt, val, len)`. Returns 0 or -errno.
int cnm_xsk_setsockopt(int fd, int opt, const void *val, uint32_t len);

/// Mirrors `setsockopt(fd, SOL_XDP, XDP_UMEM_REG, …)` with `struct xdp_umem_reg`.
int cnm_xsk_umem_reg(int fd, void *addr, uint64_t len, uint32_t chunk_size, uint32_t headroom);

/// Mirrors `getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, …)`. Returns 0 or -errno.
int cnm_xsk_mmap_offsets(int fd, struct cnm_xdp_mmap_offsets *off);

/// Mirrors `getsockopt(fd, SOL_XDP, XDP_STATISTICS, …)`. Returns 0 or -errno.
int cnm_xsk_statistics(int fd, struct cnm_xdp_statistics *st);

/// Mirrors `bind(fd, struct sockaddr_xdp)`. Returns 0 or -errno.
int cnm_xsk_bind(int fd, uint32_t ifindex, uint32_t queue, uint16_t flags);

/// Kicks the kernel to process the RX/fill side: `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`.
/// Returns 0 or -errno (EAGAIN/EBUSY/ENOBUFS are normal and reported as 0).
int cnm_xsk_wakeup_rx(int fd);

/// Kicks the kernel to process the TX ring: `sendto(fd, NULL, 0, MSG_DONTWAIT)`.
/// Returns 0 or -errno (EAGAIN/EBUSY/ENOBUFS/ENETDOWN are normal and reported as 0).
int cnm_xsk_wakeup_tx(int fd);

/// Busy polling of a socket's NAPI context: `setsockopt(SOL_SOCKET)` of
/// SO_PREFER_BUSY_POLL (`prefer`), SO_BUSY_POLL (`usecs`) and SO_BUSY_POLL_BUDGET
/// (`budget`, skipped when 0). Returns 0 or -errno of the first that failed.
int cnm_socket_busy_poll(int fd, int usecs, int budget, int prefer);

/// Mirrors `poll(2)` on one fd for POLLIN. Returns >0 when readable, 0 on timeout, or -errno.
int cnm_poll_in(int fd, int timeout_ms);
/// Sleeps `us` microseconds (nanosleep(2), resumed after a signal).
void cnm_sleep_us(unsigned int us);


// ---- bpf() -----------------------------------------------------------------------------

/// BPF_XDP attach type and XDP_FLAGS_* values for BPF_LINK_CREATE.
#define CNM_BPF_XDP                37
#define CNM_XDP_FLAGS_SKB_MODE     (1U << 1)
#define CNM_XDP_FLAGS_DRV_MODE     (1U << 2)

/// Mirrors `bpf(BPF_MAP_CREATE)` for a BPF_MAP_TYPE_XSKMAP of `entries` u32→u32 slots.
/// Returns the map fd or -errno.
int cnm_bpf_xskmap_create(uint32_t entries, const char *name);

/// Mirrors `bpf(BPF_MAP_UPDATE_ELEM)` for a u32 key and u32 value. Returns 0 or -errno.
int cnm_bpf_map_update_u32(int map_fd, uint32_t key, uint32_t value);

/// Mirrors `bpf(BPF_MAP_DELETE_ELEM)` for a u32 key. Returns 0 or -errno.
int cnm_bpf_map_delete_u32(int map_fd, uint32_t key);

/// Mirrors `bpf(BPF_PROG_LOAD)` of a BPF_PROG_TYPE_XDP program of `count` instructions
/// (8 bytes each). The verifier log lands in `log` when given. Returns the fd or -errno.
int cnm_bpf_prog_load_xdp(const uint64_t *insns, uint32_t count, const char *name,
                          char *log, uint32_t log_size);

/// Mirrors `bpf(BPF_LINK_CREATE)` with attach type BPF_XDP on `ifindex`.
/// Returns the link fd or -errno.
int cnm_bpf_link_create_xdp(int prog_fd, uint32_t ifindex, uint32_t flags);

/// Encodes one eBPF instruction as its 8-byte little-endian image.
static inline uint64_t cnm_bpf_insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    return (uint64_t)code | ((uint64_t)(dst & 0xf) << 8) | ((uint64_t)(src & 0xf) << 12)
         | ((uint64_t)(uint16_t)off << 16) | ((uint64_t)(uint32_t)imm << 32);
}

// ---- Namespaces and batched datagram I/O (benchmarks, tests) ---------------------------

/// Mirrors `setns(fd, CLONE_NEWNET)` for the calling thread. Returns 0 or -errno.
int cnm_setns_net(int fd);

/// Sends `count` copies of `payload` (each `length` bytes) to a connected UDP socket with
/// `sendmmsg(2)` in batches of up to 64. Returns datagrams the kernel accepted, or -errno
/// when nothing was (EAGAIN/ENOBUFS give 0).
int cnm_udp_send_batch(int fd, const void *payload, uint32_t length, uint32_t count);

/// Receives up to `count` datagrams (up to 64) into `buffers` (`count` slots of
/// `slot_size` bytes) with `recvmmsg(2)`, MSG_DONTWAIT. Lengths go into `lengths`.
/// Returns datagrams received, 0 when none are waiting, or -errno.
int cnm_udp_recv_batch(int fd, void *buffers, uint32_t slot_size, uint32_t *lengths, uint32_t count);

#ifdef __cplusplus
}
#endif
#endif
