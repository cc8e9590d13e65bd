#include "log.h"

#include "clock.h"
#include "error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int current_level = STM_LOG_INFO;

int stm_log_parse_level(const char *name, enum stm_log_level *out) {
  static const struct {
    const char *name;
    enum stm_log_level level;
  } names[] = {{"debug", STM_LOG_DEBUG},
               {"info", STM_LOG_INFO},
               {"warn", STM_LOG_WARN},
               {"warning", STM_LOG_WARN},
               {"error", STM_LOG_ERROR}};
  for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++) {
    if (strcasecmp(name, names[i].name) == 0) {
      *out = names[i].level;
      return 0;
    }
  }
  return STM_EINVAL;
}

void stm_log_set_level(enum stm_log_level level) { current_level = level; }

enum stm_log_level stm_log_get_level(void) { return current_level; }

void stm_log(enum stm_log_level level, const char *fmt, ...) {
  if ((int)level < current_level)
    return;
  static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
  int64_t now = stm_clock_now_ns();
  struct timespec ts = {.tv_sec = (time_t)(now / 1000000000),
                        .tv_nsec = (long)(now % 1000000000)};
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char line[2048];
  int n =
      snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
               tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, tags[level]);
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof line)
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", line);
}
