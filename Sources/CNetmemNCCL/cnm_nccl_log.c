#include "cnm_nccl_log.h"

#include <stdarg.h>
#include <stdio.h>

void cnm_nccl_log(const void *logger, int level, unsigned long flags, const char *file, int line,
                  const char *message) {
    if (logger == NULL) return;
    cnm_nccl_debug_logger_t fn = (cnm_nccl_debug_logger_t)logger;
    fn((cnm_nccl_log_level_t)level, flags, file, line, "%s", message);
}

static cnm_nccl_log_sink_t cnm_nccl_sink;

void cnm_nccl_set_log_sink(cnm_nccl_log_sink_t sink) {
    __atomic_store_n(&cnm_nccl_sink, sink, __ATOMIC_RELEASE);
}

void cnm_nccl_capture_logger(cnm_nccl_log_level_t level, unsigned long flags, const char *file, int line,
                             const char *fmt, ...) {
    (void)file;
    (void)line;
    cnm_nccl_log_sink_t sink = __atomic_load_n(&cnm_nccl_sink, __ATOMIC_ACQUIRE);
    if (sink == NULL) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sink((int)level, flags, buf);
}

const void *cnm_nccl_capture_logger_address(void) { return (const void *)&cnm_nccl_capture_logger; }
