// Calling and providing NCCL's printf-style logger, which Swift cannot do itself
// (variadic function pointers).
#ifndef CNM_NCCL_LOG_H
#define CNM_NCCL_LOG_H

#include "cnm_nccl_net.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Writes `message` through NCCL's logger (`logger(level, flags, file, line, "%s", message)`).
/// `logger` is a `cnm_nccl_debug_logger_t` passed as an untyped pointer; NULL does nothing.
void cnm_nccl_log(const void *logger, int level, unsigned long flags, const char *file, int line,
                  const char *message);

/// Where `cnm_nccl_capture_logger` sends the lines it formats.
typedef void (*cnm_nccl_log_sink_t)(int level, unsigned long flags, const char *line);

/// Sets the sink of `cnm_nccl_capture_logger` (NULL: lines are dropped). Process-wide.
void cnm_nccl_set_log_sink(cnm_nccl_log_sink_t sink);

/// A logger to hand a plugin's `init` (the role NCCL plays): formats each line and passes
/// it to the sink set with `cnm_nccl_set_log_sink`.
void cnm_nccl_capture_logger(cnm_nccl_log_level_t level, unsigned long flags, const char *file, int line,
                             const char *fmt, ...);

/// The address of `cnm_nccl_capture_logger`, for passing where an untyped pointer is wanted.
const void *cnm_nccl_capture_logger_address(void);

#ifdef __cplusplus
}
#endif

#endif
