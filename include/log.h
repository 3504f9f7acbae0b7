/* log: one place for diagnostics; stderr in the foreground, syslog when daemonised. */
#ifndef CODESRCFS_LOG_H
#define CODESRCFS_LOG_H

#include <syslog.h>

/* Choose the sink and the level; debug enables LOG_DEBUG lines. */
void log_open(int debug, int foreground);
/* Send every line to path (appended) from now on. 0 or -errno. */
int log_set_file(const char *path);
/* Reopen the log file (after logrotate moved it; SIGHUP). 0 or -errno. */
int log_reopen(void);
/* Non-zero when -d asked for debug lines. */
int log_debug_enabled(void);
/* Keep stderr lines back until log_release (a failed mount then prints one line). */
void log_hold(void);
/* Print (print != 0) or drop the lines kept back, and print lines again. */
void log_release(int print);
/* Print one line at priority prio (LOG_ERR … LOG_DEBUG); never pass a secret. */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
