// io_uring ABI (structs, constants) and thin syscall wrappers for NetmemURing.
//
// The installed kernel headers are older (6.1) than the kernels Netmem runs on, so this
// header defines the ABI it needs itself, every name prefixed CNM_/cnm_. The values are
// kernel ABI facts (include/uapi/linux/io_uring.h); support is probed at run time.
#ifndef CNM_URING_H
#define CNM_URING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Setup flags (io_uring_params.flags)
#define CNM_IORING_SETUP_CQSIZE          (1U << 3)
#define CNM_IORING_SETUP_CLAMP           (1U << 4)
#define CNM_IORING_SETUP_SUBMIT_ALL      (1U << 7)
#define CNM_IORING_SETUP_COOP_TASKRUN    (1U << 8)
#define CNM_IORING_SETUP_TASKRUN_FLAG    (1U << 9)
#define CNM_IORING_SETUP_CQE32           (1U << 11)
#define CNM_IORING_SETUP_SINGLE_ISSUER   (1U << 12)
#define CNM_IORING_SETUP_DEFER_TASKRUN   (1U << 13)

// MARK: - Features (io_uring_params.features)
#define CNM_IORING_FEAT_SINGLE_MMAP      (1U << 0)
#define CNM_IORING_FEAT_NODROP           (1U << 1)
#define CNM_IORING_FEAT_FAST_POLL        (1U << 5)
#define CNM_IORING_FEAT_EXT_ARG          (1U << 8)
#define CNM_IORING_FEAT_RECVSEND_BUNDLE  (1U << 14)

// MARK: - io_uring_enter flags
#define CNM_IORING_ENTER_GETEVENTS       1U
#define CNM_IORING_ENTER_EXT_ARG         (1U << 3)

// MARK: - SQ ring flags
#define CNM_IORING_SQ_CQ_OVERFLOW        (1U << 1)
#define CNM_IORING_SQ_TASKRUN            (1U << 2)

// MARK: - mmap offsets
#define CNM_IORING_OFF_SQ_RING           0ULL
#define CNM_IORING_OFF_CQ_RING           0x8000000ULL
#define CNM_IORING_OFF_SQES              0x10000000ULL
#define CNM_IORING_OFF_PBUF_RING         0x80000000ULL
#define CNM_IORING_OFF_PBUF_SHIFT        16

// MARK: - Opcodes (enum io_uring_op)
#define CNM_IORING_OP_NOP                0
#define CNM_IORING_OP_READ_FIXED         4
#define CNM_IORING_OP_ACCEPT             13
#define CNM_IORING_OP_ASYNC_CANCEL       14
#define CNM_IORING_OP_CONNECT            16
#define CNM_IORING_OP_CLOSE              19
#define CNM_IORING_OP_READ               22
#define CNM_IORING_OP_SEND               26
#define CNM_IORING_OP_RECV               27
#define CNM_IORING_OP_SHUTDOWN           34
#define CNM_IORING_OP_SEND_ZC            47
#define CNM_IORING_OP_SENDMSG_ZC         48
#define CNM_IORING_OP_READ_MULTISHOT     49
#define CNM_IORING_OP_BIND               56
#define CNM_IORING_OP_LISTEN             57
#define CNM_IORING_OP_RECV_ZC            58

// MARK: - SQE flags (sqe->flags)
#define CNM_IOSQE_FIXED_FILE             (1U << 0)
#define CNM_IOSQE_IO_LINK                (1U << 2)
#define CNM_IOSQE_ASYNC                  (1U << 4)
#define CNM_IOSQE_BUFFER_SELECT          (1U << 5)
#define CNM_IOSQE_CQE_SKIP_SUCCESS       (1U << 6)

// MARK: - send/recv flags (sqe->ioprio)
#define CNM_IORING_RECVSEND_POLL_FIRST   (1U << 0)
#define CNM_IORING_RECV_MULTISHOT        (1U << 1)
#define CNM_IORING_RECVSEND_FIXED_BUF    (1U << 2)
#define CNM_IORING_SEND_ZC_REPORT_USAGE  (1U << 3)
#define CNM_IORING_RECVSEND_BUNDLE       (1U << 4)
/// cqe.res of a SEND_ZC notification when IORING_SEND_ZC_REPORT_USAGE was asked for: the
/// kernel copied (at least part of) the data.
#define CNM_IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#define CNM_IORING_ACCEPT_MULTISHOT      (1U << 0)

// MARK: - CQE flags
#define CNM_IORING_CQE_F_BUFFER          (1U << 0)
#define CNM_IORING_CQE_F_MORE            (1U << 1)
#define CNM_IORING_CQE_F_SOCK_NONEMPTY   (1U << 2)
#define CNM_IORING_CQE_F_NOTIF           (1U << 3)
#define CNM_IORING_CQE_F_BUF_MORE        (1U << 4)
#define CNM_IORING_CQE_BUFFER_SHIFT      16

// MARK: - io_uring_register opcodes
#define CNM_IORING_REGISTER_BUFFERS          0
#define CNM_IORING_UNREGISTER_BUFFERS        1
#define CNM_IORING_REGISTER_PROBE            8
#define CNM_IORING_REGISTER_PBUF_RING        22
#define CNM_IORING_UNREGISTER_PBUF_RING      23
#define CNM_IORING_REGISTER_PBUF_STATUS      26
#define CNM_IORING_REGISTER_ZCRX_IFQ         32

// MARK: - Memory regions (struct io_uring_region_desc.flags)
#define CNM_IORING_MEM_REGION_TYPE_USER      1

// MARK: - Provided-buffer ring registration flags (io_uring_buf_reg.flags)
#define CNM_IOU_PBUF_RING_MMAP           1
#define CNM_IOU_PBUF_RING_INC            2

#define CNM_IO_URING_OP_SUPPORTED        (1U << 0)

// MARK: - Structs (layouts of the kernel uapi)

/// Mirrors `struct io_sqring_offsets`.
struct cnm_io_sqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
    uint64_t user_addr;
};

/// Mirrors `struct io_cqring_offsets`.
struct cnm_io_cqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
    uint64_t user_addr;
};

/// Mirrors `struct io_uring_params`.
struct cnm_io_uring_params {
    uint32_t sq_entries;
    uint32_t cq_entries;
    uint32_t flags;
    uint32_t sq_thread_cpu;
    uint32_t sq_thread_idle;
    uint32_t features;
    uint32_t wq_fd;
    uint32_t resv[3];
    struct cnm_io_sqring_offsets sq_off;
    struct cnm_io_cqring_offsets cq_off;
};

/// Mirrors `struct io_uring_sqe` (64 bytes). The kernel's unions are flattened to the one
/// member Netmem uses; the comment names the others that share the slot.
struct cnm_io_uring_sqe {
    uint8_t  opcode;
    uint8_t  flags;
    uint16_t ioprio;        // also: send/recv flags, accept flags
    int32_t  fd;
    uint64_t off;           // also: addr2
    uint64_t addr;
    uint32_t len;
    uint32_t op_flags;      // msg_flags, accept_flags, rw_flags, ...
    uint64_t user_data;
    uint16_t buf_index;     // also: buf_group
    uint16_t personality;
    int32_t  file_index;    // also: splice_fd_in, addr_len, zcrx_ifq_idx
    uint64_t addr3;
    uint64_t pad2;
};

/// Mirrors `struct io_uring_cqe` (16-byte form).
struct cnm_io_uring_cqe {
    uint64_t user_data;
    int32_t  res;
    uint32_t flags;
};

/// Mirrors `struct io_uring_cqe` followed by `big_cqe[2]`: one entry of a ring set up
/// with IORING_SETUP_CQE32 (32 bytes; zcrx puts `struct io_uring_zcrx_cqe` there).
struct cnm_io_uring_cqe32 {
    uint64_t user_data;
    int32_t  res;
    uint32_t flags;
    uint64_t big_cqe[2];
};

/// Mirrors `struct io_uring_getevents_arg` (IORING_ENTER_EXT_ARG).
struct cnm_io_uring_getevents_arg {
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t min_wait_usec;
    uint64_t ts;
};

/// Mirrors `struct __kernel_timespec`.
struct cnm_kernel_timespec {
    int64_t tv_sec;
    int64_t tv_nsec;
};

/// Mirrors `struct io_uring_region_desc` (64 bytes).
struct cnm_io_uring_region_desc {
    uint64_t user_addr;
    uint64_t size;
    uint32_t flags;
    uint32_t id;
    uint64_t mmap_offset;
    uint64_t resv[4];
};

/// Mirrors `struct io_uring_probe_op`.
struct cnm_io_uring_probe_op {
    uint8_t  op;
    uint8_t  resv;
    uint16_t flags;
    uint32_t resv2;
};

/// Mirrors `struct io_uring_probe` with room for 256 opcodes.
struct cnm_io_uring_probe {
    uint8_t  last_op;
    uint8_t  ops_len;
    uint16_t resv;
    uint32_t resv2[3];
    struct cnm_io_uring_probe_op ops[256];
};

/// Mirrors `struct io_uring_buf`: one provided-buffer ring entry. The ring's tail
/// overlays `resv` of entry 0.
struct cnm_io_uring_buf {
    uint64_t addr;
    uint32_t len;
    uint16_t bid;
    uint16_t resv;
};

/// Mirrors `struct io_uring_buf_reg` (IORING_(UN)REGISTER_PBUF_RING).
struct cnm_io_uring_buf_reg {
    uint64_t ring_addr;
    uint32_t ring_entries;
    uint16_t bgid;
    uint16_t flags;
    uint64_t resv[3];
};

/// Mirrors `struct io_uring_buf_status` (IORING_REGISTER_PBUF_STATUS).
struct cnm_io_uring_buf_status {
    uint32_t buf_group;
    uint32_t head;
    uint32_t resv[8];
};

/// Mirrors `struct iovec` for IORING_REGISTER_BUFFERS.
struct cnm_iovec {
    void  *base;
    size_t len;
};

_Static_assert(sizeof(struct cnm_io_uring_sqe) == 64, "io_uring_sqe is 64 bytes");
_Static_assert(sizeof(struct cnm_io_uring_cqe) == 16, "io_uring_cqe is 16 bytes");
_Static_assert(sizeof(struct cnm_io_uring_cqe32) == 32, "a CQE32 entry is 32 bytes");
_Static_assert(sizeof(struct cnm_io_uring_getevents_arg) == 24, "io_uring_getevents_arg is 24 bytes");
_Static_assert(sizeof(struct cnm_io_uring_region_desc) == 64, "io_uring_region_desc is 64 bytes");
_Static_assert(sizeof(struct cnm_io_uring_params) == 120, "io_uring_params is 120 bytes");
_Static_assert(sizeof(struct cnm_io_uring_buf) == 16, "io_uring_buf is 16 bytes");
_Static_assert(sizeof(struct cnm_io_uring_buf_reg) == 40, "io_uring_buf_reg is 40 bytes");

// MARK: - The mapped rings

/// Pointers into the mapped SQ and CQ rings of one io_uring instance, for the inline
/// ring accessors below. NetmemURing maps the rings and fills this in.
struct cnm_uring_rings {
    uint32_t *sq_head;
    uint32_t *sq_tail;
    uint32_t *sq_flags;
    uint32_t *sq_array;
    uint32_t  sq_mask;
    uint32_t  sq_entries;
    struct cnm_io_uring_sqe *sqes;
    uint32_t *cq_head;
    uint32_t *cq_tail;
    uint32_t *cq_overflow;
    uint32_t  cq_mask;
    uint32_t  cq_entries;
    /// The CQE array; entries are `16 << cqe_shift` bytes apart.
    struct cnm_io_uring_cqe *cqes;
    /// 1 on a ring set up with IORING_SETUP_CQE32 (32-byte entries), else 0.
    uint32_t  cqe_shift;
    /// Our private copy of the SQ tail (entries handed out, not yet published).
    uint32_t  sq_local_tail;
};

/// Mirrors `io_uring_setup(2)`. Returns the ring fd or -errno.
int cnm_io_uring_setup(uint32_t entries, struct cnm_io_uring_params *params);

/// Mirrors `io_uring_enter(2)` without an argument. Returns >= 0 or -errno (EINTR retried).
int cnm_io_uring_enter(int fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags);

/// Mirrors `io_uring_enter2(2)`: `io_uring_enter` with an argument of `arg_size` bytes
/// (with IORING_ENTER_EXT_ARG in `flags`, a `struct cnm_io_uring_getevents_arg`).
/// Returns >= 0 or -errno (EINTR retried; -ETIME when a timeout expired first).
int cnm_io_uring_enter2(int fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags,
                        const void *arg, size_t arg_size);

/// Mirrors `io_uring_register(2)`. Returns >= 0 or -errno (EINTR retried).
int cnm_io_uring_register(int fd, uint32_t opcode, const void *arg, uint32_t nr_args);

/// The platform's O_DIRECT open flag (not importable without _GNU_SOURCE).
int cnm_o_direct(void);

// MARK: - Ring access (inline: the hot path)

/// The next free SQE (zeroed), or NULL when the SQ is full.
static inline struct cnm_io_uring_sqe *cnm_uring_get_sqe(struct cnm_uring_rings *r) {
    uint32_t head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    if (r->sq_local_tail - head >= r->sq_entries) return NULL;
    struct cnm_io_uring_sqe *sqe = &r->sqes[r->sq_local_tail & r->sq_mask];
    r->sq_local_tail++;
    __builtin_memset(sqe, 0, sizeof *sqe);
    return sqe;
}

/// Publishes every SQE handed out so far to the kernel; returns how many are pending
/// submission (published but not consumed by the kernel).
static inline uint32_t cnm_uring_flush_sq(struct cnm_uring_rings *r) {
    uint32_t tail = *r->sq_tail;
    uint32_t local = r->sq_local_tail;
    while (tail != local) {
        r->sq_array[tail & r->sq_mask] = tail & r->sq_mask;
        tail++;
    }
    __atomic_store_n(r->sq_tail, local, __ATOMIC_RELEASE);
    return local - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
}

/// SQEs handed out but not yet consumed by the kernel.
static inline uint32_t cnm_uring_sq_pending(const struct cnm_uring_rings *r) {
    return r->sq_local_tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
}

/// Whether the kernel wants us to enter for task work or has overflowed CQEs.
static inline uint32_t cnm_uring_sq_flags(const struct cnm_uring_rings *r) {
    return __atomic_load_n(r->sq_flags, __ATOMIC_RELAXED);
}

/// Completions ready to be reaped.
static inline uint32_t cnm_uring_cq_ready(const struct cnm_uring_rings *r) {
    return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) - *r->cq_head;
}

/// The i-th ready completion (i < cnm_uring_cq_ready): its first 16 bytes, whatever the
/// entry size.
static inline struct cnm_io_uring_cqe cnm_uring_cq_at(const struct cnm_uring_rings *r, uint32_t i) {
    return r->cqes[((*r->cq_head + i) & r->cq_mask) << r->cqe_shift];
}

/// The i-th ready completion of a CQE32 ring (cqe_shift == 1), all 32 bytes.
static inline struct cnm_io_uring_cqe32 cnm_uring_cq32_at(const struct cnm_uring_rings *r, uint32_t i) {
    return *(const struct cnm_io_uring_cqe32 *)&r->cqes[((*r->cq_head + i) & r->cq_mask) << 1];
}

/// Marks `n` completions as consumed.
static inline void cnm_uring_cq_advance(struct cnm_uring_rings *r, uint32_t n) {
    __atomic_store_n(r->cq_head, *r->cq_head + n, __ATOMIC_RELEASE);
}

// MARK: - SQE preparation

static inline void cnm_prep_rw(struct cnm_io_uring_sqe *sqe, uint8_t op, int fd, uint64_t addr,
                               uint32_t len, uint64_t off, uint64_t user_data) {
    sqe->opcode = op;
    sqe->fd = fd;
    sqe->addr = addr;
    sqe->len = len;
    sqe->off = off;
    sqe->user_data = user_data;
}

/// Provided-buffer ring: the tail (overlays entry 0's resv).
static inline uint16_t cnm_pbuf_ring_tail(const void *ring) {
    return __atomic_load_n((const uint16_t *)((const char *)ring + 14), __ATOMIC_ACQUIRE);
}

/// Writes entry `tail + offset` (masked) of a provided-buffer ring; publish with
/// cnm_pbuf_ring_publish.
static inline void cnm_pbuf_ring_put(void *ring, uint16_t mask, uint16_t index, uint64_t addr,
                                     uint32_t len, uint16_t bid) {
    struct cnm_io_uring_buf *b = (struct cnm_io_uring_buf *)ring + (index & mask);
    b->addr = addr;
    b->len = len;
    b->bid = bid;
}

/// Publishes the ring entries written up to (not including) `tail`.
static inline void cnm_pbuf_ring_publish(void *ring, uint16_t tail) {
    __atomic_store_n((uint16_t *)((char *)ring + 14), tail, __ATOMIC_RELEASE);
}

#ifdef __cplusplus
}
#endif
#endif
