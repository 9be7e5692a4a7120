#define _GNU_SOURCE
#include "cnm_sys.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CNM_TSAN 1
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif
#endif

void cnm_sanitizer_acquire(const void *addr) {
#ifdef CNM_TSAN
    __tsan_acquire((void *)addr);
#else
    (void)addr;
#endif
}

void cnm_sanitizer_release(const void *addr) {
#ifdef CNM_TSAN
    __tsan_release((void *)addr);
#else
    (void)addr;
#endif
}

__thread unsigned char cnm_thread_marker;
void *cnm_area_meta_table[65536];

int cnm_memfd_create(const char *name, unsigned int flags) {
    long r = syscall(SYS_memfd_create, name, flags);
    return r < 0 ? -errno : (int)r;
}

void *cnm_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset, int *err) {
    void *p = mmap(addr, length, prot, flags, fd, offset);
    if (p == MAP_FAILED) { *err = errno; return NULL; }
    *err = 0;
    return p;
}

int cnm_fcntl_add_seals(int fd, int seals) {
    int r;
    do { r = fcntl(fd, CNM_F_ADD_SEALS, seals); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

int cnm_fcntl_get_seals(int fd) {
    int r = fcntl(fd, CNM_F_GET_SEALS);
    return r < 0 ? -errno : r;
}

static uint64_t ts_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
uint64_t cnm_now_ns(void) { return ts_ns(CLOCK_MONOTONIC); }
uint64_t cnm_process_cpu_ns(void) { return ts_ns(CLOCK_PROCESS_CPUTIME_ID); }
uint64_t cnm_thread_cpu_ns(void) { return ts_ns(CLOCK_THREAD_CPUTIME_ID); }

int cnm_pin_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) < 0 ? -errno : 0;
}

int cnm_current_cpu(void) {
    int c = sched_getcpu();
    return c < 0 ? -errno : c;
}

int64_t cnm_memlock_limit(void) {
    struct rlimit r;
    if (getrlimit(RLIMIT_MEMLOCK, &r) != 0) return -1;
    return r.rlim_cur == RLIM_INFINITY ? INT64_MAX : (int64_t)r.rlim_cur;
}

int cnm_accept_cloexec(int listener, int nonblocking) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0));
}

int cnm_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int cnm_setsockopt(int fd, int level, int name, const void *value, unsigned int len) {
    int r;
    do { r = setsockopt(fd, level, name, value, len); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

void cnm_set_thread_name(const char *name) {
    char buf[16];
    strncpy(buf, name, sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    pthread_setname_np(pthread_self(), buf);
}
