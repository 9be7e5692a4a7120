// GNU-only calls the plugin makes (not visible to Swift through Glibc without _GNU_SOURCE).
#ifndef CNM_NCCL_SYS_H
#define CNM_NCCL_SYS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Mirrors `accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)`: the fd, or -errno.
int cnm_nccl_accept_nonblocking(int listener);

/// Mirrors `pthread_setname_np(pthread_self(), name)` (the kernel keeps 15 bytes).
void cnm_nccl_set_thread_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
