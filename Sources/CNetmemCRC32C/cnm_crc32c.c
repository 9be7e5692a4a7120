#include "cnm_crc32c.h"
#include <pthread.h>
#include <string.h>

// Reflected Castagnoli polynomial.
#define POLY 0x82F63B78u

static uint32_t table[8][256];
// Each table or constant set is built once, on first use, by pthread_once: two threads
// that need it first at the same moment must not both write it.
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int s = 1; s < 8; s++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[s][n] = c;
        }
    }
}

static uint32_t portable_raw(uint32_t c, const unsigned char *p, size_t len) {
    pthread_once(&table_once, build_tables);
    while (len && ((uintptr_t)p & 7)) { c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8); len--; }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
            table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
            table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8; len -= 8;
    }
    while (len--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

uint32_t cnm_crc32c_portable(uint32_t crc, const void *data, size_t len) {
    return ~portable_raw(~crc, data, len);
}

// MARK: Polynomial arithmetic modulo P, for the constants that shift a CRC over zeros.
//
// A 32-bit value is a polynomial of degree < 32 in reflected order: bit 31 is x^0,
// bit 0 is x^31. The raw CRC of A followed by n bytes B is
//   crc(A || B) = crc(A) * x^(8n) mod P  xor  crc0(B),
// where crc0(B) starts from 0. Three chains over adjacent blocks are joined this way.

/// a * b mod P.
static uint32_t mul_mod_p(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (uint32_t bit = 1u << 31; bit != 0; bit >>= 1) {
        if (a & bit) product ^= b;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;  // b *= x
    }
    return product;
}

/// x^e mod P.
static uint32_t x_pow_mod_p(uint64_t e) {
    uint32_t result = 1u << 31;  // 1
    uint32_t square = 1u << 30;  // x
    while (e) {
        if (e & 1) result = mul_mod_p(result, square);
        square = mul_mod_p(square, square);
        e >>= 1;
    }
    return result;
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("sse4.2")))
static uint32_t hw_raw(uint32_t c, const unsigned char *p, size_t len) {
    uint64_t c64 = c;
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c64 = __builtin_ia32_crc32di(c64, w); p += 8; len -= 8; }
    uint32_t c32 = (uint32_t)c64;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
static int have_hw(void) { return __builtin_cpu_supports("sse4.2"); }
static int have_clmul(void) { return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul"); }

// Bytes per chain in one round of the three-chain loop: long rounds for bulk data, short
// rounds for what is left, one chain for the last few hundred bytes.
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

/// The multipliers that shift a chain's CRC over one block (k1) and two blocks (k2) of
/// zeros, in the form `shift` below wants: x^(8n - 33) mod P.
struct shift_constants { uint32_t k1, k2; };
static struct shift_constants long_shift, short_shift;
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static void build_shift_constants(void) {
    long_shift.k1 = x_pow_mod_p(8ull * LONG_BLOCK - 33);
    long_shift.k2 = x_pow_mod_p(8ull * 2 * LONG_BLOCK - 33);
    short_shift.k1 = x_pow_mod_p(8ull * SHORT_BLOCK - 33);
    short_shift.k2 = x_pow_mod_p(8ull * 2 * SHORT_BLOCK - 33);
}

/// crc(A) xor-shifted over 2 blocks, crc(B) over 1 block, joined with crc(C):
/// crc32(0, D) = D * x^32 mod P for a 64-bit D, and the carry-less product of two
/// reflected 32-bit values is D / x in the instruction's 64-bit reflected order, hence the
/// exponents 8n - 33.
__attribute__((target("sse4.2,pclmul")))
static inline uint32_t join3(uint64_t a, uint64_t b, uint64_t c, struct shift_constants k) {
    __m128i pa = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)a), _mm_cvtsi32_si128((int)k.k2), 0);
    __m128i pb = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)(uint32_t)b), _mm_cvtsi32_si128((int)k.k1), 0);
    uint64_t d = (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(pa, pb));
    return (uint32_t)__builtin_ia32_crc32di(0, d) ^ (uint32_t)c;
}

/// Three crc32 chains over three adjacent blocks of `block` bytes at once (the
/// instruction's latency is three cycles and its throughput one per cycle), joined with
/// carry-less multiplies by `k`; repeated while three blocks are left. Inlined with a
/// constant `block`, so each size gets its own loop.
__attribute__((target("sse4.2,pclmul"), always_inline))
static inline uint32_t hw3_blocks(uint32_t crc, const unsigned char **pp, size_t *lenp, size_t block,
                                  const struct shift_constants *k) {
    const unsigned char *p = *pp;
    size_t len = *lenp;
    while (len >= 3 * block) {
        uint64_t a = crc, b = 0, c = 0;
        const unsigned char *end = p + block;
        do {
            uint64_t wa, wb, wc;
            memcpy(&wa, p, 8);
            memcpy(&wb, p + block, 8);
            memcpy(&wc, p + 2 * block, 8);
            a = __builtin_ia32_crc32di(a, wa);
            b = __builtin_ia32_crc32di(b, wb);
            c = __builtin_ia32_crc32di(c, wc);
            p += 8;
        } while (p < end);
        crc = join3(a, b, c, *k);
        p += 2 * block;
        len -= 3 * block;
    }
    *pp = p;
    *lenp = len;
    return crc;
}

/// Long blocks while they last, then short ones, then one chain for the rest.
__attribute__((target("sse4.2,pclmul")))
static uint32_t hw3_raw(uint32_t crc, const unsigned char *p, size_t len) {
    pthread_once(&shift_once, build_shift_constants);
    crc = hw3_blocks(crc, &p, &len, LONG_BLOCK, &long_shift);
    crc = hw3_blocks(crc, &p, &len, SHORT_BLOCK, &short_shift);
    return hw_raw(crc, p, len);
}

// MARK: Folding with VPCLMULQDQ (AVX-512): four 512-bit accumulators, 256 bytes a round.
//
// A 16-byte block A (loaded little-endian: qword 0 holds its first 8 bytes, the
// high-degree half H; qword 1 the low half L) standing F bits before the end of the data
// contributes A * x^F = H * x^(64+F) + L * x^F. Folding replaces it by
// H * (x^(F+64) mod P) + L * (x^F mod P), a block of under 96 bits that stands F bits
// later and is xored into the data there. A carry-less product of a 64-bit half and a
// 32-bit constant, read as a 128-bit block, is the polynomial product times x^33 (as in
// join3), so the constants are x^(F+31) and x^(F-33). Each 128-bit lane of a 512-bit
// register folds on its own. At the end the accumulators fold onto the last one, its four
// lanes onto the last lane, and that block's CRC contribution, block * x^32 mod P, is two
// crc32 instructions over its 16 bytes.

/// Multipliers that fold a 128-bit block over `bytes` bytes: qword 0 x^(8b+31), qword 1
/// x^(8b-33), both mod P.
static __m128i fold_constants(uint64_t bytes) {
    return _mm_set_epi64x((long long)x_pow_mod_p(8 * bytes - 33), (long long)x_pow_mod_p(8 * bytes + 31));
}

static __m128i fold_by[4];  // 256, 192, 128, 64 bytes (whole registers)
static __m128i lane_by[3];  // 48, 32, 16 bytes (lanes)
static pthread_once_t fold_once = PTHREAD_ONCE_INIT;

static void build_fold_constants(void) {
    fold_by[0] = fold_constants(256);
    fold_by[1] = fold_constants(192);
    fold_by[2] = fold_constants(128);
    fold_by[3] = fold_constants(64);
    lane_by[0] = fold_constants(48);
    lane_by[1] = fold_constants(32);
    lane_by[2] = fold_constants(16);
}

static int have_fold512(void) {
    return have_clmul() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq");
}

__attribute__((target("avx512f,vpclmulqdq")))
static inline __m512i fold512(__m512i x, __m512i k, __m512i data) {
    __m512i hi = _mm512_clmulepi64_epi128(x, k, 0x00);
    __m512i lo = _mm512_clmulepi64_epi128(x, k, 0x11);
    return _mm512_ternarylogic_epi64(hi, lo, data, 0x96);  // hi ^ lo ^ data
}

__attribute__((target("sse4.2,pclmul")))
static inline __m128i fold128(__m128i x, __m128i k, __m128i data) {
    __m128i hi = _mm_clmulepi64_si128(x, k, 0x00);
    __m128i lo = _mm_clmulepi64_si128(x, k, 0x11);
    return _mm_xor_si128(_mm_xor_si128(hi, lo), data);
}

/// Below this many bytes the three chains are as fast (the end of the fold costs about
/// as much as a few rounds).
#define FOLD_MIN 1024

__attribute__((target("avx512f,vpclmulqdq,sse4.2,pclmul")))
static uint32_t fold512_raw(uint32_t crc, const unsigned char *p, size_t len) {
    if (len < FOLD_MIN) return hw3_raw(crc, p, len);
    pthread_once(&fold_once, build_fold_constants);
    __m512i x0 = _mm512_loadu_si512(p);
    __m512i x1 = _mm512_loadu_si512(p + 64);
    __m512i x2 = _mm512_loadu_si512(p + 128);
    __m512i x3 = _mm512_loadu_si512(p + 192);
    x0 = _mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
    p += 256;
    len -= 256;
    const __m512i k = _mm512_broadcast_i32x4(fold_by[0]);
    while (len >= 256) {
        x0 = fold512(x0, k, _mm512_loadu_si512(p));
        x1 = fold512(x1, k, _mm512_loadu_si512(p + 64));
        x2 = fold512(x2, k, _mm512_loadu_si512(p + 128));
        x3 = fold512(x3, k, _mm512_loadu_si512(p + 192));
        p += 256;
        len -= 256;
    }
    x3 = fold512(x0, _mm512_broadcast_i32x4(fold_by[1]), x3);
    x3 = fold512(x1, _mm512_broadcast_i32x4(fold_by[2]), x3);
    x3 = fold512(x2, _mm512_broadcast_i32x4(fold_by[3]), x3);
    __m128i a = _mm512_extracti32x4_epi32(x3, 3);
    a = fold128(_mm512_extracti32x4_epi32(x3, 0), lane_by[0], a);
    a = fold128(_mm512_extracti32x4_epi32(x3, 1), lane_by[1], a);
    a = fold128(_mm512_extracti32x4_epi32(x3, 2), lane_by[2], a);
    uint64_t c = __builtin_ia32_crc32di(0, (uint64_t)_mm_cvtsi128_si64(a));
    c = __builtin_ia32_crc32di(c, (uint64_t)_mm_extract_epi64(a, 1));
    return hw3_raw((uint32_t)c, p, len);
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static uint32_t hw_raw(uint32_t c, const unsigned char *p, size_t len) {
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c = __crc32cd(c, w); p += 8; len -= 8; }
    while (len--) c = __crc32cb(c, *p++);
    return c;
}
static int have_hw(void) { return 1; }
static int have_clmul(void) { return 0; }
static uint32_t hw3_raw(uint32_t c, const unsigned char *p, size_t len) { return hw_raw(c, p, len); }
static int have_fold512(void) { return 0; }
static uint32_t fold512_raw(uint32_t c, const unsigned char *p, size_t len) { return hw_raw(c, p, len); }
#else
static uint32_t hw_raw(uint32_t c, const unsigned char *p, size_t len) { return portable_raw(c, p, len); }
static int have_hw(void) { return 0; }
static int have_clmul(void) { return 0; }
static uint32_t hw3_raw(uint32_t c, const unsigned char *p, size_t len) { return portable_raw(c, p, len); }
static int have_fold512(void) { return 0; }
static uint32_t fold512_raw(uint32_t c, const unsigned char *p, size_t len) { return portable_raw(c, p, len); }
#endif

int cnm_crc32c_hardware(void) { return have_hw(); }

/// 0 tables, 1 one crc32 chain, 2 three chains joined by carry-less multiplies, 3 folding
/// with VPCLMULQDQ (three chains for short data and the tail).
static int implementation(void) {
    static int chosen = -1;
    int i = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (i < 0) {
        i = have_fold512() ? 3 : have_clmul() ? 2 : have_hw() ? 1 : 0;
        __atomic_store_n(&chosen, i, __ATOMIC_RELAXED);
    }
    return i;
}

int cnm_crc32c_implementation(void) { return implementation(); }

uint32_t cnm_crc32c(uint32_t crc, const void *data, size_t len) {
    switch (implementation()) {
    case 3: return ~fold512_raw(~crc, data, len);
    case 2: return ~hw3_raw(~crc, data, len);
    case 1: return ~hw_raw(~crc, data, len);
    default: return ~portable_raw(~crc, data, len);
    }
}

uint32_t cnm_crc32c_three_chains(uint32_t crc, const void *data, size_t len) {
    return have_clmul() ? ~hw3_raw(~crc, data, len) : cnm_crc32c_single_chain(crc, data, len);
}

uint32_t cnm_crc32c_single_chain(uint32_t crc, const void *data, size_t len) {
    return have_hw() ? ~hw_raw(~crc, data, len) : ~portable_raw(~crc, data, len);
}

