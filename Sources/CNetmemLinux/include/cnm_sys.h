// Memory, threads and small syscall wrappers used by the Netmem core.
#ifndef CNM_SYS_H
#define CNM_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// MAP_* / MADV_* / MFD_* / F_SEAL_* values, so Swift need not rely on which of them the
// installed headers export as importable macros.
#define CNM_MAP_HUGETLB      0x40000
#define CNM_MAP_HUGE_SHIFT   26
#define CNM_MAP_HUGE_2MB     (21 << CNM_MAP_HUGE_SHIFT)
#define CNM_MAP_POPULATE     0x08000
#define CNM_MAP_NORESERVE    0x04000
#define CNM_MADV_HUGEPAGE    14
#define CNM_MFD_CLOEXEC       0x0001U
#define CNM_MFD_ALLOW_SEALING 0x0002U
#define CNM_MFD_HUGETLB       0x0004U
#define CNM_MFD_HUGE_2MB      (21U << 26)
#define CNM_F_ADD_SEALS       1033
#define CNM_F_GET_SEALS       1034
#define CNM_F_SEAL_SEAL       0x0001
#define CNM_F_SEAL_SHRINK     0x0002
#define CNM_F_SEAL_GROW       0x0004

/// A per-thread token: the address of a thread-local byte. Two calls return the same
/// value exactly when they run on the same thread. Costs one TLS address computation.
extern __thread unsigned char cnm_thread_marker;
static inline uintptr_t cnm_thread_token(void) { return (uintptr_t)&cnm_thread_marker; }

/// Per-area chunk metadata, indexed by area identifier: the base of the area's array of
/// 64-bit metadata words, or NULL. Written when an area registers or goes away.
extern void *cnm_area_meta_table[65536];
static inline void *cnm_area_meta(uint16_t id) {
    return __atomic_load_n(&cnm_area_meta_table[id], __ATOMIC_ACQUIRE);
}
static inline void cnm_area_meta_set(uint16_t id, void *meta) {
    __atomic_store_n(&cnm_area_meta_table[id], meta, __ATOMIC_RELEASE);
}

/// Tell ThreadSanitizer that a lock at `addr` was taken / is about to be released.
/// Empty functions unless this file is compiled with -fsanitize=thread. The standard
/// library's Mutex waits on a futex directly, which ThreadSanitizer cannot see.
void cnm_sanitizer_acquire(const void *addr);
void cnm_sanitizer_release(const void *addr);

/// Spin-wait hint (PAUSE on x86, YIELD on arm64).
static inline void cnm_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Mirrors `memfd_create(2)`. Returns the fd or -errno.
int cnm_memfd_create(const char *name, unsigned int flags);

/// Mirrors `setsockopt(2)`; returns the (possibly positive) result or -errno (EINTR
/// retried). The devmem SO_DEVMEM_DONTNEED option returns the number of fragments freed.
int cnm_setsockopt(int fd, int level, int name, const void *value, unsigned int len);

/* accept4(2) with SOCK_CLOEXEC, and SOCK_NONBLOCK when `nonblocking` (a GNU call the
   Glibc module does not show): the new socket's fd, or -1 with errno set. */
int cnm_accept_cloexec(int listener, int nonblocking);

/* eventfd(2), close-on-exec and non-blocking: the fd, or -1 with errno set. */
int cnm_eventfd(void);

/// Mirrors `mmap(2)`. Returns the address, or NULL with `*err` set to errno.
void *cnm_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset, int *err);

/// Mirrors `fcntl(fd, F_ADD_SEALS, seals)` / `F_GET_SEALS`. Returns >= 0 or -errno.
int cnm_fcntl_add_seals(int fd, int seals);
int cnm_fcntl_get_seals(int fd);

/// The soft RLIMIT_MEMLOCK in bytes; INT64_MAX when unlimited, -1 when unknown.
int64_t cnm_memlock_limit(void);

/// Monotonic clock in nanoseconds.
uint64_t cnm_now_ns(void);
/// CPU time (user + system) of the whole process in nanoseconds.
uint64_t cnm_process_cpu_ns(void);
/// CPU time of the calling thread in nanoseconds.
uint64_t cnm_thread_cpu_ns(void);
/// Pins the calling thread to one CPU: `sched_setaffinity(0, {cpu})`. Returns 0 or -errno.
int cnm_pin_thread(int cpu);
/// Names the calling thread (at most 15 bytes are kept): `pthread_setname_np(3)`.
void cnm_set_thread_name(const char *name);
/// The CPU the calling thread runs on now: `sched_getcpu(3)`, or -errno.
int cnm_current_cpu(void);

/// Compiler barrier that keeps a value alive in benchmarks.
static inline void cnm_black_hole(uint64_t v) { __asm__ __volatile__("" : : "r"(v) : "memory"); }

#ifdef __cplusplus
}
#endif
#endif
