// The NCCL network-plugin ABI (net plugin interface versions 9, 10 and 11), written from
// the facts of the interface: the struct layouts a plugin library exports and the
// constants NCCL and a plugin agree on. Each type mirrors the NCCL type named beside it;
// the static checks at the end pin the layouts (LP64: x86_64, aarch64).
#ifndef CNM_NCCL_NET_H
#define CNM_NCCL_NET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: Constants

/// Bytes of the opaque connection handle `listen` writes and `connect` reads
/// (NCCL_NET_HANDLE_MAXSIZE).
#define CNM_NCCL_NET_HANDLE_MAXSIZE 128
/// `ptrSupport` / `regMr` type bits (NCCL_PTR_HOST, NCCL_PTR_CUDA, NCCL_PTR_DMABUF).
#define CNM_NCCL_PTR_HOST   0x1
#define CNM_NCCL_PTR_CUDA   0x2
#define CNM_NCCL_PTR_DMABUF 0x4
/// Requests NCCL may have outstanding on one comm (NCCL_NET_MAX_REQUESTS).
#define CNM_NCCL_NET_MAX_REQUESTS 32
/// Virtual-device fan-in of interface versions 9 to 11 (NCCL_NET_MAX_DEVS_PER_NIC_V11).
#define CNM_NCCL_NET_MAX_DEVS_PER_NIC_V11 4
/// Largest transfer NCCL accepts in `maxP2pBytes` / `maxCollBytes` (NCCL_MAX_NET_SIZE_BYTES).
#define CNM_NCCL_MAX_NET_SIZE_BYTES (1ULL << 40)
/// `trafficClass` when the communicator sets none (NCCL_NET_TRAFFIC_CLASS_UNDEF).
#define CNM_NCCL_NET_TRAFFIC_CLASS_UNDEF (-1)
/// `netDeviceVersion` of a plugin without device offload (NCCL_NET_DEVICE_INVALID_VERSION).
#define CNM_NCCL_NET_DEVICE_INVALID_VERSION 0x0
/// `netDeviceVersion` of the device unpack offload NCCL builds against (NCCL_NET_DEVICE_UNPACK_VERSION).
#define CNM_NCCL_NET_DEVICE_UNPACK_VERSION 0x7

/// Mirrors `ncclResult_t` (the values a plugin may return).
typedef enum {
    CNM_NCCL_SUCCESS = 0,
    CNM_NCCL_UNHANDLED_CUDA_ERROR = 1,
    CNM_NCCL_SYSTEM_ERROR = 2,
    CNM_NCCL_INTERNAL_ERROR = 3,
    CNM_NCCL_INVALID_ARGUMENT = 4,
    CNM_NCCL_INVALID_USAGE = 5,
    CNM_NCCL_REMOTE_ERROR = 6,
} cnm_nccl_result_t;

/// Mirrors `ncclDebugLogLevel`.
typedef enum {
    CNM_NCCL_LOG_NONE = 0,
    CNM_NCCL_LOG_VERSION = 1,
    CNM_NCCL_LOG_WARN = 2,
    CNM_NCCL_LOG_INFO = 3,
    CNM_NCCL_LOG_ABORT = 4,
    CNM_NCCL_LOG_TRACE = 5,
} cnm_nccl_log_level_t;

/// Subsystem bits of a log line (ncclDebugLogSubSys): the two a network plugin uses.
#define CNM_NCCL_SUBSYS_INIT 0x1UL
#define CNM_NCCL_SUBSYS_NET  0x10UL

/// Mirrors `ncclNetDeviceType`: how received data reaches the GPU.
typedef enum {
    CNM_NCCL_NET_DEVICE_HOST = 0,
    CNM_NCCL_NET_DEVICE_UNPACK = 1,
} cnm_nccl_net_device_type_t;

// MARK: Callbacks NCCL hands the plugin

/// Mirrors `ncclDebugLogger_t` (printf-style; call it through `cnm_nccl_log`).
typedef void (*cnm_nccl_debug_logger_t)(cnm_nccl_log_level_t level, unsigned long flags, const char *file,
                                        int line, const char *fmt, ...);
/// Mirrors `ncclProfilerCallback_t`.
typedef cnm_nccl_result_t (*cnm_nccl_profiler_callback_t)(void **eHandle, int type, void *phandle,
                                                          int64_t pluginId, void *extData);

// MARK: Structs shared by versions 9 to 11

/// Mirrors `ncclNetDeviceHandle_v11_t` (identical in versions 7 to 11).
typedef struct {
    cnm_nccl_net_device_type_t netDeviceType;
    int netDeviceVersion;
    void *handle;
    size_t size;
    int needsProxyProgress;
} cnm_nccl_net_device_handle_t;

/// Mirrors `ncclNetVDeviceProps_v11_t`.
typedef struct {
    int ndevs;
    int devs[CNM_NCCL_NET_MAX_DEVS_PER_NIC_V11];
} cnm_nccl_net_vdevice_props_t;

/// Mirrors `ncclNetCommConfig_v11_t`.
typedef struct {
    int trafficClass;
} cnm_nccl_net_comm_config_t;

/// Mirrors `ncclNetProperties_v11_t`.
typedef struct {
    char *name;                       // for logs
    char *pciPath;                    // the device's path in /sys
    uint64_t guid;                    // unique per NIC chip
    int ptrSupport;                   // CNM_NCCL_PTR_* bits
    int regIsGlobal;                  // regMr not tied to one comm
    int forceFlush;                   // NCCL must call iflush after receives
    int speed;                        // Mbit/s
    int port;
    float latency;                    // microseconds
    int maxComms;
    int maxRecvs;                     // most receives grouped in one irecv
    cnm_nccl_net_device_type_t netDeviceType;
    int netDeviceVersion;
    cnm_nccl_net_vdevice_props_t vProps;
    size_t maxP2pBytes;
    size_t maxCollBytes;
    int maxMultiRequestSize;
} cnm_nccl_net_properties_v11_t;

/// Mirrors `ncclNetProperties_v10_t` and `ncclNetProperties_v9_t` (v11 without
/// `maxMultiRequestSize`).
typedef struct {
    char *name;
    char *pciPath;
    uint64_t guid;
    int ptrSupport;
    int regIsGlobal;
    int forceFlush;
    int speed;
    int port;
    float latency;
    int maxComms;
    int maxRecvs;
    cnm_nccl_net_device_type_t netDeviceType;
    int netDeviceVersion;
    cnm_nccl_net_vdevice_props_t vProps;
    size_t maxP2pBytes;
    size_t maxCollBytes;
} cnm_nccl_net_properties_v10_t;

/// Mirrors `ncclNetCommAttr_v11_t`.
typedef struct {
    int32_t maxConcurrentPeers;
    int32_t minConcurrentPeers;
    int32_t maxFlowsPerPeer;
    int32_t minFlowsPerPeer;
} cnm_nccl_net_comm_attr_t;

/// Mirrors `ncclNetAttr_v11_t`.
typedef struct {
    cnm_nccl_net_comm_attr_t sendCommAttr;
    cnm_nccl_net_comm_attr_t recvCommAttr;
    uint32_t op;
    uint32_t algo;
    uint32_t proto;
} cnm_nccl_net_attr_t;

// MARK: The function tables

/// Mirrors `ncclNet_v11_t`, exported as the data symbol `ncclNetPlugin_v11`.
typedef struct {
    const char *name;
    cnm_nccl_result_t (*init)(void **ctx, uint64_t commId, cnm_nccl_net_comm_config_t *config,
                              cnm_nccl_debug_logger_t logFunction, cnm_nccl_profiler_callback_t profFunction);
    cnm_nccl_result_t (*devices)(int *ndev);
    cnm_nccl_result_t (*getProperties)(int dev, cnm_nccl_net_properties_v11_t *props);
    cnm_nccl_result_t (*listen)(void *ctx, int dev, void *handle, void **listenComm);
    cnm_nccl_result_t (*connect)(void *ctx, int dev, void *handle, void **sendComm,
                                 cnm_nccl_net_device_handle_t **sendDevComm);
    cnm_nccl_result_t (*accept)(void *listenComm, void **recvComm, cnm_nccl_net_device_handle_t **recvDevComm);
    cnm_nccl_result_t (*regMr)(void *comm, void *data, size_t size, int type, void **mhandle);
    cnm_nccl_result_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type, uint64_t offset, int fd,
                                     void **mhandle);
    cnm_nccl_result_t (*deregMr)(void *comm, void *mhandle);
    cnm_nccl_result_t (*isend)(void *sendComm, void *data, size_t size, int tag, void *mhandle, void *phandle,
                               void **request);
    cnm_nccl_result_t (*irecv)(void *recvComm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                               void **phandles, void **request);
    cnm_nccl_result_t (*iflush)(void *recvComm, int n, void **data, int *sizes, void **mhandles, void **request);
    cnm_nccl_result_t (*test)(void *request, int *done, int *sizes);
    cnm_nccl_result_t (*closeSend)(void *sendComm);
    cnm_nccl_result_t (*closeRecv)(void *recvComm);
    cnm_nccl_result_t (*closeListen)(void *listenComm);
    cnm_nccl_result_t (*getDeviceMr)(void *comm, void *mhandle, void **dptr_mhandle);
    cnm_nccl_result_t (*irecvConsumed)(void *recvComm, int n, void *request);
    cnm_nccl_result_t (*makeVDevice)(int *d, cnm_nccl_net_vdevice_props_t *props);
    cnm_nccl_result_t (*finalize)(void *ctx);
    cnm_nccl_result_t (*setNetAttr)(void *ctx, cnm_nccl_net_attr_t *netAttr);
} cnm_nccl_net_v11_t;

/// Mirrors `ncclNet_v10_t`, exported as `ncclNetPlugin_v10`: no context (one per
/// process), the comm config passed to `connect`, no `finalize`.
typedef struct {
    const char *name;
    cnm_nccl_result_t (*init)(cnm_nccl_debug_logger_t logFunction, cnm_nccl_profiler_callback_t profFunction);
    cnm_nccl_result_t (*devices)(int *ndev);
    cnm_nccl_result_t (*getProperties)(int dev, cnm_nccl_net_properties_v10_t *props);
    cnm_nccl_result_t (*listen)(int dev, void *handle, void **listenComm);
    cnm_nccl_result_t (*connect)(int dev, cnm_nccl_net_comm_config_t *config, void *handle, void **sendComm,
                                 cnm_nccl_net_device_handle_t **sendDevComm);
    cnm_nccl_result_t (*accept)(void *listenComm, void **recvComm, cnm_nccl_net_device_handle_t **recvDevComm);
    cnm_nccl_result_t (*regMr)(void *comm, void *data, size_t size, int type, void **mhandle);
    cnm_nccl_result_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type, uint64_t offset, int fd,
                                     void **mhandle);
    cnm_nccl_result_t (*deregMr)(void *comm, void *mhandle);
    cnm_nccl_result_t (*isend)(void *sendComm, void *data, size_t size, int tag, void *mhandle, void *phandle,
                               void **request);
    cnm_nccl_result_t (*irecv)(void *recvComm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                               void **phandles, void **request);
    cnm_nccl_result_t (*iflush)(void *recvComm, int n, void **data, int *sizes, void **mhandles, void **request);
    cnm_nccl_result_t (*test)(void *request, int *done, int *sizes);
    cnm_nccl_result_t (*closeSend)(void *sendComm);
    cnm_nccl_result_t (*closeRecv)(void *recvComm);
    cnm_nccl_result_t (*closeListen)(void *listenComm);
    cnm_nccl_result_t (*getDeviceMr)(void *comm, void *mhandle, void **dptr_mhandle);
    cnm_nccl_result_t (*irecvConsumed)(void *recvComm, int n, void *request);
    cnm_nccl_result_t (*makeVDevice)(int *d, cnm_nccl_net_vdevice_props_t *props);
} cnm_nccl_net_v10_t;

/// Mirrors `ncclNet_v9_t`, exported as `ncclNetPlugin_v9`: like v10 without the
/// profiler callback, comm config or profiler handles.
typedef struct {
    const char *name;
    cnm_nccl_result_t (*init)(cnm_nccl_debug_logger_t logFunction);
    cnm_nccl_result_t (*devices)(int *ndev);
    cnm_nccl_result_t (*getProperties)(int dev, cnm_nccl_net_properties_v10_t *props);
    cnm_nccl_result_t (*listen)(int dev, void *handle, void **listenComm);
    cnm_nccl_result_t (*connect)(int dev, void *handle, void **sendComm, cnm_nccl_net_device_handle_t **sendDevComm);
    cnm_nccl_result_t (*accept)(void *listenComm, void **recvComm, cnm_nccl_net_device_handle_t **recvDevComm);
    cnm_nccl_result_t (*regMr)(void *comm, void *data, size_t size, int type, void **mhandle);
    cnm_nccl_result_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type, uint64_t offset, int fd,
                                     void **mhandle);
    cnm_nccl_result_t (*deregMr)(void *comm, void *mhandle);
    cnm_nccl_result_t (*isend)(void *sendComm, void *data, size_t size, int tag, void *mhandle, void **request);
    cnm_nccl_result_t (*irecv)(void *recvComm, int n, void **data, size_t *sizes, int *tags, void **mhandles,
                               void **request);
    cnm_nccl_result_t (*iflush)(void *recvComm, int n, void **data, int *sizes, void **mhandles, void **request);
    cnm_nccl_result_t (*test)(void *request, int *done, int *sizes);
    cnm_nccl_result_t (*closeSend)(void *sendComm);
    cnm_nccl_result_t (*closeRecv)(void *recvComm);
    cnm_nccl_result_t (*closeListen)(void *listenComm);
    cnm_nccl_result_t (*getDeviceMr)(void *comm, void *mhandle, void **dptr_mhandle);
    cnm_nccl_result_t (*irecvConsumed)(void *recvComm, int n, void *request);
    cnm_nccl_result_t (*makeVDevice)(int *d, cnm_nccl_net_vdevice_props_t *props);
} cnm_nccl_net_v9_t;

// MARK: Layout checks (LP64)

#if !defined(__cplusplus) && defined(__LP64__)
_Static_assert(sizeof(cnm_nccl_result_t) == 4, "ncclResult_t is an int");
_Static_assert(sizeof(cnm_nccl_net_device_handle_t) == 32, "ncclNetDeviceHandle_v11_t is 32 bytes");
_Static_assert(offsetof(cnm_nccl_net_device_handle_t, handle) == 8, "ncclNetDeviceHandle_v11_t.handle");
_Static_assert(offsetof(cnm_nccl_net_device_handle_t, needsProxyProgress) == 24, "ncclNetDeviceHandle_v11_t.needsProxyProgress");
_Static_assert(sizeof(cnm_nccl_net_vdevice_props_t) == 20, "ncclNetVDeviceProps_v11_t is 20 bytes");
_Static_assert(sizeof(cnm_nccl_net_comm_config_t) == 4, "ncclNetCommConfig_v11_t is 4 bytes");
_Static_assert(offsetof(cnm_nccl_net_properties_v11_t, ptrSupport) == 24, "ncclNetProperties_v11_t.ptrSupport");
_Static_assert(offsetof(cnm_nccl_net_properties_v11_t, latency) == 44, "ncclNetProperties_v11_t.latency");
_Static_assert(offsetof(cnm_nccl_net_properties_v11_t, netDeviceType) == 56, "ncclNetProperties_v11_t.netDeviceType");
_Static_assert(offsetof(cnm_nccl_net_properties_v11_t, vProps) == 64, "ncclNetProperties_v11_t.vProps");
_Static_assert(offsetof(cnm_nccl_net_properties_v11_t, maxP2pBytes) == 88, "ncclNetProperties_v11_t.maxP2pBytes");
_Static_assert(offsetof(cnm_nccl_net_properties_v11_t, maxMultiRequestSize) == 104, "ncclNetProperties_v11_t.maxMultiRequestSize");
_Static_assert(sizeof(cnm_nccl_net_properties_v11_t) == 112, "ncclNetProperties_v11_t is 112 bytes");
_Static_assert(sizeof(cnm_nccl_net_properties_v10_t) == 104, "ncclNetProperties_v10_t is 104 bytes");
_Static_assert(sizeof(cnm_nccl_net_attr_t) == 44, "ncclNetAttr_v11_t is 44 bytes");
_Static_assert(sizeof(cnm_nccl_net_v11_t) == 22 * sizeof(void *), "ncclNet_v11_t: name + 21 functions");
_Static_assert(offsetof(cnm_nccl_net_v11_t, test) == 13 * sizeof(void *), "ncclNet_v11_t.test");
_Static_assert(offsetof(cnm_nccl_net_v11_t, irecvConsumed) == 18 * sizeof(void *), "ncclNet_v11_t.irecvConsumed");
_Static_assert(offsetof(cnm_nccl_net_v11_t, finalize) == 20 * sizeof(void *), "ncclNet_v11_t.finalize");
_Static_assert(sizeof(cnm_nccl_net_v10_t) == 20 * sizeof(void *), "ncclNet_v10_t: name + 19 functions");
_Static_assert(sizeof(cnm_nccl_net_v9_t) == 20 * sizeof(void *), "ncclNet_v9_t: name + 19 functions");
#endif

#ifdef __cplusplus
}
#endif

#endif
