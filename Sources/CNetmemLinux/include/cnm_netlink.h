// Kernel netmem uAPI that the installed (6.1) headers lack or that Swift cannot import:
//   - netlink / generic netlink framing and the extended-ACK attributes,
//   - the `netdev` generic-netlink family (Documentation/netlink/specs/netdev.yaml,
//     include/uapi/linux/netdev.h, values as of Linux 6.18),
//   - the `ethtool` family's rings request (for tcp-data-split, i.e. header split),
//   - the devmem TCP socket ABI (SO_DEVMEM_*, struct dmabuf_cmsg / dmabuf_token),
//   - the io_uring zero-copy receive (zcrx) ABI (include/uapi/linux/io_uring/zcrx.h),
// All values are kernel ABI facts; every symbol carries the cnm_ prefix.
#ifndef CNM_NETLINK_H
#define CNM_NETLINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: netlink framing (include/uapi/linux/netlink.h, genetlink.h)

#define CNM_AF_NETLINK          16
#define CNM_NETLINK_GENERIC     16
#define CNM_SOL_NETLINK         270
#define CNM_NETLINK_CAP_ACK     10
#define CNM_NETLINK_EXT_ACK     11
#define CNM_NETLINK_GET_STRICT_CHK 12

#define CNM_NLM_F_REQUEST   0x0001
#define CNM_NLM_F_MULTI     0x0002
#define CNM_NLM_F_ACK       0x0004
#define CNM_NLM_F_DUMP      0x0300
#define CNM_NLM_F_CAPPED    0x0100
#define CNM_NLM_F_ACK_TLVS  0x0200

#define CNM_NLMSG_NOOP      1
#define CNM_NLMSG_ERROR     2
#define CNM_NLMSG_DONE      3
#define CNM_NLMSG_OVERRUN   4

#define CNM_NLMSG_HDRLEN    16   // struct nlmsghdr
#define CNM_NLA_HDRLEN      4    // struct nlattr
#define CNM_GENL_HDRLEN     4    // struct genlmsghdr
#define CNM_NLA_F_NESTED    0x8000
#define CNM_NLA_F_NET_BYTEORDER 0x4000
#define CNM_NLA_TYPE_MASK   0x3fff

// enum nlmsgerr_attrs
#define CNM_NLMSGERR_ATTR_MSG       1
#define CNM_NLMSGERR_ATTR_OFFS      2
#define CNM_NLMSGERR_ATTR_COOKIE    3
#define CNM_NLMSGERR_ATTR_POLICY    4
#define CNM_NLMSGERR_ATTR_MISS_TYPE 5
#define CNM_NLMSGERR_ATTR_MISS_NEST 6

// Generic netlink controller
#define CNM_GENL_ID_CTRL            0x10
#define CNM_CTRL_CMD_GETFAMILY      3
#define CNM_CTRL_ATTR_FAMILY_ID     1
#define CNM_CTRL_ATTR_FAMILY_NAME   2
#define CNM_CTRL_ATTR_VERSION       3

// MARK: netdev family (netdev.yaml / uapi netdev.h, Linux 6.18)

#define CNM_NETDEV_FAMILY_NAME "netdev"

// enum netdev_xdp_act
#define CNM_NETDEV_XDP_ACT_BASIC        1
#define CNM_NETDEV_XDP_ACT_REDIRECT     2
#define CNM_NETDEV_XDP_ACT_NDO_XMIT     4
#define CNM_NETDEV_XDP_ACT_XSK_ZEROCOPY 8
#define CNM_NETDEV_XDP_ACT_HW_OFFLOAD   16
#define CNM_NETDEV_XDP_ACT_RX_SG        32
#define CNM_NETDEV_XDP_ACT_NDO_XMIT_SG  64

// enum netdev_queue_type
#define CNM_NETDEV_QUEUE_TYPE_RX 0
#define CNM_NETDEV_QUEUE_TYPE_TX 1

// attribute set "dev"
#define CNM_NETDEV_A_DEV_IFINDEX                  1
#define CNM_NETDEV_A_DEV_PAD                      2
#define CNM_NETDEV_A_DEV_XDP_FEATURES             3
#define CNM_NETDEV_A_DEV_XDP_ZC_MAX_SEGS          4
#define CNM_NETDEV_A_DEV_XDP_RX_METADATA_FEATURES 5
#define CNM_NETDEV_A_DEV_XSK_FEATURES             6

// attribute set "page-pool"
#define CNM_NETDEV_A_PAGE_POOL_ID           1
#define CNM_NETDEV_A_PAGE_POOL_IFINDEX      2
#define CNM_NETDEV_A_PAGE_POOL_NAPI_ID      3
#define CNM_NETDEV_A_PAGE_POOL_INFLIGHT     4
#define CNM_NETDEV_A_PAGE_POOL_INFLIGHT_MEM 5
#define CNM_NETDEV_A_PAGE_POOL_DETACH_TIME  6
#define CNM_NETDEV_A_PAGE_POOL_DMABUF       7
#define CNM_NETDEV_A_PAGE_POOL_IO_URING     8

// attribute set "page-pool-stats"
#define CNM_NETDEV_A_PAGE_POOL_STATS_INFO                    1
#define CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_FAST              8
#define CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_SLOW              9
#define CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_SLOW_HIGH_ORDER   10
#define CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_EMPTY             11
#define CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_REFILL            12
#define CNM_NETDEV_A_PAGE_POOL_STATS_ALLOC_WAIVE             13
#define CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_CACHED          14
#define CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_CACHE_FULL      15
#define CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_RING            16
#define CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_RING_FULL       17
#define CNM_NETDEV_A_PAGE_POOL_STATS_RECYCLE_RELEASED_REFCNT 18

// attribute set "napi"
#define CNM_NETDEV_A_NAPI_IFINDEX             1
#define CNM_NETDEV_A_NAPI_ID                  2
#define CNM_NETDEV_A_NAPI_IRQ                 3
#define CNM_NETDEV_A_NAPI_PID                 4
#define CNM_NETDEV_A_NAPI_DEFER_HARD_IRQS     5
#define CNM_NETDEV_A_NAPI_GRO_FLUSH_TIMEOUT   6
#define CNM_NETDEV_A_NAPI_IRQ_SUSPEND_TIMEOUT 7
#define CNM_NETDEV_A_NAPI_THREADED            8

// attribute set "queue"
#define CNM_NETDEV_A_QUEUE_ID       1
#define CNM_NETDEV_A_QUEUE_IFINDEX  2
#define CNM_NETDEV_A_QUEUE_TYPE     3
#define CNM_NETDEV_A_QUEUE_NAPI_ID  4
#define CNM_NETDEV_A_QUEUE_DMABUF   5
#define CNM_NETDEV_A_QUEUE_IO_URING 6
#define CNM_NETDEV_A_QUEUE_XSK      7

// attribute set "dmabuf"
#define CNM_NETDEV_A_DMABUF_IFINDEX 1
#define CNM_NETDEV_A_DMABUF_QUEUES  2
#define CNM_NETDEV_A_DMABUF_FD      3
#define CNM_NETDEV_A_DMABUF_ID      4

// commands
#define CNM_NETDEV_CMD_DEV_GET             1
#define CNM_NETDEV_CMD_PAGE_POOL_GET       5
#define CNM_NETDEV_CMD_PAGE_POOL_STATS_GET 9
#define CNM_NETDEV_CMD_QUEUE_GET           10
#define CNM_NETDEV_CMD_NAPI_GET            11
#define CNM_NETDEV_CMD_QSTATS_GET          12
#define CNM_NETDEV_CMD_BIND_RX             13
#define CNM_NETDEV_CMD_NAPI_SET            14
#define CNM_NETDEV_CMD_BIND_TX             15

// MARK: ethtool family, rings (uapi ethtool_netlink.h)

#define CNM_ETHTOOL_FAMILY_NAME "ethtool"
#define CNM_ETHTOOL_MSG_RINGS_GET        15
#define CNM_ETHTOOL_MSG_CHANNELS_GET     17
#define CNM_ETHTOOL_A_HEADER_DEV_INDEX   1
#define CNM_ETHTOOL_A_HEADER_DEV_NAME    2
#define CNM_ETHTOOL_A_RINGS_HEADER       1
#define CNM_ETHTOOL_A_RINGS_RX_MAX       2
#define CNM_ETHTOOL_A_RINGS_RX           6
#define CNM_ETHTOOL_A_RINGS_TCP_DATA_SPLIT 11
#define CNM_ETHTOOL_A_RINGS_HDS_THRESH   17
// enum ethtool_tcp_data_split
#define CNM_ETHTOOL_TCP_DATA_SPLIT_UNKNOWN  0
#define CNM_ETHTOOL_TCP_DATA_SPLIT_DISABLED 1
#define CNM_ETHTOOL_TCP_DATA_SPLIT_ENABLED  2
#define CNM_ETHTOOL_A_CHANNELS_HEADER       1
#define CNM_ETHTOOL_A_CHANNELS_RX_MAX       2
#define CNM_ETHTOOL_A_CHANNELS_COMBINED_MAX 5
#define CNM_ETHTOOL_A_CHANNELS_RX_COUNT     6
#define CNM_ETHTOOL_A_CHANNELS_COMBINED_COUNT 9

// MARK: devmem TCP socket ABI (asm-generic/socket.h, uapi/linux/uio.h)

#define CNM_SOL_SOCKET          1
#define CNM_SO_ZEROCOPY         60
#define CNM_SO_DEVMEM_LINEAR    78
#define CNM_SCM_DEVMEM_LINEAR   CNM_SO_DEVMEM_LINEAR
#define CNM_SO_DEVMEM_DMABUF    79
#define CNM_SCM_DEVMEM_DMABUF   CNM_SO_DEVMEM_DMABUF
#define CNM_SO_DEVMEM_DONTNEED  80
#define CNM_MSG_SOCK_DEVMEM     0x2000000
#define CNM_MSG_ZEROCOPY        0x4000000
#define CNM_MSG_CTRUNC          0x8
#define CNM_MSG_DONTWAIT        0x40

/// Mirrors `struct dmabuf_cmsg` (24 bytes).
struct cnm_dmabuf_cmsg {
    uint64_t frag_offset;
    uint32_t frag_size;
    uint32_t frag_token;
    uint32_t dmabuf_id;
    uint32_t flags;
};

/// Mirrors `struct dmabuf_token` (8 bytes).
struct cnm_dmabuf_token {
    uint32_t token_start;
    uint32_t token_count;
};

/// struct cmsghdr on this ABI: size_t len, int level, int type (16 bytes on LP64).
#define CNM_CMSG_HDRLEN   16
#define CNM_CMSG_ALIGNTO  8

// MARK: io_uring zcrx ABI (uapi/linux/io_uring.h, io_uring/zcrx.h, Linux 6.18)

#define CNM_ZC_IORING_REGISTER_PROBE      8
#define CNM_ZC_IORING_REGISTER_PBUF_RING  22
#define CNM_ZC_IORING_UNREGISTER_PBUF_RING 23
#define CNM_ZC_IORING_REGISTER_ZCRX_IFQ   32
#define CNM_ZC_IORING_OP_SEND_ZC          47
#define CNM_ZC_IORING_OP_RECV_ZC          58
#define CNM_ZC_IORING_SETUP_SINGLE_ISSUER (1U << 12)
#define CNM_ZC_IORING_SETUP_DEFER_TASKRUN (1U << 13)
#define CNM_ZC_IORING_SETUP_CQE32         (1U << 11)
#define CNM_ZC_IORING_SETUP_SQE128        (1U << 10)
#define CNM_ZC_IORING_SETUP_NO_SQARRAY    (1U << 16)
#define CNM_ZC_IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#define CNM_ZC_IORING_FEAT_NATIVE_WORKERS (1U << 9)
#define CNM_ZC_IOU_PBUF_RING_INC          2
#define CNM_ZC_IORING_RECV_MULTISHOT      (1U << 1)
#define CNM_ZC_IORING_CQE_F_MORE          (1U << 1)
#define CNM_ZC_IORING_MEM_REGION_TYPE_USER 1
#define CNM_ZC_IORING_ZCRX_AREA_SHIFT     48
#define CNM_ZC_IORING_ZCRX_AREA_DMABUF    1
#define CNM_ZC_IORING_OFF_SQ_RING         0ULL
#define CNM_ZC_IORING_OFF_CQ_RING         0x8000000ULL
#define CNM_ZC_IORING_OFF_SQES            0x10000000ULL
#define CNM_ZC_IORING_ENTER_GETEVENTS     1U

/// Mirrors `struct io_uring_zcrx_rqe` (16 bytes): one refill-queue entry.
struct cnm_zcrx_rqe {
    uint64_t off;
    uint32_t len;
    uint32_t pad;
};

/// Mirrors `struct io_uring_zcrx_cqe` (16 bytes): the second half of a 32-byte CQE.
struct cnm_zcrx_cqe {
    uint64_t off;
    uint64_t pad;
};

/// Mirrors `struct io_uring_zcrx_offsets` (32 bytes).
struct cnm_zcrx_offsets {
    uint32_t head;
    uint32_t tail;
    uint32_t rqes;
    uint32_t resv2;
    uint64_t resv[2];
};

/// Mirrors `struct io_uring_zcrx_area_reg` (48 bytes).
struct cnm_zcrx_area_reg {
    uint64_t addr;
    uint64_t len;
    uint64_t rq_area_token;
    uint32_t flags;
    uint32_t dmabuf_fd;
    uint64_t resv2[2];
};

/// Mirrors `struct io_uring_region_desc` (64 bytes).
struct cnm_uring_region_desc {
    uint64_t user_addr;
    uint64_t size;
    uint32_t flags;
    uint32_t id;
    uint64_t mmap_offset;
    uint64_t resv[4];
};

/// Mirrors `struct io_uring_zcrx_ifq_reg` (96 bytes).
struct cnm_zcrx_ifq_reg {
    uint32_t if_idx;
    uint32_t if_rxq;
    uint32_t rq_entries;
    uint32_t flags;
    uint64_t area_ptr;
    uint64_t region_ptr;
    struct cnm_zcrx_offsets offsets;
    uint32_t zcrx_id;
    uint32_t rx_buf_len;
    uint64_t resv[3];
};

/// Mirrors `struct io_sqring_offsets` / `io_cqring_offsets` / `io_uring_params` (120 bytes).
struct cnm_zc_sqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
    uint64_t user_addr;
};
struct cnm_zc_cqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
    uint64_t user_addr;
};
struct cnm_zc_uring_params {
    uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
    uint32_t resv[3];
    struct cnm_zc_sqring_offsets sq_off;
    struct cnm_zc_cqring_offsets cq_off;
};

/// Mirrors `struct io_uring_sqe` (64 bytes), only the fields RECV_ZC uses named.
struct cnm_zc_sqe {
    uint8_t  opcode;
    uint8_t  flags;
    uint16_t ioprio;
    int32_t  fd;
    uint64_t off;
    uint64_t addr;
    uint32_t len;
    uint32_t op_flags;     // msg_flags for RECV_ZC
    uint64_t user_data;
    uint16_t buf_index;
    uint16_t personality;
    uint32_t zcrx_ifq_idx; // union with splice_fd_in / file_index
    uint64_t addr3;
    uint64_t pad2;
};

/// Mirrors `struct io_uring_cqe` followed by the 16 extra bytes of a CQE32 ring (32 bytes).
struct cnm_zc_cqe32 {
    uint64_t user_data;
    int32_t  res;
    uint32_t flags;
    struct cnm_zcrx_cqe zcrx;
};

/// Mirrors `io_uring_setup(2)`. Returns the ring fd or -errno.
int cnm_zc_uring_setup(uint32_t entries, struct cnm_zc_uring_params *p);
/// Mirrors `io_uring_register(2)`. Returns >= 0 or -errno (EINTR retried).
int cnm_zc_uring_register(int fd, unsigned int opcode, void *arg, unsigned int nr_args);
/// Mirrors `io_uring_enter(2)`. Returns >= 0 or -errno (EINTR retried).
int cnm_zc_uring_enter(int fd, unsigned int to_submit, unsigned int min_complete, unsigned int flags);

/// Release/acquire accesses to ring indices shared with the kernel.
static inline uint32_t cnm_zc_load_acquire(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void cnm_zc_store_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// MARK: sockets

/// Mirrors `struct sockaddr_nl` (12 bytes): bind with all zeros but the family to let the
/// kernel pick the port id.
struct cnm_sockaddr_nl {
    uint16_t nl_family;
    uint16_t nl_pad;
    uint32_t nl_pid;
    uint32_t nl_groups;
};
_Static_assert(sizeof(struct cnm_sockaddr_nl) == 12, "struct sockaddr_nl is 12 bytes");

/// SO_RCVTIMEO with a `struct timeval` of 64-bit fields (SO_RCVTIMEO_OLD on LP64; the
/// libc macro picks between two values and does not import).
#define CNM_SO_RCVTIMEO 20

/// Mirrors `send(2)` on a netlink socket. Returns bytes or -errno (EINTR retried).
long cnm_nl_send(int fd, const void *buf, size_t len);
/// Mirrors `recv(2)` (`flags` as recv takes them, e.g. MSG_PEEK | MSG_TRUNC to learn a
/// datagram's size). Returns bytes or -errno (EINTR retried).
long cnm_nl_recv(int fd, void *buf, size_t len, int flags);

/// Mirrors `recvmsg(2)` with one iovec and a control buffer. `*msg_flags` receives
/// msg_flags and `*control_len` the control bytes written. Returns bytes or -errno
/// (EINTR retried).
long cnm_recvmsg_control(int fd, void *buf, size_t len, void *control, size_t control_cap,
                         int flags, int *msg_flags, size_t *control_len);
/// Mirrors `sendmsg(2)` with one iovec whose base is `iov_base` (for devmem TX this is an
/// offset into the dma-buf, not an address) and a control buffer. Returns bytes or -errno.
long cnm_sendmsg_control(int fd, uint64_t iov_base, size_t len, const void *control,
                         size_t control_len, int flags);
/// Mirrors `setsockopt(2)`; returns the (possibly positive) result or -errno. The devmem
/// SO_DEVMEM_DONTNEED option returns the number of fragments freed.
int cnm_setsockopt(int fd, int level, int name, const void *value, unsigned int len);

#ifdef __cplusplus
}
#endif
#endif
