/* cfgcheck: whether one configuration value holds, and the one line that says why not.
 *
 * A name is printed as written (escaped) unless it looks like a credential: a stray secret
 * on a line of its own must not end up on stderr. An endpoint is where the credentials go,
 * so plain http:// is for a loopback host only. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfgcheck.h"

#define CFGCHECK_MAX_VALUE 4096 /* STS tokens run to a couple of thousand bytes */
#define CFGCHECK_MAX_URL   512
#define CFGCHECK_MAX_RUN   16 /* letters and digits in a row that no name holds */

int cfgcheck_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int cfgcheck_nomem(char *err, size_t errlen)
{
	cfgcheck_fail(err, errlen, "out of memory");
	return -ENOMEM;
}

/* Does the run of n letters and digits at s look like a piece of a credential: long, a
 * letter after a digit ("S3CR3T"), or capitals, small letters and digits all at once? */
static int cfgcheck_random_run(const char *s, size_t n)
{
	size_t lower = 0, upper = 0, digit = 0;

	for (size_t i = 0; i < n; i++) {
		if (i && isdigit((unsigned char)s[i - 1]) && isalpha((unsigned char)s[i]))
			return 1;
		lower += islower((unsigned char)s[i]) != 0;
		upper += isupper((unsigned char)s[i]) != 0;
		digit += isdigit((unsigned char)s[i]) != 0;
	}
	return n >= CFGCHECK_MAX_RUN || (lower && upper && digit);
}

/* What a credential looks like and no key or section name does: a secret pasted on a line
 * of its own (with its trailing '=') must not end up on stderr. */
static int cfgcheck_secret_like(const char *s)
{
	static const char alnum[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

	if (strlen(s) > CFGCHECK_MAX_NAME)
		return 1;
	while (*s) {
		size_t run = strspn(s, alnum);

		if (cfgcheck_random_run(s, run))
			return 1;
		s += run ? run : 1;
	}
	return 0;
}

/* name as written, for an error: capitals kept, bytes outside printable ASCII and '\' as
 * \xNN. 0, or -1 (buf empty) when it looks like a credential. */
int cfgcheck_name(const char *name, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	if (cfgcheck_secret_like(name))
		return -1;
	for (const unsigned char *p = (const unsigned char *)name; *p && o + 5 <= len; p++) {
		if (*p < 0x20 || *p >= 0x7f || *p == '\\')
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o] = '\0';
	return 0;
}

/* Control characters other than those in allow. */
static int cfgcheck_has_control(const char *s, const char *allow)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 || *s == 0x7f) && !strchr(allow, *s))
			return 1;
	return 0;
}

static int cfgcheck_is_loopback(const char *host, int bracketed)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (bracketed)
		return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost."))
		return 1;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static int cfgcheck_port_ok(const char *p)
{
	size_t n = strlen(p);
	long v;

	if (!n || n > 5 || strspn(p, "0123456789") != n)
		return 0;
	v = strtol(p, NULL, 10);
	return v >= 1 && v <= 65535;
}

/* Splits "host[:port]" / "[v6][:port]" in place; host and port point into a. */
static int cfgcheck_split_authority(char *a, char **host, char **port, int *bracketed, char *err,
				    size_t errlen)
{
	char *close, *colon;

	*host = a;
	*port = NULL;
	*bracketed = a[0] == '[';
	if (*bracketed) {
		close = strchr(a, ']');
		if (!close || (close[1] && close[1] != ':'))
			return cfgcheck_fail(err, errlen, "malformed IPv6 address in endpoint");
		*close = '\0';
		*host = a + 1;
		if (close[1])
			*port = close + 2;
		return 0;
	}
	colon = strchr(a, ':');
	if (colon && strchr(colon + 1, ':'))
		return cfgcheck_fail(err, errlen, "an IPv6 endpoint host must be in brackets");
	if (colon) {
		*colon = '\0';
		*port = colon + 1;
	}
	*host = a;
	return 0;
}

static int cfgcheck_host_ok(const char *host, int bracketed)
{
	struct in6_addr a6;
	size_t n = strlen(host);

	if (bracketed)
		return inet_pton(AF_INET6, host, &a6) == 1;
	return n && n <= 253 &&
	       strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
		   n;
}

/* Checks the authority part (a copy, split in place) and the scheme's host rule. */
static int cfgcheck_authority(char *a, int https, char *err, size_t errlen)
{
	char *host, *port;
	int bracketed, rc;

	if (strchr(a, '@'))
		return cfgcheck_fail(err, errlen,
				     "endpoint must not contain a user name or password");
	rc = cfgcheck_split_authority(a, &host, &port, &bracketed, err, errlen);
	if (rc)
		return rc;
	if (!*host)
		return cfgcheck_fail(err, errlen, "endpoint has an empty host");
	if (!cfgcheck_host_ok(host, bracketed))
		return cfgcheck_fail(err, errlen,
				     "endpoint host is not a valid host name or address");
	if (port && !cfgcheck_port_ok(port))
		return cfgcheck_fail(err, errlen, "endpoint port must be a number from 1 to 65535");
	if (!https && !cfgcheck_is_loopback(host, bracketed))
		return cfgcheck_fail(err, errlen,
				     "endpoint may use http:// only for a loopback host "
				     "(127.0.0.0/8, [::1], localhost); use https://");
	return 0;
}

int cfgcheck_endpoint(const char *url, char *err, size_t errlen)
{
	char a[CFGCHECK_MAX_URL];
	size_t skip, alen;
	const char *rest;
	int https;

	if (!url || !*url || strlen(url) >= CFGCHECK_MAX_URL || strpbrk(url, " \t") ||
	    cfgcheck_has_control(url, ""))
		return cfgcheck_fail(err, errlen, "endpoint is empty, too long or contains blanks");
	https = !strncasecmp(url, "https://", 8);
	if (!https && strncasecmp(url, "http://", 7))
		return cfgcheck_fail(err, errlen, "endpoint must begin with https://");
	skip = https ? 8 : 7;
	alen = strcspn(url + skip, "/?#");
	rest = url + skip + alen;
	if (*rest && strcmp(rest, "/"))
		return cfgcheck_fail(
		    err, errlen, "endpoint must be scheme://host[:port], without a path or query");
	memcpy(a, url + skip, alen);
	a[alen] = '\0';
	return cfgcheck_authority(a, https, err, errlen);
}

/* A tab may separate list items; anywhere else a control character is a mistake. */
int cfgcheck_value(const char *v, enum prov_field f)
{
	if (strlen(v) > CFGCHECK_MAX_VALUE)
		return -E2BIG;
	return cfgcheck_has_control(v, f == PROV_SCOPES ? "\t" : "") ? -EINVAL : 0;
}

/* Why a value was refused: cfgcheck_value's or cfgstore_set's error. */
const char *cfgcheck_why(int rc, enum prov_field f)
{
	if (rc == -E2BIG)
		return f == PROV_SCOPES ? "holds an id that is too long" : "is too long";
	if (rc == -EINVAL && f == PROV_SCOPES)
		return "lists '.' or '..', which is no id";
	return "contains control characters";
}

int cfgcheck_region(const char *r)
{
	size_t n = strlen(r);

	return n && n <= 64 &&
	       strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}
