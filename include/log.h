/* log: one place for diagnostics; stderr in the foreground, syslog when daemonised.
 * Lines are scrubbed of registered secrets and control bytes, and capped at 1,024 bytes. */
#ifndef CODESRCFS_LOG_H
#define CODESRCFS_LOG_H

#include <syslog.h>

/* Choose the sink and the level; debug enables LOG_DEBUG lines. */
void log_open(int debug, int foreground);
/* Send every line to path (appended; created mode 0600) from now on. 0 or -errno. */
int log_set_file(const char *path);
/* Reopen the log file (after logrotate moved it; SIGHUP). 0 or -errno. */
int log_reopen(void);
/* Non-zero when a syslog daemon listens on _PATH_LOG (/dev/log). */
int log_syslog_reachable(void);
/* Non-zero when -d asked for debug lines. */
int log_debug_enabled(void);
/* Keep stderr lines back until log_release (a failed mount then prints one line). */
void log_hold(void);
/* Print (print != 0) or drop the lines kept back, and print lines again. */
void log_release(int print);
/* Mask secret (copied) as "******" in every later line; NULL or "" is ignored. 0 or -ENOMEM. */
int log_add_secret(const char *secret);
/* Wipe and forget every registered secret. */
void log_forget_secrets(void);
/* Print one line at priority prio (LOG_ERR … LOG_DEBUG); never pass a secret. */
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
