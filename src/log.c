/* log: stderr in the foreground, syslog once daemonised. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_debug;
static int log_syslog;
static FILE *log_file;
static char *log_path;
static int log_holding;
static char *log_held; /* lines kept back by log_hold, or NULL */
static size_t log_held_len;

#define LOG_HELD_MAX (64 * 1024)

static int log_open_file_locked(void)
{
	FILE *f = fopen(log_path, "ae");

	if (!f)
		return -errno;
	setvbuf(f, NULL, _IOLBF, 0);
	if (log_file)
		fclose(log_file);
	log_file = f;
	return 0;
}

int log_set_file(const char *path)
{
	int r = -ENOMEM;

	pthread_mutex_lock(&log_lock);
	free(log_path);
	log_path = strdup(path);
	if (log_path)
		r = log_open_file_locked();
	pthread_mutex_unlock(&log_lock);
	return r;
}

int log_reopen(void)
{
	int r = 0;

	pthread_mutex_lock(&log_lock);
	if (log_path)
		r = log_open_file_locked();
	pthread_mutex_unlock(&log_lock);
	return r;
}

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

void log_hold(void)
{
	pthread_mutex_lock(&log_lock);
	log_holding = 1;
	pthread_mutex_unlock(&log_lock);
}

void log_release(int print)
{
	pthread_mutex_lock(&log_lock);
	if (print && log_held)
		fputs(log_held, stderr);
	free(log_held);
	log_held = NULL;
	log_held_len = 0;
	log_holding = 0;
	pthread_mutex_unlock(&log_lock);
}

/* Append one stderr line to what is kept back (lock held); past the cap, lines are lost. */
static void log_keep(const char *level, const char *line)
{
	size_t n = strlen("codesrcfs: : \n") + strlen(level) + strlen(line) + 1;
	char *p;

	if (log_held_len + n > LOG_HELD_MAX || !(p = realloc(log_held, log_held_len + n)))
		return;
	log_held = p;
	log_held_len += (size_t)snprintf(p + log_held_len, n, "codesrcfs: %s: %s\n", level, line);
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
	if (log_file) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;

		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
		fprintf(log_file, "%s codesrcfs[%ld]: %s: %s\n", stamp, (long)getpid(),
			log_level_name(prio), line);
	} else if (log_syslog)
		syslog(prio, "%s", line);
	else if (log_holding)
		log_keep(log_level_name(prio), line);
	else
		fprintf(stderr, "codesrcfs: %s: %s\n", log_level_name(prio), line);
	pthread_mutex_unlock(&log_lock);
}
