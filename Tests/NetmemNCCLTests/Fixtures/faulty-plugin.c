/*
 * A deliberately broken NCCL net plugin for the harness's own tests: it wraps a real
 * plugin (dlopen of $NCCL_FAULTY_INNER) and, in the way $NCCL_FAULTY_MODE says, spoils
 * the receive that completes as the fourth of the process:
 *   flip    - one byte of the received data is changed
 *   overrun - the byte just past the posted buffer is overwritten
 *   size    - test reports one byte less than arrived
 * `netmem nccl check` must then fail, naming what it found.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int result_t;
typedef struct {
    const char *name;
    result_t (*init)(void **, uint64_t, void *, void *, void *);
    void *devices, *getProperties, *listen, *connect, *accept, *regMr, *regMrDmaBuf, *deregMr, *isend;
    result_t (*irecv)(void *, int, void **, size_t *, int *, void **, void **, void **);
    void *iflush;
    result_t (*test)(void *, int *, int *);
    void *closeSend, *closeRecv, *closeListen, *getDeviceMr, *irecvConsumed, *makeVDevice, *finalize, *setNetAttr;
} net_v11_t;

static net_v11_t *inner;
static struct { void *request; uint8_t *data; size_t size; } posted[256];
static int completions;
/* The harness posts and tests from more than one thread, and the inner plugin reuses a
 * request as soon as test reports it done: one lock around each inner call and the table,
 * so a reused request is never matched to another receive's entry. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static result_t faulty_irecv(void *comm, int n, void **data, size_t *sizes, int *tags, void **mh, void **ph, void **req) {
    pthread_mutex_lock(&table_lock);
    result_t r = inner->irecv(comm, n, data, sizes, tags, mh, ph, req);
    if (r == 0 && *req != NULL) {
        for (int i = 0; i < 256; i++) {
            if (posted[i].request == NULL) {
                posted[i].request = *req;
                posted[i].data = data[0];
                posted[i].size = sizes[0];
                break;
            }
        }
    }
    pthread_mutex_unlock(&table_lock);
    return r;
}

static result_t faulty_test(void *req, int *done, int *size) {
    pthread_mutex_lock(&table_lock);
    result_t r = inner->test(req, done, size);
    if (r != 0 || !*done) {
        pthread_mutex_unlock(&table_lock);
        return r;
    }
    for (int i = 0; i < 256; i++) {
        if (posted[i].request != req) continue;
        posted[i].request = NULL;
        if (++completions == 4 && *size > 16) {
            const char *mode = getenv("NCCL_FAULTY_MODE");
            if (mode && strcmp(mode, "flip") == 0) posted[i].data[*size / 2] ^= 0x40;
            if (mode && strcmp(mode, "overrun") == 0) posted[i].data[posted[i].size] = 0x00;
            if (mode && strcmp(mode, "size") == 0) *size -= 1;
        }
        break;
    }
    pthread_mutex_unlock(&table_lock);
    return r;
}

net_v11_t ncclNetPlugin_v11;

__attribute__((constructor)) static void setup(void) {
    const char *path = getenv("NCCL_FAULTY_INNER");
    void *lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    inner = lib ? (net_v11_t *)dlsym(lib, "ncclNetPlugin_v11") : NULL;
    if (!inner) {
        fprintf(stderr, "faulty plugin: cannot load NCCL_FAULTY_INNER=%s\n", path ? path : "(unset)");
        return;
    }
    ncclNetPlugin_v11 = *inner;
    ncclNetPlugin_v11.name = "Faulty";
    ncclNetPlugin_v11.irecv = faulty_irecv;
    ncclNetPlugin_v11.test = faulty_test;
}
