/* log: one place for diagnostics; stderr in the foreground, syslog when daemonised. */
#ifndef CODESRCFS_LOG_H
#define CODESRCFS_LOG_H

#include <syslog.h>

/* Choose the sink and the level; debug enables LOG_DEBUG lines. */
void log_open(int debug, int foreground);
/* Non-zero when -d asked for debug lines. */
int log_debug_enabled(void);
/* Print one line at priority prio (LOG_ERR … LOG_DEBUG); never pass a secret. */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
