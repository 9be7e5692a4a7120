#define _GNU_SOURCE
#include "cnm_uring.h"
#include <errno.h>
#include <fcntl.h>
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

int cnm_io_uring_setup(uint32_t entries, struct cnm_io_uring_params *params) {
    long r = syscall(SYS_io_uring_setup, entries, params);
    return r < 0 ? -errno : (int)r;
}

int cnm_io_uring_enter(int fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags) {
    return cnm_io_uring_enter2(fd, to_submit, min_complete, flags, NULL, 0);
}

int cnm_io_uring_enter2(int fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags,
                        const void *arg, size_t arg_size) {
    long r;
    do {
        r = syscall(SYS_io_uring_enter, fd, to_submit, min_complete, flags, arg, arg_size);
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

int cnm_o_direct(void) { return O_DIRECT; }
