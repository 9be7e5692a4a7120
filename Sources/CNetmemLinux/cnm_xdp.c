#define _GNU_SOURCE
#include "cnm_xdp.h"
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(CNM_BPF_XDP == BPF_XDP, "BPF_XDP attach type");
_Static_assert(sizeof(struct cnm_xdp_desc) == sizeof(struct xdp_desc), "xdp_desc layout");
_Static_assert(sizeof(struct cnm_xdp_mmap_offsets) == sizeof(struct xdp_mmap_offsets), "xdp_mmap_offsets layout");
_Static_assert(sizeof(struct cnm_xdp_statistics) == sizeof(struct xdp_statistics), "xdp_statistics layout");

int cnm_xsk_socket(void) {
    int fd = socket(CNM_AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int cnm_xsk_setsockopt(int fd, int opt, const void *val, uint32_t len) {
    return setsockopt(fd, CNM_SOL_XDP, opt, val, len) < 0 ? -errno : 0;
}

int cnm_xsk_umem_reg(int fd, void *addr, uint64_t len, uint32_t chunk_size, uint32_t headroom) {
    struct xdp_umem_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.addr = (uint64_t)(uintptr_t)addr;
    reg.len = len;
    reg.chunk_size = chunk_size;
    reg.headroom = headroom;
    reg.flags = 0;
    return cnm_xsk_setsockopt(fd, CNM_XDP_UMEM_REG, &reg, sizeof reg);
}

int cnm_xsk_mmap_offsets(int fd, struct cnm_xdp_mmap_offsets *off) {
    socklen_t len = sizeof *off;
    memset(off, 0, sizeof *off);
    if (getsockopt(fd, CNM_SOL_XDP, CNM_XDP_MMAP_OFFSETS, off, &len) < 0) return -errno;
    return len == sizeof *off ? 0 : -EPROTO;
}

int cnm_xsk_statistics(int fd, struct cnm_xdp_statistics *st) {
    socklen_t len = sizeof *st;
    memset(st, 0, sizeof *st);
    return getsockopt(fd, CNM_SOL_XDP, CNM_XDP_STATISTICS, st, &len) < 0 ? -errno : 0;
}

int cnm_xsk_bind(int fd, uint32_t ifindex, uint32_t queue, uint16_t flags) {
    struct sockaddr_xdp sxdp;
    memset(&sxdp, 0, sizeof sxdp);
    sxdp.sxdp_family = CNM_AF_XDP;
    sxdp.sxdp_ifindex = ifindex;
    sxdp.sxdp_queue_id = queue;
    sxdp.sxdp_flags = flags;
    return bind(fd, (struct sockaddr *)&sxdp, sizeof sxdp) < 0 ? -errno : 0;
}

int cnm_xsk_wakeup_rx(int fd) {
    ssize_t r;
    do { r = recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL); } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EBUSY || errno == ENOBUFS)) return 0;
    return r < 0 ? -errno : 0;
}

int cnm_xsk_wakeup_tx(int fd) {
    ssize_t r;
    do { r = sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0); } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EBUSY || errno == ENOBUFS || errno == ENETDOWN)) return 0;
    return r < 0 ? -errno : 0;
}

#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

int cnm_socket_busy_poll(int fd, int usecs, int budget, int prefer) {
    if (setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &prefer, sizeof prefer) < 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usecs, sizeof usecs) < 0) return -errno;
    if (budget > 0 && setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof budget) < 0) return -errno;
    return 0;
}

int cnm_poll_in(int fd, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    int r;
    do { r = poll(&p, 1, timeout_ms); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

void cnm_sleep_us(unsigned int us) {
    struct timespec left = { .tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000L };
    while (nanosleep(&left, &left) < 0 && errno == EINTR) {}
}


static int sys_bpf(int cmd, union bpf_attr *attr, unsigned int size) {
    long r;
    do { r = syscall(SYS_bpf, cmd, attr, size); } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int)r;
}

static void copy_name(char *dst, const char *name) {
    if (!name) return;
    size_t n = strlen(name);
    if (n > BPF_OBJ_NAME_LEN - 1) n = BPF_OBJ_NAME_LEN - 1;
    memcpy(dst, name, n);
}

int cnm_bpf_xskmap_create(uint32_t entries, const char *name) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_XSKMAP;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = entries;
    copy_name(attr.map_name, name);
    return sys_bpf(BPF_MAP_CREATE, &attr, sizeof attr);
}

int cnm_bpf_map_update_u32(int map_fd, uint32_t key, uint32_t value) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)map_fd;
    attr.key = (uint64_t)(uintptr_t)&key;
    attr.value = (uint64_t)(uintptr_t)&value;
    attr.flags = BPF_ANY;
    int r = sys_bpf(BPF_MAP_UPDATE_ELEM, &attr, sizeof attr);
    return r < 0 ? r : 0;
}

int cnm_bpf_map_delete_u32(int map_fd, uint32_t key) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = (uint32_t)map_fd;
    attr.key = (uint64_t)(uintptr_t)&key;
    int r = sys_bpf(BPF_MAP_DELETE_ELEM, &attr, sizeof attr);
    return r < 0 ? r : 0;
}

int cnm_bpf_prog_load_xdp(const uint64_t *insns, uint32_t count, const char *name,
                          char *log, uint32_t log_size) {
    static const char license[] = "GPL";
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.insns = (uint64_t)(uintptr_t)insns;
    attr.insn_cnt = count;
    attr.license = (uint64_t)(uintptr_t)license;
    if (log && log_size > 0) {
        log[0] = 0;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    copy_name(attr.prog_name, name);
    int r = sys_bpf(BPF_PROG_LOAD, &attr, sizeof attr);
    if (r == -ENOSPC && log) {
        // The log did not fit; load again without it so the caller sees the real result.
        attr.log_buf = 0;
        attr.log_size = 0;
        attr.log_level = 0;
        r = sys_bpf(BPF_PROG_LOAD, &attr, sizeof attr);
    }
    return r;
}

int cnm_bpf_link_create_xdp(int prog_fd, uint32_t ifindex, uint32_t flags) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.link_create.prog_fd = (uint32_t)prog_fd;
    attr.link_create.target_ifindex = ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = flags;
    return sys_bpf(BPF_LINK_CREATE, &attr, sizeof attr);
}

int cnm_setns_net(int fd) {
    return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
}

#define CNM_BATCH 64

int cnm_udp_send_batch(int fd, const void *payload, uint32_t length, uint32_t count) {
    struct mmsghdr msgs[CNM_BATCH];
    struct iovec iov[CNM_BATCH];
    uint32_t n = count < CNM_BATCH ? count : CNM_BATCH;
    memset(msgs, 0, sizeof(struct mmsghdr) * n);
    for (uint32_t i = 0; i < n; i++) {
        iov[i].iov_base = (void *)payload;
        iov[i].iov_len = length;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r;
    do { r = sendmmsg(fd, msgs, n, 0); } while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) return 0;
    return r < 0 ? -errno : r;
}

int cnm_udp_recv_batch(int fd, void *buffers, uint32_t slot_size, uint32_t *lengths, uint32_t count) {
    struct mmsghdr msgs[CNM_BATCH];
    struct iovec iov[CNM_BATCH];
    uint32_t n = count < CNM_BATCH ? count : CNM_BATCH;
    memset(msgs, 0, sizeof(struct mmsghdr) * n);
    for (uint32_t i = 0; i < n; i++) {
        iov[i].iov_base = (char *)buffers + (size_t)i * slot_size;
        iov[i].iov_len = slot_size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r;
    do { r = recvmmsg(fd, msgs, n, MSG_DONTWAIT, NULL); } while (r < 0 && errno == EINTR);
    if (r < 0 && errno == EAGAIN) return 0;
    if (r < 0) return -errno;
    for (int i = 0; i < r; i++) lengths[i] = msgs[i].msg_len;
    return r;
}
