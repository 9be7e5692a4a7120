/*
 * An independent check of an NCCL network plugin, written from the version-11 plugin
 * interface alone (no project headers): loads the library, then moves messages from a
 * child process (connect + isend) to this one (listen + accept + irecv) over loopback
 * and compares every byte, plus a canary after each receive buffer.
 *
 *   gcc -O2 -o nccl-abi-check scripts/nccl-abi-check.c -ldl
 *   ./nccl-abi-check .build/release/libnccl-net-netmem.so
 *
 * Exit status 0 when every message arrived intact; the last line says what was moved.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The interface, version 11 (ncclNet_v11_t and what it refers to). */
typedef int result_t; /* ncclResult_t: 0 success */
typedef void (*logger_t)(int level, unsigned long flags, const char *file, int line, const char *fmt, ...);
typedef struct { int netDeviceType, netDeviceVersion; void *handle; size_t size; int needsProxyProgress; } dev_handle_t;
typedef struct { int ndevs; int devs[4]; } vprops_t;
typedef struct {
    char *name, *pciPath;
    uint64_t guid;
    int ptrSupport, regIsGlobal, forceFlush, speed, port;
    float latency;
    int maxComms, maxRecvs, netDeviceType, netDeviceVersion;
    vprops_t vProps;
    size_t maxP2pBytes, maxCollBytes;
    int maxMultiRequestSize;
} props_t;
typedef struct {
    const char *name;
    result_t (*init)(void **ctx, uint64_t commId, void *config, logger_t log, void *prof);
    result_t (*devices)(int *n);
    result_t (*getProperties)(int dev, props_t *props);
    result_t (*listen)(void *ctx, int dev, void *handle, void **listenComm);
    result_t (*connect)(void *ctx, int dev, void *handle, void **sendComm, dev_handle_t **devComm);
    result_t (*accept)(void *listenComm, void **recvComm, dev_handle_t **devComm);
    result_t (*regMr)(void *comm, void *data, size_t size, int type, void **mhandle);
    result_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type, uint64_t offset, int fd, void **mhandle);
    result_t (*deregMr)(void *comm, void *mhandle);
    result_t (*isend)(void *comm, void *data, size_t size, int tag, void *mhandle, void *phandle, void **request);
    result_t (*irecv)(void *comm, int n, void **data, size_t *sizes, int *tags, void **mhandles, void **phandles,
                      void **request);
    result_t (*iflush)(void *comm, int n, void **data, int *sizes, void **mhandles, void **request);
    result_t (*test)(void *request, int *done, int *sizes);
    result_t (*closeSend)(void *comm);
    result_t (*closeRecv)(void *comm);
    result_t (*closeListen)(void *comm);
    void *getDeviceMr, *irecvConsumed, *makeVDevice;
    result_t (*finalize)(void *ctx);
    void *setNetAttr;
} net_v11_t;

#define HANDLE_SIZE 128
#define PTR_HOST 1
#define INFLIGHT 4
#define CANARY 64
static const size_t sizes[] = {0, 1, 13, 4096, 65537, (1 << 20) + 3, 8 << 20, 12345, 0, 3 << 20};
#define COUNT (sizeof sizes / sizeof sizes[0])

static void logger(int level, unsigned long flags, const char *file, int line, const char *fmt, ...) {
    (void)level; (void)flags; (void)file; (void)line; (void)fmt;
}

static uint8_t pattern(size_t msg, size_t i) {
    uint64_t x = (msg + 1) * 0x9E3779B97F4A7C15ULL ^ (i * 0xBF58476D1CE4E5B9ULL);
    x ^= x >> 29;
    return (uint8_t)(x * 0x94D049BB133111EBULL >> 56);
}

#define CHECK(what, call) do { result_t r_ = (call); if (r_ != 0) { fprintf(stderr, "%s: %s returned %d\n", role, what, r_); exit(2); } } while (0)
static const char *role = "receiver";

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static void sender(net_v11_t *net, const unsigned char *handle) {
    role = "sender";
    void *ctx = NULL, *comm = NULL;
    dev_handle_t *dh = NULL;
    unsigned char h[HANDLE_SIZE];
    memcpy(h, handle, sizeof h);
    CHECK("init", net->init(&ctx, 2, NULL, logger, NULL));
    double deadline = now() + 20;
    while (comm == NULL) {
        CHECK("connect", net->connect(ctx, 0, h, &comm, &dh));
        if (now() > deadline) { fprintf(stderr, "sender: connect did not finish\n"); exit(2); }
    }
    size_t total = 0;
    for (size_t i = 0; i < COUNT; i++) total += sizes[i];
    uint8_t *buf = malloc(total + 1);
    void *mh = NULL;
    CHECK("regMr", net->regMr(comm, buf, total + 1, PTR_HOST, &mh));
    size_t off = 0;
    void *req[COUNT] = {0};
    size_t next = 0, done = 0;
    size_t offs[COUNT];
    for (size_t m = 0; m < COUNT; m++) { offs[m] = off; for (size_t i = 0; i < sizes[m]; i++) buf[off + i] = pattern(m, i); off += sizes[m]; }
    deadline = now() + 60;
    while (done < COUNT) {
        if (next < COUNT && next - done < INFLIGHT) {
            CHECK("isend", net->isend(comm, buf + offs[next], sizes[next], 0, mh, NULL, &req[next]));
            if (req[next] != NULL) next++;
        }
        for (size_t m = done; m < next; m++) {
            if (req[m] == NULL) continue;
            int d = 0, s = -1;
            CHECK("test", net->test(req[m], &d, &s));
            if (d) { req[m] = NULL; if ((size_t)s != sizes[m]) { fprintf(stderr, "sender: test says %d bytes for a send of %zu\n", s, sizes[m]); exit(2); } }
        }
        while (done < next && req[done] == NULL) done++;
        if (now() > deadline) { fprintf(stderr, "sender: sends did not complete\n"); exit(2); }
    }
    CHECK("deregMr", net->deregMr(comm, mh));
    CHECK("closeSend", net->closeSend(comm));
    CHECK("finalize", net->finalize(ctx));
    free(buf);
    exit(0);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]); return 64; }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
    net_v11_t *net = (net_v11_t *)dlsym(lib, "ncclNetPlugin_v11");
    if (!net) { fprintf(stderr, "no ncclNetPlugin_v11 in %s\n", argv[1]); return 2; }
    alarm(120);

    /* Fork before the plugin is used: like CUDA and NCCL, the plugin's state does not
     * carry into a child process. */
    int fds[2];
    if (pipe(fds) != 0) return 2;
    pid_t child = fork();
    if (child == 0) {
        unsigned char h[HANDLE_SIZE];
        close(fds[1]);
        if (read(fds[0], h, sizeof h) != (ssize_t)sizeof h) exit(3);
        sender(net, h);
    }
    close(fds[0]);

    void *ctx = NULL, *listenComm = NULL, *comm = NULL;
    dev_handle_t *dh = NULL;
    unsigned char handle[HANDLE_SIZE] = {0};
    CHECK("init", net->init(&ctx, 1, NULL, logger, NULL));
    int ndev = 0;
    CHECK("devices", net->devices(&ndev));
    if (ndev < 1) { fprintf(stderr, "no devices\n"); return 2; }
    props_t props;
    memset(&props, 0, sizeof props);
    CHECK("getProperties", net->getProperties(0, &props));
    if (!(props.ptrSupport & PTR_HOST)) { fprintf(stderr, "device 0 does not take host memory\n"); return 2; }
    CHECK("listen", net->listen(ctx, 0, handle, &listenComm));
    if (write(fds[1], handle, sizeof handle) != (ssize_t)sizeof handle) return 2;
    close(fds[1]);

    double deadline = now() + 20;
    while (comm == NULL) {
        CHECK("accept", net->accept(listenComm, &comm, &dh));
        if (now() > deadline) { fprintf(stderr, "receiver: accept did not finish\n"); return 2; }
    }
    size_t bytes = 0;
    for (size_t m = 0; m < COUNT; m++) {
        size_t cap = sizes[m] + (m % 3) * 100; /* some receives larger than their send */
        uint8_t *buf = malloc(cap + CANARY);
        memset(buf, 0xEE, cap + CANARY);
        void *mh = NULL, *req = NULL;
        CHECK("regMr", net->regMr(comm, buf, cap + CANARY, PTR_HOST, &mh));
        void *data[1] = {buf};
        size_t sz[1] = {cap};
        int tags[1] = {0};
        void *mhs[1] = {mh};
        while (req == NULL) {
            CHECK("irecv", net->irecv(comm, 1, data, sz, tags, mhs, NULL, &req));
            if (now() > deadline + 60) { fprintf(stderr, "receiver: irecv never took the request\n"); return 2; }
        }
        int d = 0, s = -1;
        while (!d) {
            CHECK("test", net->test(req, &d, &s));
            if (now() > deadline + 60) { fprintf(stderr, "receiver: message %zu never arrived\n", m); return 2; }
        }
        if ((size_t)s != sizes[m]) { fprintf(stderr, "receiver: message %zu: test says %d bytes, sent %zu\n", m, s, sizes[m]); return 1; }
        for (size_t i = 0; i < sizes[m]; i++) {
            if (buf[i] != pattern(m, i)) { fprintf(stderr, "receiver: message %zu differs at byte %zu\n", m, i); return 1; }
        }
        for (size_t i = sizes[m]; i < cap + CANARY; i++) {
            if (buf[i] != 0xEE) { fprintf(stderr, "receiver: message %zu wrote past its size (byte %zu)\n", m, i); return 1; }
        }
        CHECK("deregMr", net->deregMr(comm, mh));
        free(buf);
        bytes += sizes[m];
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK("closeRecv", net->closeRecv(comm));
    CHECK("closeListen", net->closeListen(listenComm));
    CHECK("finalize", net->finalize(ctx));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "sender process failed (status %d)\n", status); return 1; }
    printf("ok: %zu messages, %zu bytes byte-exact through %s (%s)\n", (size_t)COUNT, bytes, net->name, argv[1]);
    return 0;
}
