// Copying received payload into the buffer NCCL posted.
#ifndef CNM_NCCL_COPY_H
#define CNM_NCCL_COPY_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Copies `n` bytes like memcpy; large copies use non-temporal (streaming) stores, which
/// skip reading the destination into the cache: NCCL's receive buffer is read next by a
/// DMA engine or another core, not by this one. Ends with a store fence.
void cnm_nccl_copy_streaming(void *dst, const void *src, size_t n);

#ifdef __cplusplus
}
#endif

#endif
