#define _GNU_SOURCE
#include "cnm_netlink.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <net/if.h>

_Static_assert(sizeof(struct cnm_dmabuf_cmsg) == 24, "struct dmabuf_cmsg is 24 bytes");
_Static_assert(sizeof(struct cnm_dmabuf_token) == 8, "struct dmabuf_token is 8 bytes");
_Static_assert(sizeof(struct cnm_zcrx_rqe) == 16, "struct io_uring_zcrx_rqe is 16 bytes");
_Static_assert(sizeof(struct cnm_zcrx_cqe) == 16, "struct io_uring_zcrx_cqe is 16 bytes");
_Static_assert(sizeof(struct cnm_zcrx_offsets) == 32, "struct io_uring_zcrx_offsets is 32 bytes");
_Static_assert(sizeof(struct cnm_zcrx_area_reg) == 48, "struct io_uring_zcrx_area_reg is 48 bytes");
_Static_assert(sizeof(struct cnm_uring_region_desc) == 64, "struct io_uring_region_desc is 64 bytes");
_Static_assert(sizeof(struct cnm_zcrx_ifq_reg) == 96, "struct io_uring_zcrx_ifq_reg is 96 bytes");
_Static_assert(sizeof(struct cnm_zc_uring_params) == 120, "struct io_uring_params is 120 bytes");
_Static_assert(sizeof(struct cnm_zc_sqe) == 64, "struct io_uring_sqe is 64 bytes");
_Static_assert(sizeof(struct cnm_zc_cqe32) == 32, "a CQE32 entry is 32 bytes");
_Static_assert(offsetof(struct cnm_zc_sqe, zcrx_ifq_idx) == 44, "sqe zcrx_ifq_idx at 44");
_Static_assert(sizeof(struct cmsghdr) == CNM_CMSG_HDRLEN, "cmsghdr size");

int cnm_zc_uring_setup(uint32_t entries, struct cnm_zc_uring_params *p) {
    long r = syscall(__NR_io_uring_setup, entries, p);
    return r < 0 ? -errno : (int)r;
}

int cnm_zc_uring_register(int fd, unsigned int opcode, void *arg, unsigned int nr_args) {
    long r;
    do { r = syscall(__NR_io_uring_register, fd, opcode, arg, nr_args); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int)r;
}

int cnm_zc_uring_enter(int fd, unsigned int to_submit, unsigned int min_complete, unsigned int flags) {
    long r;
    do { r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int)r;
}

long cnm_nl_send(int fd, const void *buf, size_t len) {
    ssize_t r;
    do { r = send(fd, buf, len, 0); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (long)r;
}

long cnm_nl_recv(int fd, void *buf, size_t len, int flags) {
    ssize_t r;
    do { r = recv(fd, buf, len, flags); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (long)r;
}

long cnm_recvmsg_control(int fd, void *buf, size_t len, void *control, size_t control_cap,
                         int flags, int *msg_flags, size_t *control_len) {
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = control_cap;
    ssize_t r;
    do { r = recvmsg(fd, &msg, flags); } while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    *msg_flags = msg.msg_flags;
    *control_len = msg.msg_controllen;
    return (long)r;
}

long cnm_sendmsg_control(int fd, uint64_t iov_base, size_t len, const void *control,
                         size_t control_len, int flags) {
    struct iovec iov = { .iov_base = (void *)(uintptr_t)iov_base, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (void *)control;
    msg.msg_controllen = control_len;
    ssize_t r;
    do { r = sendmsg(fd, &msg, flags); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (long)r;
}

int cnm_setsockopt(int fd, int level, int name, const void *value, unsigned int len) {
    int r;
    do { r = setsockopt(fd, level, name, value, len); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

// io_uring_probe is 16 bytes of header followed by 8-byte entries.
struct probe_buf {
    uint8_t last_op, ops_len;
    uint16_t resv;
    uint32_t resv2[3];
    struct { uint8_t op, resv; uint16_t flags; uint32_t resv2; } ops[256];
};

struct buf_reg {
    uint64_t ring_addr;
    uint32_t ring_entries;
    uint16_t bgid, flags;
    uint64_t resv[3];
};

static int try_pbuf(int ring, uint16_t bgid, uint16_t flags) {
    size_t size = 4096;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return errno;
    struct buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = 8;
    reg.bgid = bgid;
    reg.flags = flags;
    int r = cnm_zc_uring_register(ring, CNM_ZC_IORING_REGISTER_PBUF_RING, &reg, 1);
    if (r == 0) {
        struct buf_reg un;
        memset(&un, 0, sizeof un);
        un.bgid = bgid;
        (void)cnm_zc_uring_register(ring, CNM_ZC_IORING_UNREGISTER_PBUF_RING, &un, 1);
    }
    munmap(mem, size);
    return r < 0 ? -r : 0;
}

void cnm_probe_uring(struct cnm_uring_caps *caps) {
    memset(caps, 0, sizeof *caps);
    struct cnm_zc_uring_params p;
    memset(&p, 0, sizeof p);
    int ring = cnm_zc_uring_setup(4, &p);
    if (ring < 0) {
        caps->setup_errno = -ring;
        caps->probe_errno = -ring;
        caps->pbuf_ring_errno = -ring;
        caps->pbuf_inc_errno = -ring;
        caps->zcrx_ring_errno = -ring;
        return;
    }
    caps->features = p.features;
    struct probe_buf probe;
    memset(&probe, 0, sizeof probe);
    int r = cnm_zc_uring_register(ring, CNM_ZC_IORING_REGISTER_PROBE, &probe, 256);
    if (r < 0) {
        caps->probe_errno = -r;
    } else {
        caps->last_op = probe.last_op;
        for (unsigned i = 0; i < probe.ops_len && i < 256; i++)
            if (probe.ops[i].flags & 1 /* IO_URING_OP_SUPPORTED */)
                caps->op_supported[probe.ops[i].op] = 1;
    }
    caps->pbuf_ring_errno = try_pbuf(ring, 1, 0);
    caps->pbuf_inc_errno = try_pbuf(ring, 2, CNM_ZC_IOU_PBUF_RING_INC);
    close(ring);

    struct cnm_zc_uring_params zp;
    memset(&zp, 0, sizeof zp);
    zp.flags = CNM_ZC_IORING_SETUP_SINGLE_ISSUER | CNM_ZC_IORING_SETUP_DEFER_TASKRUN | CNM_ZC_IORING_SETUP_CQE32;
    int zr = cnm_zc_uring_setup(4, &zp);
    if (zr < 0) caps->zcrx_ring_errno = -zr; else close(zr);
}

int cnm_probe_dlopen(const char *name, char *err, size_t err_cap) {
    void *h = dlopen(name, RTLD_LAZY | RTLD_LOCAL);
    if (h == NULL) {
        if (err != NULL && err_cap > 0) {
            const char *e = dlerror();
            strncpy(err, e ? e : "unknown dlopen error", err_cap - 1);
            err[err_cap - 1] = 0;
        }
        return 0;
    }
    dlclose(h);
    if (err != NULL && err_cap > 0) err[0] = 0;
    return 1;
}
