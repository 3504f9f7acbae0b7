#define _GNU_SOURCE /* vasprintf */
/* log: stderr in the foreground, syslog once daemonised, or a file (-o logfile=).
 *
 * Every line is cleaned before it goes out, whatever its source (a server's error text
 * included): the daemon's own secrets become "******", control bytes are escaped as \xNN
 * (so no text can forge a line), and a message is capped at LOG_MAX bytes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "secret.h"

#define LOG_MAX 1024

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_debug;
static int log_syslog;
static FILE *log_file;
static char *log_path;
static int log_holding;
static char *log_held; /* lines kept back by log_hold, or NULL */
static size_t log_held_len;

#define LOG_HELD_MAX (64 * 1024)
static char **log_secrets;
static size_t log_nsecrets;

static int log_open_file_locked(void)
{
	/* The log may name ids and hosts: only its owner reads it. */
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;

	if (!f) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return -e;
	}
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

/* syslog(3) drops lines silently when nothing listens, so ask the socket as it would:
 * datagram first, then stream. */
int log_syslog_reachable(void)
{
	static const int types[] = {SOCK_DGRAM, SOCK_STREAM};
	struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = _PATH_LOG};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		int r, err;

		if (fd < 0)
			return 0;
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		err = errno;
		close(fd);
		if (r == 0)
			return 1;
		if (err != EPROTOTYPE)
			return 0;
	}
	return 0;
}

int log_debug_enabled(void)
{
	int d;

	pthread_mutex_lock(&log_lock);
	d = log_debug;
	pthread_mutex_unlock(&log_lock);
	return d;
}

int log_add_secret(const char *secret)
{
	char **grown, *copy;
	int r = -ENOMEM;

	if (!secret || !*secret)
		return 0;
	pthread_mutex_lock(&log_lock);
	grown = realloc(log_secrets, (log_nsecrets + 1) * sizeof(*grown));
	if (grown) {
		log_secrets = grown;
		copy = strdup(secret);
		if (copy) {
			log_secrets[log_nsecrets++] = copy;
			r = 0;
		}
	}
	pthread_mutex_unlock(&log_lock);
	return r;
}

void log_forget_secrets(void)
{
	pthread_mutex_lock(&log_lock);
	for (size_t i = 0; i < log_nsecrets; i++)
		secret_free(log_secrets[i]);
	free(log_secrets);
	log_secrets = NULL;
	log_nsecrets = 0;
	pthread_mutex_unlock(&log_lock);
}

/* Length of the registered secret that starts at s (n bytes left), or 0. Lock held. */
static size_t secret_at(const char *s, size_t n)
{
	for (size_t i = 0; i < log_nsecrets; i++) {
		size_t len = strlen(log_secrets[i]);

		if (len <= n && s[0] == log_secrets[i][0] && !memcmp(s, log_secrets[i], len))
			return len;
	}
	return 0;
}

/* The length of s[0, o) without a last character that was cut short. */
static size_t utf8_whole(const char *s, size_t o)
{
	size_t q = o, need;
	unsigned char lead;

	while (q > 0 && o - q < 4 && ((unsigned char)s[q - 1] & 0xc0) == 0x80)
		q--;
	if (q == 0)
		return o;
	lead = (unsigned char)s[q - 1];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return o - (q - 1) < need ? q - 1 : o;
}

/* raw (n bytes) made fit for one line in out: secrets masked, control bytes escaped,
 * at most LOG_MAX bytes ending in "..." when cut, never inside a character. Lock held. */
static void log_clean(const char *raw, size_t n, char out[LOG_MAX + 1])
{
	size_t i = 0, o = 0;

	while (i < n) {
		unsigned char c = (unsigned char)raw[i];
		size_t used = secret_at(raw + i, n - i), plen = 1;
		const char *piece = raw + i;
		char esc[5];

		if (used) {
			piece = "******", plen = 6;
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			piece = esc, plen = 4, used = 1;
		} else {
			used = 1;
		}
		if (o + plen > LOG_MAX)
			break;
		memcpy(out + o, piece, plen);
		o += plen;
		i += used;
	}
	if (i < n) {
		o = utf8_whole(out, o > LOG_MAX - 3 ? LOG_MAX - 3 : o);
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
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

/* One clean line to the sink. Lock held. */
static void log_write(int prio, const char *line)
{
	if (log_file) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;

		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
		fprintf(log_file, "%s codesrcfs[%ld]: %s: %s\n", stamp, (long)getpid(),
			log_level_name(prio), line);
	} else if (log_syslog) {
		syslog(prio, "%s", line);
	} else if (log_holding) {
		log_keep(log_level_name(prio), line);
	} else {
		fprintf(stderr, "codesrcfs: %s: %s\n", log_level_name(prio), line);
	}
}

void log_msg(int prio, const char *fmt, ...)
{
	char line[LOG_MAX + 1], *raw = NULL;
	va_list ap;
	int n;

	if (prio == LOG_DEBUG && !log_debug_enabled())
		return;
	/* Formatted whole, so a secret is masked before any cut could leave a piece of it. */
	va_start(ap, fmt);
	n = vasprintf(&raw, fmt, ap);
	va_end(ap);

	/* One lock around the write keeps lines from several threads whole. */
	pthread_mutex_lock(&log_lock);
	if (n < 0)
		snprintf(line, sizeof(line), "(a line was lost: out of memory)");
	else
		log_clean(raw, (size_t)n, line);
	log_write(prio, line);
	pthread_mutex_unlock(&log_lock);
	if (n >= 0) {
		secret_wipe(raw, (size_t)n);
		free(raw);
	}
}
