#define _GNU_SOURCE
#include "cnm_uring.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_io_uring_enter
#define SYS_io_uring_enter 426
#endif
#ifndef SYS_io_uring_register
#define SYS_io_uring_register 427
#endif

/// Mirrors `struct io_uring_getevents_arg`.
struct cnm_getevents_arg {
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t min_wait_usec;
    uint64_t ts;
};

/// Mirrors `struct __kernel_timespec`.
struct cnm_kernel_timespec {
    int64_t tv_sec;
    long long tv_nsec;
};

int cnm_io_uring_setup(uint32_t entries, struct cnm_io_uring_params *params) {
    long r = syscall(SYS_io_uring_setup, entries, params);
    return r < 0 ? -errno : (int)r;
}

int cnm_io_uring_enter(int fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags) {
    long r;
    do {
        r = syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags, NULL, (size_t)0);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int)r;
}

int cnm_io_uring_enter_timeout(int fd, uint32_t to_submit, uint32_t min_complete,
                               uint32_t flags, uint64_t timeout_ns) {
    struct cnm_kernel_timespec ts = {
        .tv_sec = (int64_t)(timeout_ns / 1000000000ull),
        .tv_nsec = (long long)(timeout_ns % 1000000000ull),
    };
    struct cnm_getevents_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.ts = (uint64_t)(uintptr_t)&ts;
    long r;
    do {
        r = syscall(SYS_io_uring_enter, fd, to_submit, min_complete,
                    flags | CNM_IORING_ENTER_EXT_ARG, &arg, sizeof arg);
        // An interrupted wait has already submitted; do not submit the same SQEs twice.
        if (r < 0 && errno == EINTR) to_submit = 0;
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int)r;
}

int cnm_io_uring_register(int fd, uint32_t opcode, const void *arg, uint32_t nr_args) {
    long r;
    do {
        r = syscall(SYS_io_uring_register, fd, opcode, arg, nr_args);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int)r;
}

int cnm_uring_map(int fd, const struct cnm_io_uring_params *p, struct cnm_uring_rings *r) {
    memset(r, 0, sizeof *r);
    size_t sq_len = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
    size_t cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct cnm_io_uring_cqe);
    int single = (p->features & CNM_IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && cq_len > sq_len) sq_len = cq_len;

    void *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                    (off_t)CNM_IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) return -errno;
    void *cq = sq;
    if (!single) {
        cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                  (off_t)CNM_IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED) { int e = errno; munmap(sq, sq_len); return -e; }
    }
    size_t sqe_len = p->sq_entries * sizeof(struct cnm_io_uring_sqe);
    void *sqes = mmap(NULL, sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                      (off_t)CNM_IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
        int e = errno;
        if (!single) munmap(cq, cq_len);
        munmap(sq, sq_len);
        return -e;
    }
    char *s = sq, *c = cq;
    r->sq_head = (uint32_t *)(s + p->sq_off.head);
    r->sq_tail = (uint32_t *)(s + p->sq_off.tail);
    r->sq_flags = (uint32_t *)(s + p->sq_off.flags);
    r->sq_array = (uint32_t *)(s + p->sq_off.array);
    r->sq_mask = *(uint32_t *)(s + p->sq_off.ring_mask);
    r->sq_entries = *(uint32_t *)(s + p->sq_off.ring_entries);
    r->sqes = sqes;
    r->cq_head = (uint32_t *)(c + p->cq_off.head);
    r->cq_tail = (uint32_t *)(c + p->cq_off.tail);
    r->cq_overflow = (uint32_t *)(c + p->cq_off.overflow);
    r->cq_mask = *(uint32_t *)(c + p->cq_off.ring_mask);
    r->cq_entries = *(uint32_t *)(c + p->cq_off.ring_entries);
    r->cqes = (struct cnm_io_uring_cqe *)(c + p->cq_off.cqes);
    r->sq_local_tail = *r->sq_tail;
    r->sq_map = sq;
    r->sq_map_len = sq_len;
    r->cq_map = cq;
    r->cq_map_len = single ? 0 : cq_len;
    r->sqe_map = sqes;
    r->sqe_map_len = sqe_len;
    return 0;
}

void cnm_uring_unmap(struct cnm_uring_rings *r) {
    if (r->sqe_map) munmap(r->sqe_map, r->sqe_map_len);
    if (r->cq_map && r->cq_map != r->sq_map && r->cq_map_len) munmap(r->cq_map, r->cq_map_len);
    if (r->sq_map) munmap(r->sq_map, r->sq_map_len);
    memset(r, 0, sizeof *r);
}

void *cnm_uring_map_pbuf_ring(int fd, uint16_t bgid, size_t length, int *err) {
    off_t off = (off_t)(CNM_IORING_OFF_PBUF_RING | ((uint64_t)bgid << CNM_IORING_OFF_PBUF_SHIFT));
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
    if (p == MAP_FAILED) { *err = errno; return NULL; }
    *err = 0;
    return p;
}

int cnm_o_direct(void) { return O_DIRECT; }
