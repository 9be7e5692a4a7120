// A wake-up word for the plugin's threads: a counter that waiters sleep on with a futex
// (FUTEX_WAIT_PRIVATE / FUTEX_WAKE_PRIVATE) until another thread bumps it.
#ifndef CNM_NCCL_SYNC_H
#define CNM_NCCL_SYNC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t sequence;
} cnm_nccl_event_t;

/// The current sequence (acquire); pass it to `cnm_nccl_event_wait`.
static inline uint32_t cnm_nccl_event_current(cnm_nccl_event_t *e) {
    return __atomic_load_n(&e->sequence, __ATOMIC_ACQUIRE);
}

/// Bumps the sequence (release) and wakes every waiter.
void cnm_nccl_event_signal(cnm_nccl_event_t *e);

/// Sleeps while the sequence still equals `seen`, at most `timeout_ns` (< 0: no limit).
/// Returns at once when it already changed. Spurious returns are possible. Mirrors
/// `futex(FUTEX_WAIT_PRIVATE)`; EINTR and EAGAIN count as a return.
void cnm_nccl_event_wait(cnm_nccl_event_t *e, uint32_t seen, int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif
