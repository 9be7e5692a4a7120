#include "cnm_devmem.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

_Static_assert(sizeof(struct cmsghdr) == CNM_CMSG_HDRLEN, "cmsghdr size");

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
