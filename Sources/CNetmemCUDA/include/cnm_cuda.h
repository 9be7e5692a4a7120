// The CUDA driver API, loaded at run time with dlopen("libcuda.so.1") so the package
// builds, links and tests on machines without an NVIDIA driver. cuda.h is not included:
// the few types and constants below are driver ABI facts (CUresult is an int, CUdevice
// an int, CUdeviceptr a 64-bit integer, contexts/streams/events opaque pointers, carried
// here as uint64_t). Each cnm_cu* wrapper calls the loaded entry point and returns its
// CUresult, or CNM_CUDA_ERROR_NOT_LOADED when the entry point is not loaded.
#ifndef CNM_CUDA_H
#define CNM_CUDA_H

#include <stddef.h>
#include <stdint.h>

// CUresult values (cudaError_enum).
#define CNM_CUDA_SUCCESS 0
#define CNM_CUDA_ERROR_INVALID_VALUE 1
#define CNM_CUDA_ERROR_OUT_OF_MEMORY 2
#define CNM_CUDA_ERROR_NOT_INITIALIZED 3
#define CNM_CUDA_ERROR_NO_DEVICE 100
#define CNM_CUDA_ERROR_INVALID_DEVICE 101
#define CNM_CUDA_ERROR_NOT_READY 600
#define CNM_CUDA_ERROR_NOT_SUPPORTED 801
/// Not a CUresult: the entry point was not loaded (no driver, or a driver too old).
#define CNM_CUDA_ERROR_NOT_LOADED (-1)

// CUdevice_attribute values.
#define CNM_CU_DEVICE_ATTRIBUTE_PCI_BUS_ID 33
#define CNM_CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING 41
#define CNM_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CNM_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define CNM_CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED 124

// CUmemRangeHandleType: cuMemGetHandleForAddressRange gives a dma-buf fd.
#define CNM_CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD 1
// cuMemHostRegister flags.
#define CNM_CU_MEMHOSTREGISTER_PORTABLE 0x01
#define CNM_CU_MEMHOSTREGISTER_DEVICEMAP 0x02
// cuStreamCreate / cuEventCreate flags.
#define CNM_CU_STREAM_NON_BLOCKING 0x1
#define CNM_CU_EVENT_DISABLE_TIMING 0x2

/// Loads libcuda.so.1 and resolves the entry points (once; later calls return the first
/// result). Returns 0 when loaded; -1 when the library does not load (err gets dlerror());
/// -2 when a required entry point is missing (err gets its name). cuMemGetHandleForAddressRange
/// is optional (CUDA 11.7+): see cnm_cuda_has_dmabuf_export().
int cnm_cuda_load(char *err, size_t err_cap);
/// Whether cuMemGetHandleForAddressRange was found.
int cnm_cuda_has_dmabuf_export(void);
/// Makes `ctx` current on the calling thread unless it already is (a thread-local cache
/// in front of cuCtxSetCurrent).
int cnm_cuda_make_current(uint64_t ctx);

int cnm_cuInit(unsigned int flags);
int cnm_cuDriverGetVersion(int *version);
int cnm_cuDeviceGetCount(int *count);
int cnm_cuDeviceGet(int *device, int ordinal);
int cnm_cuDeviceGetName(char *name, int len, int device);
int cnm_cuDeviceGetAttribute(int *value, int attribute, int device);
int cnm_cuDevicePrimaryCtxRetain(uint64_t *ctx, int device);
int cnm_cuDevicePrimaryCtxRelease(int device);
int cnm_cuCtxSetCurrent(uint64_t ctx);
int cnm_cuMemAlloc(uint64_t *dptr, size_t size);
int cnm_cuMemFree(uint64_t dptr);
int cnm_cuMemGetHandleForAddressRange(int *fd, uint64_t dptr, size_t size, int handle_type, unsigned long long flags);
int cnm_cuMemHostRegister(void *p, size_t size, unsigned int flags);
int cnm_cuMemHostUnregister(void *p);
int cnm_cuMemHostGetDevicePointer(uint64_t *dptr, void *p, unsigned int flags);
int cnm_cuMemcpyHtoDAsync(uint64_t dst, const void *src, size_t n, uint64_t stream);
int cnm_cuMemcpyDtoHAsync(void *dst, uint64_t src, size_t n, uint64_t stream);
int cnm_cuMemcpyDtoDAsync(uint64_t dst, uint64_t src, size_t n, uint64_t stream);
int cnm_cuStreamCreate(uint64_t *stream, unsigned int flags);
int cnm_cuStreamDestroy(uint64_t stream);
int cnm_cuStreamSynchronize(uint64_t stream);
int cnm_cuStreamQuery(uint64_t stream);
int cnm_cuEventCreate(uint64_t *event, unsigned int flags);
int cnm_cuEventRecord(uint64_t event, uint64_t stream);
int cnm_cuEventQuery(uint64_t event);
int cnm_cuEventSynchronize(uint64_t event);
int cnm_cuEventDestroy(uint64_t event);
/// cuGetErrorName / cuGetErrorString; NULL when unknown or not loaded.
const char *cnm_cuGetErrorName(int result);
const char *cnm_cuGetErrorString(int result);

#endif
