// Umbrella header of the NCCL network-plugin ABI shim (cnm_nccl_ prefix).
#ifndef CNETMEM_NCCL_H
#define CNETMEM_NCCL_H

#include "cnm_nccl_net.h"
#include "cnm_nccl_log.h"
#include "cnm_nccl_sync.h"
#include "cnm_nccl_copy.h"

#endif
