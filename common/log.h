/*
 * log.h - leveled log lines with time, to stderr.
 *
 * Format: "2026-11-25T11:37:42.123Z INFO  message". Thread-safe: one
 * fprintf per line. The level filter is process-wide.
 */
#ifndef STM_LOG_H
#define STM_LOG_H

enum stm_log_level {
  STM_LOG_DEBUG = 0,
  STM_LOG_INFO = 1,
  STM_LOG_WARN = 2,
  STM_LOG_ERROR = 3,
};

/* Parse "debug", "info", "warn"/"warning", "error". Returns 0 or STM_EINVAL. */
int stm_log_parse_level(const char *name, enum stm_log_level *out);
void stm_log_set_level(enum stm_log_level level);
enum stm_log_level stm_log_get_level(void);

void stm_log(enum stm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define stm_log_debug(...) stm_log(STM_LOG_DEBUG, __VA_ARGS__)
#define stm_log_info(...) stm_log(STM_LOG_INFO, __VA_ARGS__)
#define stm_log_warn(...) stm_log(STM_LOG_WARN, __VA_ARGS__)
#define stm_log_error(...) stm_log(STM_LOG_ERROR, __VA_ARGS__)

#endif
