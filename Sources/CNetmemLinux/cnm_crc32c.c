#include "cnm_crc32c.h"
#include <string.h>

// Reflected Castagnoli polynomial.
#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int table_ready;

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
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static uint32_t portable_raw(uint32_t c, const unsigned char *p, size_t len) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_tables();
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
static int shift_ready;

static void build_shift_constants(void) {
    long_shift.k1 = x_pow_mod_p(8ull * LONG_BLOCK - 33);
    long_shift.k2 = x_pow_mod_p(8ull * 2 * LONG_BLOCK - 33);
    short_shift.k1 = x_pow_mod_p(8ull * SHORT_BLOCK - 33);
    short_shift.k2 = x_pow_mod_p(8ull * 2 * SHORT_BLOCK - 33);
    __atomic_store_n(&shift_ready, 1, __ATOMIC_RELEASE);
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

/// Three crc32 chains over three adjacent blocks at once (the instruction's latency is
/// three cycles and its throughput one per cycle), joined with carry-less multiplies.
__attribute__((target("sse4.2,pclmul")))
static uint32_t hw3_raw(uint32_t crc, const unsigned char *p, size_t len) {
    if (!__atomic_load_n(&shift_ready, __ATOMIC_ACQUIRE)) build_shift_constants();
    while (len >= 3 * LONG_BLOCK) {
        uint64_t a = crc, b = 0, c = 0;
        const unsigned char *end = p + LONG_BLOCK;
        do {
            uint64_t wa, wb, wc;
            memcpy(&wa, p, 8);
            memcpy(&wb, p + LONG_BLOCK, 8);
            memcpy(&wc, p + 2 * LONG_BLOCK, 8);
            a = __builtin_ia32_crc32di(a, wa);
            b = __builtin_ia32_crc32di(b, wb);
            c = __builtin_ia32_crc32di(c, wc);
            p += 8;
        } while (p < end);
        crc = join3(a, b, c, long_shift);
        p += 2 * LONG_BLOCK;
        len -= 3 * LONG_BLOCK;
    }
    while (len >= 3 * SHORT_BLOCK) {
        uint64_t a = crc, b = 0, c = 0;
        const unsigned char *end = p + SHORT_BLOCK;
        do {
            uint64_t wa, wb, wc;
            memcpy(&wa, p, 8);
            memcpy(&wb, p + SHORT_BLOCK, 8);
            memcpy(&wc, p + 2 * SHORT_BLOCK, 8);
            a = __builtin_ia32_crc32di(a, wa);
            b = __builtin_ia32_crc32di(b, wb);
            c = __builtin_ia32_crc32di(c, wc);
            p += 8;
        } while (p < end);
        crc = join3(a, b, c, short_shift);
        p += 2 * SHORT_BLOCK;
        len -= 3 * SHORT_BLOCK;
    }
    return hw_raw(crc, p, len);
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
#else
static uint32_t hw_raw(uint32_t c, const unsigned char *p, size_t len) { return portable_raw(c, p, len); }
static int have_hw(void) { return 0; }
static int have_clmul(void) { return 0; }
static uint32_t hw3_raw(uint32_t c, const unsigned char *p, size_t len) { return portable_raw(c, p, len); }
#endif

int cnm_crc32c_hardware(void) { return have_hw(); }

/// 0 tables, 1 one crc32 chain, 2 three chains joined by carry-less multiplies.
static int implementation(void) {
    static int chosen = -1;
    int i = __atomic_load_n(&chosen, __ATOMIC_RELAXED);
    if (i < 0) {
        i = have_clmul() ? 2 : have_hw() ? 1 : 0;
        __atomic_store_n(&chosen, i, __ATOMIC_RELAXED);
    }
    return i;
}

int cnm_crc32c_implementation(void) { return implementation(); }

uint32_t cnm_crc32c(uint32_t crc, const void *data, size_t len) {
    switch (implementation()) {
    case 2: return ~hw3_raw(~crc, data, len);
    case 1: return ~hw_raw(~crc, data, len);
    default: return ~portable_raw(~crc, data, len);
    }
}

uint32_t cnm_crc32c_single_chain(uint32_t crc, const void *data, size_t len) {
    return have_hw() ? ~hw_raw(~crc, data, len) : ~portable_raw(~crc, data, len);
}

