// io_uring zero-copy receive (zcrx) ABI that the installed (6.1) headers lack
// (include/uapi/linux/io_uring/zcrx.h, Linux 6.18). A zcrx queue runs on an ordinary
// io_uring set up with IORING_SETUP_CQE32 (cnm_uring.h); this header holds only what is
// zcrx's own: the registration structs, the refill-queue entry, the second half of a
// RECV_ZC completion, and the refill ring's index accessors. Values are kernel ABI facts.
#ifndef CNM_ZCRX_H
#define CNM_ZCRX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bits of io_uring_zcrx_cqe.off / io_uring_zcrx_rqe.off above this shift name the area.
#define CNM_IORING_ZCRX_AREA_SHIFT  48
/// io_uring_zcrx_area_reg.flags: the area is a dma-buf.
#define CNM_IORING_ZCRX_AREA_DMABUF 1

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

_Static_assert(sizeof(struct cnm_zcrx_rqe) == 16, "struct io_uring_zcrx_rqe is 16 bytes");
_Static_assert(sizeof(struct cnm_zcrx_cqe) == 16, "struct io_uring_zcrx_cqe is 16 bytes");
_Static_assert(sizeof(struct cnm_zcrx_offsets) == 32, "struct io_uring_zcrx_offsets is 32 bytes");
_Static_assert(sizeof(struct cnm_zcrx_area_reg) == 48, "struct io_uring_zcrx_area_reg is 48 bytes");
_Static_assert(sizeof(struct cnm_zcrx_ifq_reg) == 96, "struct io_uring_zcrx_ifq_reg is 96 bytes");

/// The refill ring's head and tail are shared with the kernel: load the kernel's head
/// with acquire, publish our tail with release.
static inline uint32_t cnm_zcrx_load_acquire(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void cnm_zcrx_store_release(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

#ifdef __cplusplus
}
#endif
#endif
