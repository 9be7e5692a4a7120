// The entry points of libnccl-net-netmem, implemented in Swift (NetmemNCCL, `@_cdecl`)
// with the semantics of interface version 11. The exported tables (nccl_net_netmem.c)
// point at them directly (v11) or through thin adapters (v10, v9).
#ifndef CNM_NCCL_EXPORTS_H
#define CNM_NCCL_EXPORTS_H

#include "cnm_nccl_net.h"

#ifdef __cplusplus
extern "C" {
#endif

// `logger` / `profiler` are the NCCL callbacks as untyped pointers (Swift cannot name
// variadic function types).
cnm_nccl_result_t netmem_nccl_init(void **ctx, uint64_t commId, cnm_nccl_net_comm_config_t *config,
                                   const void *logger, const void *profiler);
cnm_nccl_result_t netmem_nccl_devices(int *ndev);
cnm_nccl_result_t netmem_nccl_get_properties(int dev, cnm_nccl_net_properties_v11_t *props);
cnm_nccl_result_t netmem_nccl_listen(void *ctx, int dev, void *handle, void **listenComm);
cnm_nccl_result_t netmem_nccl_connect(void *ctx, int dev, void *handle, void **sendComm,
                                      cnm_nccl_net_device_handle_t **sendDevComm);
cnm_nccl_result_t netmem_nccl_accept(void *listenComm, void **recvComm, cnm_nccl_net_device_handle_t **recvDevComm);
cnm_nccl_result_t netmem_nccl_reg_mr(void *comm, void *data, size_t size, int type, void **mhandle);
cnm_nccl_result_t netmem_nccl_reg_mr_dmabuf(void *comm, void *data, size_t size, int type, uint64_t offset,
                                            int fd, void **mhandle);
cnm_nccl_result_t netmem_nccl_dereg_mr(void *comm, void *mhandle);
cnm_nccl_result_t netmem_nccl_isend(void *sendComm, void *data, size_t size, int tag, void *mhandle,
                                    void *phandle, void **request);
cnm_nccl_result_t netmem_nccl_irecv(void *recvComm, int n, void **data, size_t *sizes, int *tags,
                                    void **mhandles, void **phandles, void **request);
cnm_nccl_result_t netmem_nccl_iflush(void *recvComm, int n, void **data, int *sizes, void **mhandles,
                                     void **request);
cnm_nccl_result_t netmem_nccl_test(void *request, int *done, int *sizes);
cnm_nccl_result_t netmem_nccl_close_send(void *sendComm);
cnm_nccl_result_t netmem_nccl_close_recv(void *recvComm);
cnm_nccl_result_t netmem_nccl_close_listen(void *listenComm);
cnm_nccl_result_t netmem_nccl_get_device_mr(void *comm, void *mhandle, void **dptr_mhandle);
cnm_nccl_result_t netmem_nccl_irecv_consumed(void *recvComm, int n, void *request);
cnm_nccl_result_t netmem_nccl_finalize(void *ctx);
/// The plugin's counters as one JSON object, NUL-terminated, into `buffer`; returns the
/// length it needed (excluding the NUL).
size_t netmem_nccl_statistics_json(char *buffer, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
