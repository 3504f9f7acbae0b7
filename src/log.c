/* log: stderr in the foreground, syslog once daemonised. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_debug;
static int log_syslog;

void log_open(int debug, int foreground)
{
	pthread_mutex_lock(&log_lock);
	log_debug = debug;
	log_syslog = !foreground;
	if (log_syslog)
		openlog("codesrcfs", LOG_PID, LOG_DAEMON);
	pthread_mutex_unlock(&log_lock);
}

int log_debug_enabled(void)
{
	int d;

	pthread_mutex_lock(&log_lock);
	d = log_debug;
	pthread_mutex_unlock(&log_lock);
	return d;
}

static const char *log_level_name(int prio)
{
	switch (prio) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void log_msg(int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (prio == LOG_DEBUG && !log_debug_enabled())
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

	/* One lock around the write keeps lines from several threads whole. */
	pthread_mutex_lock(&log_lock);
	if (log_syslog)
		syslog(prio, "%s", line);
	else
		fprintf(stderr, "codesrcfs: %s: %s\n", log_level_name(prio), line);
	pthread_mutex_unlock(&log_lock);
}
