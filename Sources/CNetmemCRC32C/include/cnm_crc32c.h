// CRC-32C (Castagnoli), as used by the Netmem frame format.
#ifndef CNM_CRC32C_H
#define CNM_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Continues a CRC-32C over `len` bytes. Start with crc = 0; the result is final
/// (pre- and post-inversion are applied inside). Picks, once, the fastest the CPU allows:
/// folding 256 bytes a round with AVX-512 VPCLMULQDQ (from 1 KiB; shorter data and the
/// tail as below); else three interleaved SSE4.2 crc32 chains joined with PCLMULQDQ
/// carry-less multiplies; else one SSE4.2 / ARMv8 crc32 chain; else slicing-by-8 tables.
uint32_t cnm_crc32c(uint32_t crc, const void *data, size_t len);
/// Same, always with three crc32 chains (one chain without PCLMULQDQ), for tests and
/// benchmarks on CPUs where cnm_crc32c folds.
uint32_t cnm_crc32c_three_chains(uint32_t crc, const void *data, size_t len);
/// Same, always with one crc32 instruction chain (tables without the instruction): the
/// implementation before the three-chain one, for tests and benchmarks.
uint32_t cnm_crc32c_single_chain(uint32_t crc, const void *data, size_t len);
/// Same, always with the portable table implementation (for tests).
uint32_t cnm_crc32c_portable(uint32_t crc, const void *data, size_t len);
/// 1 when the CPU has a crc32 instruction.
int cnm_crc32c_hardware(void);
/// What cnm_crc32c uses: 3 VPCLMULQDQ folding, 2 three crc32 chains + carry-less
/// multiply, 1 one crc32 chain, 0 tables.
int cnm_crc32c_implementation(void);
#endif
