#include "cnm_netlink.h"
#include <errno.h>
#include <sys/socket.h>

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
