// Umbrella header of the C shim: kernel ABI structs and constants that Swift cannot
// import from the installed (older) headers, and thin inline wrappers for macros and
// syscalls. Every symbol carries the cnm_ prefix. One header per kernel interface.
#ifndef CNETMEM_LINUX_H
#define CNETMEM_LINUX_H

#include "cnm_sys.h"
#include "cnm_uring.h"
#include "cnm_zcrx.h"
#include "cnm_xdp.h"
#include "cnm_netlink.h"
#include "cnm_devmem.h"

#endif
