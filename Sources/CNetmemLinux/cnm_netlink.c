#define _GNU_SOURCE
#include "cnm_netlink.h"
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
