// Counts heap allocations made by the calling thread, for `netmem bench`'s
// "heap allocations per fast-path pair" figure. Linked into the netmem executable only:
// it interposes malloc and friends and forwards them to glibc's implementations.
#ifndef CNETMEM_MALLOC_COUNTER_H
#define CNETMEM_MALLOC_COUNTER_H
#include <stdint.h>
/// Allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) made by
/// this thread since it started. Always 0 if interposition is not in effect.
uint64_t cnm_thread_malloc_count(void);
/// 1 when the interposer is linked and active.
int cnm_malloc_counter_active(void);
/// Heap blocks allocated and not yet freed, across all threads (for leak checks).
int64_t cnm_live_allocations(void);
/// Bytes of the live heap blocks (their usable sizes), across all threads.
uint64_t cnm_heap_in_use(void);
#endif
