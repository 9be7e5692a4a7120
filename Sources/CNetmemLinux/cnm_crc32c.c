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

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t hw_raw(uint32_t c, const unsigned char *p, size_t len) {
    uint64_t c64 = c;
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c64 = __builtin_ia32_crc32di(c64, w); p += 8; len -= 8; }
    uint32_t c32 = (uint32_t)c64;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
static int have_hw(void) { return __builtin_cpu_supports("sse4.2"); }
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static uint32_t hw_raw(uint32_t c, const unsigned char *p, size_t len) {
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c = __crc32cd(c, w); p += 8; len -= 8; }
    while (len--) c = __crc32cb(c, *p++);
    return c;
}
static int have_hw(void) { return 1; }
#else
static uint32_t hw_raw(uint32_t c, const unsigned char *p, size_t len) { return portable_raw(c, p, len); }
static int have_hw(void) { return 0; }
#endif

int cnm_crc32c_hardware(void) { return have_hw(); }

uint32_t cnm_crc32c(uint32_t crc, const void *data, size_t len) {
    static int hw = -1;
    int h = __atomic_load_n(&hw, __ATOMIC_RELAXED);
    if (h < 0) { h = have_hw(); __atomic_store_n(&hw, h, __ATOMIC_RELAXED); }
    return h ? ~hw_raw(~crc, data, len) : ~portable_raw(~crc, data, len);
}
