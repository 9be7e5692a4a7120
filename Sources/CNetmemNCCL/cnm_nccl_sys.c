#define _GNU_SOURCE
#include "cnm_nccl_sys.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

int cnm_nccl_accept_nonblocking(int listener) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

void cnm_nccl_set_thread_name(const char *name) {
    char buf[16];
    strncpy(buf, name, sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    pthread_setname_np(pthread_self(), buf);
}
