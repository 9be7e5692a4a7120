#include "cnm_nccl_copy.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <emmintrin.h>

void cnm_nccl_copy_streaming(void *dst, const void *src, size_t n) {
    if (n < 32768) {
        memcpy(dst, src, n);
        return;
    }
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;  // align the destination to 16 bytes
    memcpy(d, s, head);
    d += head;
    s += head;
    n -= head;
    size_t blocks = n / 64;
    for (size_t i = 0; i < blocks; i++) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + 0));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
        __m128i e = _mm_loadu_si128((const __m128i *)(s + 48));
        _mm_stream_si128((__m128i *)(d + 0), a);
        _mm_stream_si128((__m128i *)(d + 16), b);
        _mm_stream_si128((__m128i *)(d + 32), c);
        _mm_stream_si128((__m128i *)(d + 48), e);
        s += 64;
        d += 64;
    }
    _mm_sfence();
    memcpy(d, s, n - blocks * 64);
}
#else
void cnm_nccl_copy_streaming(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
#endif
