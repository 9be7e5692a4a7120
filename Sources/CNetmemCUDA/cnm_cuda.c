// The CUDA driver API through dlopen: see cnm_cuda.h.
#include "cnm_cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef int cnm_cu_result;
typedef void *cnm_cu_handle;   // CUcontext, CUstream, CUevent
typedef unsigned long long cnm_cu_dptr;

static struct {
    cnm_cu_result (*init)(unsigned int);
    cnm_cu_result (*driverGetVersion)(int *);
    cnm_cu_result (*deviceGetCount)(int *);
    cnm_cu_result (*deviceGet)(int *, int);
    cnm_cu_result (*deviceGetName)(char *, int, int);
    cnm_cu_result (*deviceGetAttribute)(int *, int, int);
    cnm_cu_result (*primaryCtxRetain)(cnm_cu_handle *, int);
    cnm_cu_result (*primaryCtxRelease)(int);
    cnm_cu_result (*ctxSetCurrent)(cnm_cu_handle);
    cnm_cu_result (*memAlloc)(cnm_cu_dptr *, size_t);
    cnm_cu_result (*memFree)(cnm_cu_dptr);
    cnm_cu_result (*memGetHandleForAddressRange)(void *, cnm_cu_dptr, size_t, int, unsigned long long);
    cnm_cu_result (*memHostRegister)(void *, size_t, unsigned int);
    cnm_cu_result (*memHostUnregister)(void *);
    cnm_cu_result (*memHostGetDevicePointer)(cnm_cu_dptr *, void *, unsigned int);
    cnm_cu_result (*memcpyHtoDAsync)(cnm_cu_dptr, const void *, size_t, cnm_cu_handle);
    cnm_cu_result (*memcpyDtoHAsync)(void *, cnm_cu_dptr, size_t, cnm_cu_handle);
    cnm_cu_result (*memcpyDtoDAsync)(cnm_cu_dptr, cnm_cu_dptr, size_t, cnm_cu_handle);
    cnm_cu_result (*streamCreate)(cnm_cu_handle *, unsigned int);
    cnm_cu_result (*streamDestroy)(cnm_cu_handle);
    cnm_cu_result (*streamSynchronize)(cnm_cu_handle);
    cnm_cu_result (*streamQuery)(cnm_cu_handle);
    cnm_cu_result (*eventCreate)(cnm_cu_handle *, unsigned int);
    cnm_cu_result (*eventRecord)(cnm_cu_handle, cnm_cu_handle);
    cnm_cu_result (*eventQuery)(cnm_cu_handle);
    cnm_cu_result (*eventSynchronize)(cnm_cu_handle);
    cnm_cu_result (*eventDestroy)(cnm_cu_handle);
    cnm_cu_result (*getErrorName)(int, const char **);
    cnm_cu_result (*getErrorString)(int, const char **);
} cu;

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int load_state = 1;   // 1: not tried; otherwise the result of the first try
static char load_error[256];

struct entry { const char *name; const char *fallback; void **slot; int optional; };

int cnm_cuda_load(char *err, size_t err_cap) {
    pthread_mutex_lock(&load_lock);
    if (load_state == 1) {
        void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char *e = dlerror();
            snprintf(load_error, sizeof load_error, "%s", e ? e : "dlopen failed");
            load_state = -1;
        } else {
            struct entry entries[] = {
                {"cuInit", NULL, (void **)&cu.init, 0},
                {"cuDriverGetVersion", NULL, (void **)&cu.driverGetVersion, 0},
                {"cuDeviceGetCount", NULL, (void **)&cu.deviceGetCount, 0},
                {"cuDeviceGet", NULL, (void **)&cu.deviceGet, 0},
                {"cuDeviceGetName", NULL, (void **)&cu.deviceGetName, 0},
                {"cuDeviceGetAttribute", NULL, (void **)&cu.deviceGetAttribute, 0},
                {"cuDevicePrimaryCtxRetain", NULL, (void **)&cu.primaryCtxRetain, 0},
                {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease", (void **)&cu.primaryCtxRelease, 0},
                {"cuCtxSetCurrent", NULL, (void **)&cu.ctxSetCurrent, 0},
                {"cuMemAlloc_v2", NULL, (void **)&cu.memAlloc, 0},
                {"cuMemFree_v2", NULL, (void **)&cu.memFree, 0},
                {"cuMemGetHandleForAddressRange", NULL, (void **)&cu.memGetHandleForAddressRange, 1},
                {"cuMemHostRegister_v2", "cuMemHostRegister", (void **)&cu.memHostRegister, 0},
                {"cuMemHostUnregister", NULL, (void **)&cu.memHostUnregister, 0},
                {"cuMemHostGetDevicePointer_v2", NULL, (void **)&cu.memHostGetDevicePointer, 0},
                {"cuMemcpyHtoDAsync_v2", NULL, (void **)&cu.memcpyHtoDAsync, 0},
                {"cuMemcpyDtoHAsync_v2", NULL, (void **)&cu.memcpyDtoHAsync, 0},
                {"cuMemcpyDtoDAsync_v2", NULL, (void **)&cu.memcpyDtoDAsync, 0},
                {"cuStreamCreate", NULL, (void **)&cu.streamCreate, 0},
                {"cuStreamDestroy_v2", "cuStreamDestroy", (void **)&cu.streamDestroy, 0},
                {"cuStreamSynchronize", NULL, (void **)&cu.streamSynchronize, 0},
                {"cuStreamQuery", NULL, (void **)&cu.streamQuery, 0},
                {"cuEventCreate", NULL, (void **)&cu.eventCreate, 0},
                {"cuEventRecord", NULL, (void **)&cu.eventRecord, 0},
                {"cuEventQuery", NULL, (void **)&cu.eventQuery, 0},
                {"cuEventSynchronize", NULL, (void **)&cu.eventSynchronize, 0},
                {"cuEventDestroy_v2", "cuEventDestroy", (void **)&cu.eventDestroy, 0},
                {"cuGetErrorName", NULL, (void **)&cu.getErrorName, 0},
                {"cuGetErrorString", NULL, (void **)&cu.getErrorString, 0},
            };
            load_state = 0;
            for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
                void *p = dlsym(lib, entries[i].name);
                if (!p && entries[i].fallback) p = dlsym(lib, entries[i].fallback);
                *entries[i].slot = p;
                if (!p && !entries[i].optional && load_state == 0) {
                    snprintf(load_error, sizeof load_error, "%s", entries[i].name);
                    load_state = -2;
                }
            }
            if (load_state != 0) {
                memset(&cu, 0, sizeof cu);
                dlclose(lib);
            }
            // On success the library stays loaded for the life of the process.
        }
    }
    int state = load_state;
    if (state != 0 && err && err_cap > 0) {
        strncpy(err, load_error, err_cap - 1);
        err[err_cap - 1] = 0;
    }
    pthread_mutex_unlock(&load_lock);
    return state;
}

int cnm_cuda_has_dmabuf_export(void) { return cu.memGetHandleForAddressRange != NULL; }

static _Thread_local uint64_t current_ctx;

int cnm_cuda_make_current(uint64_t ctx) {
    if (current_ctx == ctx) return CNM_CUDA_SUCCESS;
    int r = cnm_cuCtxSetCurrent(ctx);
    if (r == CNM_CUDA_SUCCESS) current_ctx = ctx;
    return r;
}

#define H(x) ((cnm_cu_handle)(uintptr_t)(x))
#define CALL(fn, ...) (cu.fn ? cu.fn(__VA_ARGS__) : CNM_CUDA_ERROR_NOT_LOADED)

int cnm_cuInit(unsigned int flags) { return CALL(init, flags); }
int cnm_cuDriverGetVersion(int *version) { return CALL(driverGetVersion, version); }
int cnm_cuDeviceGetCount(int *count) { return CALL(deviceGetCount, count); }
int cnm_cuDeviceGet(int *device, int ordinal) { return CALL(deviceGet, device, ordinal); }
int cnm_cuDeviceGetName(char *name, int len, int device) { return CALL(deviceGetName, name, len, device); }
int cnm_cuDeviceGetAttribute(int *value, int attribute, int device) {
    return CALL(deviceGetAttribute, value, attribute, device);
}
int cnm_cuDevicePrimaryCtxRetain(uint64_t *ctx, int device) {
    cnm_cu_handle h = NULL;
    int r = CALL(primaryCtxRetain, &h, device);
    *ctx = (uint64_t)(uintptr_t)h;
    return r;
}
int cnm_cuDevicePrimaryCtxRelease(int device) { return CALL(primaryCtxRelease, device); }
int cnm_cuCtxSetCurrent(uint64_t ctx) { return CALL(ctxSetCurrent, H(ctx)); }
int cnm_cuMemAlloc(uint64_t *dptr, size_t size) {
    cnm_cu_dptr d = 0;
    int r = CALL(memAlloc, &d, size);
    *dptr = d;
    return r;
}
int cnm_cuMemFree(uint64_t dptr) { return CALL(memFree, dptr); }
int cnm_cuMemGetHandleForAddressRange(int *fd, uint64_t dptr, size_t size, int handle_type, unsigned long long flags) {
    *fd = -1;
    return CALL(memGetHandleForAddressRange, fd, dptr, size, handle_type, flags);
}
int cnm_cuMemHostRegister(void *p, size_t size, unsigned int flags) { return CALL(memHostRegister, p, size, flags); }
int cnm_cuMemHostUnregister(void *p) { return CALL(memHostUnregister, p); }
int cnm_cuMemHostGetDevicePointer(uint64_t *dptr, void *p, unsigned int flags) {
    cnm_cu_dptr d = 0;
    int r = CALL(memHostGetDevicePointer, &d, p, flags);
    *dptr = d;
    return r;
}
int cnm_cuMemcpyHtoDAsync(uint64_t dst, const void *src, size_t n, uint64_t stream) {
    return CALL(memcpyHtoDAsync, dst, src, n, H(stream));
}
int cnm_cuMemcpyDtoHAsync(void *dst, uint64_t src, size_t n, uint64_t stream) {
    return CALL(memcpyDtoHAsync, dst, src, n, H(stream));
}
int cnm_cuMemcpyDtoDAsync(uint64_t dst, uint64_t src, size_t n, uint64_t stream) {
    return CALL(memcpyDtoDAsync, dst, src, n, H(stream));
}
int cnm_cuStreamCreate(uint64_t *stream, unsigned int flags) {
    cnm_cu_handle h = NULL;
    int r = CALL(streamCreate, &h, flags);
    *stream = (uint64_t)(uintptr_t)h;
    return r;
}
int cnm_cuStreamDestroy(uint64_t stream) { return CALL(streamDestroy, H(stream)); }
int cnm_cuStreamSynchronize(uint64_t stream) { return CALL(streamSynchronize, H(stream)); }
int cnm_cuStreamQuery(uint64_t stream) { return CALL(streamQuery, H(stream)); }
int cnm_cuEventCreate(uint64_t *event, unsigned int flags) {
    cnm_cu_handle h = NULL;
    int r = CALL(eventCreate, &h, flags);
    *event = (uint64_t)(uintptr_t)h;
    return r;
}
int cnm_cuEventRecord(uint64_t event, uint64_t stream) { return CALL(eventRecord, H(event), H(stream)); }
int cnm_cuEventQuery(uint64_t event) { return CALL(eventQuery, H(event)); }
int cnm_cuEventSynchronize(uint64_t event) { return CALL(eventSynchronize, H(event)); }
int cnm_cuEventDestroy(uint64_t event) { return CALL(eventDestroy, H(event)); }

const char *cnm_cuGetErrorName(int result) {
    const char *s = NULL;
    if (!cu.getErrorName || cu.getErrorName(result, &s) != CNM_CUDA_SUCCESS) return NULL;
    return s;
}
const char *cnm_cuGetErrorString(int result) {
    const char *s = NULL;
    if (!cu.getErrorString || cu.getErrorString(result, &s) != CNM_CUDA_SUCCESS) return NULL;
    return s;
}
