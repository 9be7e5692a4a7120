// The devmem TCP socket ABI that the installed (6.1) headers lack (asm-generic/socket.h,
// uapi/linux/uio.h, Linux 6.18): SO_DEVMEM_* options and control messages, struct
// dmabuf_cmsg / dmabuf_token, and thin recvmsg/sendmsg wrappers with one iovec and a
// control buffer. All values are kernel ABI facts; every symbol carries the cnm_ prefix.
#ifndef CNM_DEVMEM_H
#define CNM_DEVMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CNM_SOL_SOCKET          1
#define CNM_SO_ZEROCOPY         60
#define CNM_SO_DEVMEM_LINEAR    78
#define CNM_SCM_DEVMEM_LINEAR   CNM_SO_DEVMEM_LINEAR
#define CNM_SO_DEVMEM_DMABUF    79
#define CNM_SCM_DEVMEM_DMABUF   CNM_SO_DEVMEM_DMABUF
#define CNM_SO_DEVMEM_DONTNEED  80
#define CNM_MSG_SOCK_DEVMEM     0x2000000
#define CNM_MSG_ZEROCOPY        0x4000000
#define CNM_MSG_CTRUNC          0x8
#define CNM_MSG_DONTWAIT        0x40

/// Mirrors `struct dmabuf_cmsg` (24 bytes).
struct cnm_dmabuf_cmsg {
    uint64_t frag_offset;
    uint32_t frag_size;
    uint32_t frag_token;
    uint32_t dmabuf_id;
    uint32_t flags;
};

/// Mirrors `struct dmabuf_token` (8 bytes).
struct cnm_dmabuf_token {
    uint32_t token_start;
    uint32_t token_count;
};

/// struct cmsghdr on this ABI: size_t len, int level, int type (16 bytes on LP64).
#define CNM_CMSG_HDRLEN   16
#define CNM_CMSG_ALIGNTO  8

_Static_assert(sizeof(struct cnm_dmabuf_cmsg) == 24, "struct dmabuf_cmsg is 24 bytes");
_Static_assert(sizeof(struct cnm_dmabuf_token) == 8, "struct dmabuf_token is 8 bytes");

/// Mirrors `recvmsg(2)` with one iovec and a control buffer. `*msg_flags` receives
/// msg_flags and `*control_len` the control bytes written. Returns bytes or -errno
/// (EINTR retried).
long cnm_recvmsg_control(int fd, void *buf, size_t len, void *control, size_t control_cap,
                         int flags, int *msg_flags, size_t *control_len);
/// Mirrors `sendmsg(2)` with one iovec whose base is `iov_base` (for devmem TX this is an
/// offset into the dma-buf, not an address) and a control buffer. Returns bytes or -errno.
long cnm_sendmsg_control(int fd, uint64_t iov_base, size_t len, const void *control,
                         size_t control_len, int flags);

#ifdef __cplusplus
}
#endif
#endif
