#include "cnm_nccl_sync.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void cnm_nccl_event_signal(cnm_nccl_event_t *e) {
    __atomic_add_fetch(&e->sequence, 1, __ATOMIC_RELEASE);
    syscall(SYS_futex, &e->sequence, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}

void cnm_nccl_event_wait(cnm_nccl_event_t *e, uint32_t seen, int64_t timeout_ns) {
    if (__atomic_load_n(&e->sequence, __ATOMIC_ACQUIRE) != seen) return;
    struct timespec ts;
    struct timespec *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tp = &ts;
    }
    syscall(SYS_futex, &e->sequence, FUTEX_WAIT_PRIVATE, seen, tp, NULL, 0);
}
