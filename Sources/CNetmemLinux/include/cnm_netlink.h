// Netlink uAPI that the installed (6.1) headers lack or that Swift cannot import:
//   - netlink / generic netlink framing and the extended-ACK attributes,
//   - the `netdev` generic-netlink family (Documentation/netlink/specs/netdev.yaml,
//     include/uapi/linux/netdev.h, values as of Linux 6.18),
//   - the `ethtool` family's rings and channels requests (tcp-data-split, queue counts),
//   - thin send/recv wrappers for a netlink socket.
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

// MARK: the socket

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

#ifdef __cplusplus
}
#endif
#endif
