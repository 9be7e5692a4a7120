#define _GNU_SOURCE
#include "CNetmemMallocCounter.h"
#include <stddef.h>
#include <errno.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

/* Under a sanitizer the sanitizer owns malloc: interposing it too crashes the sanitizer's
 * own start-up (it allocates before it is ready). The counter is then simply inactive. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CNM_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CNM_SANITIZED 1
#endif

static __thread uint64_t count;
static int active;
static int64_t live;  /* blocks allocated and not freed, all threads */
static int64_t liveBytes;  /* their usable sizes */
extern size_t malloc_usable_size(void *);

uint64_t cnm_thread_malloc_count(void) { return count; }
int cnm_malloc_counter_active(void) { return active; }
int64_t cnm_live_allocations(void) { return __atomic_load_n(&live, __ATOMIC_RELAXED); }

static inline void *counted(void *p) {
    if (p) {
        __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&liveBytes, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
    }
    return p;
}

#ifndef CNM_SANITIZED
void *malloc(size_t n) { active = 1; count++; return counted(__libc_malloc(n)); }
void *calloc(size_t a, size_t b) { count++; return counted(__libc_calloc(a, b)); }
void *realloc(void *p, size_t n) {
    count++;
    int64_t before = p ? (int64_t)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (!p && q) __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    if (p && n == 0) __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
    if (q || n == 0) __atomic_add_fetch(&liveBytes, (q ? (int64_t)malloc_usable_size(q) : 0) - before, __ATOMIC_RELAXED);
    return q;
}
void free(void *p) {
    if (p) {
        __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&liveBytes, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
    }
    __libc_free(p);
}
void *memalign(size_t a, size_t n) { count++; return counted(__libc_memalign(a, n)); }
void *aligned_alloc(size_t a, size_t n) { count++; return counted(__libc_memalign(a, n)); }
int posix_memalign(void **out, size_t a, size_t n) {
    count++;
    void *p = __libc_memalign(a, n);
    if (!p) return ENOMEM;
    *out = counted(p);
    return 0;
}
#endif

/* Bytes of heap blocks live (usable sizes), all threads. */
uint64_t cnm_heap_in_use(void) { return (uint64_t)__atomic_load_n(&liveBytes, __ATOMIC_RELAXED); }
