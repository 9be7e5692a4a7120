// The data symbols NCCL looks up in libnccl-net-netmem.so: `ncclNetPlugin_v11` (NCCL 2.28
// and later), and `ncclNetPlugin_v10` / `ncclNetPlugin_v9` for older NCCL, adapting their
// signatures to the version-11 implementation.
#include "cnm_nccl_exports.h"

#include <string.h>

#define CNM_EXPORT __attribute__((visibility("default")))

static const char cnm_plugin_name[] = "Netmem";

// The logger crosses into Swift as an untyped pointer.
static cnm_nccl_result_t cnm_v11_init(void **ctx, uint64_t commId, cnm_nccl_net_comm_config_t *config,
                                      cnm_nccl_debug_logger_t logger, cnm_nccl_profiler_callback_t profiler) {
    return netmem_nccl_init(ctx, commId, config, (const void *)logger, (const void *)profiler);
}

CNM_EXPORT cnm_nccl_net_v11_t ncclNetPlugin_v11 = {
    .name = cnm_plugin_name,
    .init = cnm_v11_init,
    .devices = netmem_nccl_devices,
    .getProperties = netmem_nccl_get_properties,
    .listen = netmem_nccl_listen,
    .connect = netmem_nccl_connect,
    .accept = netmem_nccl_accept,
    .regMr = netmem_nccl_reg_mr,
    .regMrDmaBuf = netmem_nccl_reg_mr_dmabuf,
    .deregMr = netmem_nccl_dereg_mr,
    .isend = netmem_nccl_isend,
    .irecv = netmem_nccl_irecv,
    .iflush = netmem_nccl_iflush,
    .test = netmem_nccl_test,
    .closeSend = netmem_nccl_close_send,
    .closeRecv = netmem_nccl_close_recv,
    .closeListen = netmem_nccl_close_listen,
    .getDeviceMr = netmem_nccl_get_device_mr,
    .irecvConsumed = netmem_nccl_irecv_consumed,
    .makeVDevice = NULL,  // one device; nothing to merge
    .finalize = netmem_nccl_finalize,
    .setNetAttr = NULL,   // no tuning hints taken
};

// MARK: Version 10 and 9: one context per process, created by the first init.

static void *cnm_legacy_ctx;

static cnm_nccl_result_t cnm_legacy_init(cnm_nccl_debug_logger_t logger, cnm_nccl_profiler_callback_t profiler) {
    if (__atomic_load_n(&cnm_legacy_ctx, __ATOMIC_ACQUIRE) != NULL) return CNM_NCCL_SUCCESS;
    void *ctx = NULL;
    cnm_nccl_result_t r = netmem_nccl_init(&ctx, 0, NULL, (const void *)logger, (const void *)profiler);
    if (r != CNM_NCCL_SUCCESS) return r;
    void *expected = NULL;
    if (!__atomic_compare_exchange_n(&cnm_legacy_ctx, &expected, ctx, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        netmem_nccl_finalize(ctx);  // another thread won the race
    }
    return CNM_NCCL_SUCCESS;
}

static void *cnm_ctx(void) { return __atomic_load_n(&cnm_legacy_ctx, __ATOMIC_ACQUIRE); }

_Static_assert(offsetof(cnm_nccl_net_properties_v11_t, maxCollBytes) ==
                   offsetof(cnm_nccl_net_properties_v10_t, maxCollBytes),
               "v10 properties are a prefix of v11");

static cnm_nccl_result_t cnm_legacy_get_properties(int dev, cnm_nccl_net_properties_v10_t *props) {
    cnm_nccl_net_properties_v11_t p;
    memset(&p, 0, sizeof p);
    cnm_nccl_result_t r = netmem_nccl_get_properties(dev, &p);
    if (r == CNM_NCCL_SUCCESS) memcpy(props, &p, sizeof *props);
    return r;
}

static cnm_nccl_result_t cnm_legacy_listen(int dev, void *handle, void **listenComm) {
    return netmem_nccl_listen(cnm_ctx(), dev, handle, listenComm);
}

static cnm_nccl_result_t cnm_v10_connect(int dev, cnm_nccl_net_comm_config_t *config, void *handle,
                                         void **sendComm, cnm_nccl_net_device_handle_t **sendDevComm) {
    (void)config;
    return netmem_nccl_connect(cnm_ctx(), dev, handle, sendComm, sendDevComm);
}

CNM_EXPORT cnm_nccl_net_v10_t ncclNetPlugin_v10 = {
    .name = cnm_plugin_name,
    .init = cnm_legacy_init,
    .devices = netmem_nccl_devices,
    .getProperties = cnm_legacy_get_properties,
    .listen = cnm_legacy_listen,
    .connect = cnm_v10_connect,
    .accept = netmem_nccl_accept,
    .regMr = netmem_nccl_reg_mr,
    .regMrDmaBuf = netmem_nccl_reg_mr_dmabuf,
    .deregMr = netmem_nccl_dereg_mr,
    .isend = netmem_nccl_isend,
    .irecv = netmem_nccl_irecv,
    .iflush = netmem_nccl_iflush,
    .test = netmem_nccl_test,
    .closeSend = netmem_nccl_close_send,
    .closeRecv = netmem_nccl_close_recv,
    .closeListen = netmem_nccl_close_listen,
    .getDeviceMr = netmem_nccl_get_device_mr,
    .irecvConsumed = netmem_nccl_irecv_consumed,
    .makeVDevice = NULL,
};

static cnm_nccl_result_t cnm_v9_init(cnm_nccl_debug_logger_t logger) { return cnm_legacy_init(logger, NULL); }

static cnm_nccl_result_t cnm_v9_connect(int dev, void *handle, void **sendComm,
                                        cnm_nccl_net_device_handle_t **sendDevComm) {
    return netmem_nccl_connect(cnm_ctx(), dev, handle, sendComm, sendDevComm);
}

static cnm_nccl_result_t cnm_v9_isend(void *sendComm, void *data, size_t size, int tag, void *mhandle,
                                      void **request) {
    return netmem_nccl_isend(sendComm, data, size, tag, mhandle, NULL, request);
}

static cnm_nccl_result_t cnm_v9_irecv(void *recvComm, int n, void **data, size_t *sizes, int *tags,
                                      void **mhandles, void **request) {
    return netmem_nccl_irecv(recvComm, n, data, sizes, tags, mhandles, NULL, request);
}

CNM_EXPORT cnm_nccl_net_v9_t ncclNetPlugin_v9 = {
    .name = cnm_plugin_name,
    .init = cnm_v9_init,
    .devices = netmem_nccl_devices,
    .getProperties = cnm_legacy_get_properties,
    .listen = cnm_legacy_listen,
    .connect = cnm_v9_connect,
    .accept = netmem_nccl_accept,
    .regMr = netmem_nccl_reg_mr,
    .regMrDmaBuf = netmem_nccl_reg_mr_dmabuf,
    .deregMr = netmem_nccl_dereg_mr,
    .isend = cnm_v9_isend,
    .irecv = cnm_v9_irecv,
    .iflush = netmem_nccl_iflush,
    .test = netmem_nccl_test,
    .closeSend = netmem_nccl_close_send,
    .closeRecv = netmem_nccl_close_recv,
    .closeListen = netmem_nccl_close_listen,
    .getDeviceMr = netmem_nccl_get_device_mr,
    .irecvConsumed = netmem_nccl_irecv_consumed,
    .makeVDevice = NULL,
};

CNM_EXPORT size_t netmem_nccl_plugin_statistics(char *buffer, size_t capacity) {
    return netmem_nccl_statistics_json(buffer, capacity);
}
