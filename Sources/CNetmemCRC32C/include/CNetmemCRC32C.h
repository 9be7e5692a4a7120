#ifndef CNETMEM_CRC32C_H
#define CNETMEM_CRC32C_H
/* CRC-32C (Castagnoli) of frame payloads: hardware crc32 chains and carry-less-multiply
 * folding where the CPU has them, tables elsewhere. Its own small target: the framing
 * and the NCCL plugin use it, nothing else in the shim does. */
#include "cnm_crc32c.h"
#endif
