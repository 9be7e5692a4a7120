// CRC-32C (Castagnoli), as used by the Netmem frame format.
#ifndef CNM_CRC32C_H
#define CNM_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Continues a CRC-32C over `len` bytes. Start with crc = 0; the result is final
/// (pre- and post-inversion are applied inside). Uses the SSE4.2 / ARMv8 CRC32
/// instructions when the CPU has them, slicing-by-8 tables otherwise.
uint32_t cnm_crc32c(uint32_t crc, const void *data, size_t len);
/// Same, always with the portable table implementation (for tests).
uint32_t cnm_crc32c_portable(uint32_t crc, const void *data, size_t len);
/// 1 when the hardware implementation is in use.
int cnm_crc32c_hardware(void);
#endif
