/* config: the INI file, the environment and validation of what they say.
 *
 * Order: the file (if any), then the environment (which wins, key by key), then
 * defaults, then checks. Errors are one line in err; they name files, lines, sections
 * and keys but never print a value, and a name is printed as written (escaped) unless it
 * looks like a credential (a stray secret on a line of its own must not end up on stderr).
 * Where each credential and id list came from is kept for the refusals at mount.
 *
 * Key ids (access_key_id, access_key) are not secrets: a file holding only those may be
 * readable by others. Secrets and STS tokens make the file private. Whatever it holds, the
 * file must be the user's (or root's) and writable by no one else: an endpoint is where
 * the credentials go. */
#define _GNU_SOURCE /* asprintf, vasprintf, environ, strcasecmp */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "credfile.h"
#include "provider.h"
#include "secret.h"

#define CFG_MAX_LINE  8192
#define CFG_MAX_VALUE 4096 /* STS tokens run to a couple of thousand bytes */
#define CFG_MAX_URL   512
#define CFG_MAX_NAME  32		     /* longest name worth echoing back in an error */
#define CFG_MAX_RUN   16		     /* letters and digits in a row that no name holds */
#define CFG_SHOWN     (CFG_MAX_NAME * 4 + 1) /* a name escaped by cfg_show_name */
#define CFG_MAX_SCOPE 256

#define CFG_MAX_KEYS 64 /* a bit each in cfg_parse.seen */

/* State of one file being read. */
struct cfg_parse {
	struct config *c;
	const char *path;
	unsigned long line;
	int section;	/* index in c->prov, or -1 before the first header */
	uint64_t *seen; /* per section, a bit per key index: duplicates are errors */
	int has_secret;
	char *err;
	size_t errlen;
};

static int cfg_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cfg_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int cfg_nomem(char *err, size_t errlen)
{
	cfg_fail(err, errlen, "out of memory");
	return -ENOMEM;
}

/* ---- small string helpers ---- */

static int cfg_blank(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static char *cfg_trim(char *s)
{
	char *end;

	while (cfg_blank((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && cfg_blank((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* A ';' or '#' at the start or after a blank opens a comment that runs to the end. */
static void cfg_cut_comment(char *s)
{
	char *p;

	for (p = s; *p; p++) {
		if ((*p == ';' || *p == '#') && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
	}
}

/* Does the run of n letters and digits at s look like a piece of a credential: long, a
 * letter after a digit ("S3CR3T"), or capitals, small letters and digits all at once? */
static int cfg_random_run(const char *s, size_t n)
{
	size_t lower = 0, upper = 0, digit = 0;

	for (size_t i = 0; i < n; i++) {
		if (i && isdigit((unsigned char)s[i - 1]) && isalpha((unsigned char)s[i]))
			return 1;
		lower += islower((unsigned char)s[i]) != 0;
		upper += isupper((unsigned char)s[i]) != 0;
		digit += isdigit((unsigned char)s[i]) != 0;
	}
	return n >= CFG_MAX_RUN || (lower && upper && digit);
}

/* What a credential looks like and no key or section name does: a secret pasted on a line
 * of its own (with its trailing '=') must not end up on stderr. */
static int cfg_secret_like(const char *s)
{
	static const char alnum[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

	if (strlen(s) > CFG_MAX_NAME)
		return 1;
	while (*s) {
		size_t run = strspn(s, alnum);

		if (cfg_random_run(s, run))
			return 1;
		s += run ? run : 1;
	}
	return 0;
}

/* name as written, for an error: capitals kept, bytes outside printable ASCII and '\' as
 * \xNN. 0, or -1 (buf empty) when it looks like a credential. */
static int cfg_show_name(const char *name, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	if (cfg_secret_like(name))
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
static int cfg_has_control(const char *s, const char *allow)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 || *s == 0x7f) && !strchr(allow, *s))
			return 1;
	return 0;
}

/* ---- endpoints ---- */

static int cfg_is_loopback(const char *host, int bracketed)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (bracketed)
		return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost."))
		return 1;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static int cfg_port_ok(const char *p)
{
	size_t n = strlen(p);
	long v;

	if (!n || n > 5 || strspn(p, "0123456789") != n)
		return 0;
	v = strtol(p, NULL, 10);
	return v >= 1 && v <= 65535;
}

/* Splits "host[:port]" / "[v6][:port]" in place; host and port point into a. */
static int cfg_split_authority(char *a, char **host, char **port, int *bracketed, char *err,
			       size_t errlen)
{
	char *close, *colon;

	*host = a;
	*port = NULL;
	*bracketed = a[0] == '[';
	if (*bracketed) {
		close = strchr(a, ']');
		if (!close || (close[1] && close[1] != ':'))
			return cfg_fail(err, errlen, "malformed IPv6 address in endpoint");
		*close = '\0';
		*host = a + 1;
		if (close[1])
			*port = close + 2;
		return 0;
	}
	colon = strchr(a, ':');
	if (colon && strchr(colon + 1, ':'))
		return cfg_fail(err, errlen, "an IPv6 endpoint host must be in brackets");
	if (colon) {
		*colon = '\0';
		*port = colon + 1;
	}
	*host = a;
	return 0;
}

static int cfg_host_ok(const char *host, int bracketed)
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
static int cfg_check_authority(char *a, int https, char *err, size_t errlen)
{
	char *host, *port;
	int bracketed, rc;

	if (strchr(a, '@'))
		return cfg_fail(err, errlen, "endpoint must not contain a user name or password");
	rc = cfg_split_authority(a, &host, &port, &bracketed, err, errlen);
	if (rc)
		return rc;
	if (!*host)
		return cfg_fail(err, errlen, "endpoint has an empty host");
	if (!cfg_host_ok(host, bracketed))
		return cfg_fail(err, errlen, "endpoint host is not a valid host name or address");
	if (port && !cfg_port_ok(port))
		return cfg_fail(err, errlen, "endpoint port must be a number from 1 to 65535");
	if (!https && !cfg_is_loopback(host, bracketed))
		return cfg_fail(err, errlen,
				"endpoint may use http:// only for a loopback host "
				"(127.0.0.0/8, [::1], localhost); use https://");
	return 0;
}

int config_check_endpoint(const char *url, char *err, size_t errlen)
{
	char a[CFG_MAX_URL];
	size_t skip, alen;
	const char *rest;
	int https;

	if (!url || !*url || strlen(url) >= CFG_MAX_URL || strpbrk(url, " \t") ||
	    cfg_has_control(url, ""))
		return cfg_fail(err, errlen, "endpoint is empty, too long or contains blanks");
	https = !strncasecmp(url, "https://", 8);
	if (!https && strncasecmp(url, "http://", 7))
		return cfg_fail(err, errlen, "endpoint must begin with https://");
	skip = https ? 8 : 7;
	alen = strcspn(url + skip, "/?#");
	rest = url + skip + alen;
	if (*rest && strcmp(rest, "/"))
		return cfg_fail(err, errlen,
				"endpoint must be scheme://host[:port], without a path or query");
	memcpy(a, url + skip, alen);
	a[alen] = '\0';
	return cfg_check_authority(a, https, err, errlen);
}

/* ---- storing values ---- */

static char **cfg_slot(struct prov_conf *pc, enum prov_field f)
{
	switch (f) {
	case PROV_KEY_ID:
		return &pc->key_id;
	case PROV_SECRET:
		return &pc->secret;
	case PROV_TOKEN:
		return &pc->token;
	case PROV_REGION:
		return &pc->region;
	case PROV_ENDPOINT:
		return &pc->endpoint;
	default:
		return NULL;
	}
}

static void cfg_scopes_free(struct prov_conf *pc)
{
	size_t i;

	for (i = 0; i < pc->nscopes; i++)
		free(pc->scopes[i]);
	free(pc->scopes);
	pc->scopes = NULL;
	pc->nscopes = 0;
}

static int cfg_scope_add(struct prov_conf *pc, const char *s, size_t len)
{
	char **grown;
	size_t i;

	if (len > CFG_MAX_SCOPE)
		return -E2BIG;
	/* A path segment "." or ".." would leave the organization's URL. */
	if ((len == 1 || len == 2) && !strncmp(s, "..", len))
		return -EINVAL;
	for (i = 0; i < pc->nscopes; i++)
		if (strlen(pc->scopes[i]) == len && !memcmp(pc->scopes[i], s, len))
			return 0; /* listed twice: one directory */
	grown = realloc(pc->scopes, (pc->nscopes + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	pc->scopes = grown;
	pc->scopes[pc->nscopes] = strndup(s, len);
	if (!pc->scopes[pc->nscopes])
		return -ENOMEM;
	pc->nscopes++;
	return 0;
}

/* "a, b c" → {a, b, c}; replaces any earlier list. */
static int cfg_set_scopes(struct prov_conf *pc, const char *list)
{
	static const char sep[] = ", \t";
	const char *p = list;
	size_t len;
	int rc = 0;

	cfg_scopes_free(pc);
	while (!rc && *(p += strspn(p, sep))) {
		len = strcspn(p, sep);
		rc = cfg_scope_add(pc, p, len);
		p += len;
	}
	if (rc)
		cfg_scopes_free(pc);
	return rc;
}

/* Where the value of f is said to come from, or NULL when no message names it. */
static char **cfg_from_slot(struct prov_conf *pc, enum prov_field f)
{
	switch (f) {
	case PROV_KEY_ID:
		return &pc->key_id_from;
	case PROV_SECRET:
		return &pc->secret_from;
	case PROV_TOKEN:
		return &pc->token_from;
	case PROV_SCOPES:
		return &pc->scopes_from;
	default:
		return NULL;
	}
}

/* Records from (a format) as where f's value came from; NULL when it was unset. */
static int cfg_set_from(struct prov_conf *pc, enum prov_field f, int set, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cfg_set_from(struct prov_conf *pc, enum prov_field f, int set, const char *fmt, ...)
{
	char **slot = cfg_from_slot(pc, f), *from = NULL;
	va_list ap;
	int n;

	if (!slot)
		return 0;
	if (set) {
		va_start(ap, fmt);
		n = vasprintf(&from, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -ENOMEM;
	}
	free(*slot);
	*slot = from;
	return 0;
}

/* Stores value (already checked) in field; an empty value unsets it. */
static int cfg_store(struct prov_conf *pc, enum prov_field f, const char *value)
{
	char **slot, *copy;

	if (f == PROV_SCOPES)
		return cfg_set_scopes(pc, value);
	slot = cfg_slot(pc, f);
	copy = *value ? strdup(value) : NULL;
	if (*value && !copy)
		return -ENOMEM;
	secret_free(*slot);
	*slot = copy;
	return 0;
}

/* ---- the file ---- */

/* A tab may separate list items; anywhere else a control character is a mistake. */
static int cfg_value_check(const char *v, enum prov_field f)
{
	if (strlen(v) > CFG_MAX_VALUE)
		return -E2BIG;
	return cfg_has_control(v, f == PROV_SCOPES ? "\t" : "") ? -EINVAL : 0;
}

static const char *cfg_section(const struct cfg_parse *p)
{
	return p->c->prov[p->section].desc->name;
}

/* Appends name, the k-th of n, to the list in buf: "a, b or c". */
static void cfg_list_add(char *buf, size_t len, size_t k, size_t n, const char *name)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", k == 0 ? "" : k + 1 == n ? " or " : ", ", name);
}

/* "pai, volc or codeup": the sections the table knows. */
static void cfg_expected_sections(const struct config *c, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t k = 0; k < c->nprov; k++)
		cfg_list_add(buf, len, k, c->nprov, c->prov[k].desc->name);
}

/* "token, endpoint or organizations": the keys of d. */
static void cfg_expected_keys(const struct prov_desc *d, char *buf, size_t len)
{
	size_t n = 0;

	while (n < CFG_MAX_KEYS && d->keys[n].name)
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		cfg_list_add(buf, len, i, n, d->keys[i].name);
}

static int cfg_unknown_section(struct cfg_parse *p, const char *name)
{
	char expected[512], shown[CFG_SHOWN];

	cfg_expected_sections(p->c, expected, sizeof(expected));
	if (cfg_show_name(name, shown, sizeof(shown)) < 0)
		return cfg_fail(p->err, p->errlen,
				"%s:%lu: unknown section (not shown: it looks like a credential; "
				"expected %s)",
				p->path, p->line, expected);
	return cfg_fail(p->err, p->errlen, "%s:%lu: unknown section [%s] (expected %s)", p->path,
			p->line, shown, expected);
}

static int cfg_parse_section(struct cfg_parse *p, char *s)
{
	char *close = strchr(s, ']'), *name;

	cfg_cut_comment(close ? close + 1 : s);
	if (!close || *cfg_trim(close + 1))
		return cfg_fail(p->err, p->errlen, "%s:%lu: malformed section header", p->path,
				p->line);
	*close = '\0';
	name = cfg_trim(s + 1);
	for (size_t k = 0; k < p->c->nprov; k++) {
		if (!strcmp(name, p->c->prov[k].desc->name)) {
			p->section = (int)k;
			return 0;
		}
	}
	return cfg_unknown_section(p, name);
}

static int cfg_find_key(const struct prov_desc *d, const char *name)
{
	for (int i = 0; i < CFG_MAX_KEYS && d->keys[i].name; i++)
		if (!strcmp(d->keys[i].name, name))
			return i;
	return -1;
}

static int cfg_unknown_key(struct cfg_parse *p, const char *name)
{
	char expected[1024], shown[CFG_SHOWN];

	cfg_expected_keys(p->c->prov[p->section].desc, expected, sizeof(expected));
	if (cfg_show_name(name, shown, sizeof(shown)) < 0)
		return cfg_fail(p->err, p->errlen,
				"%s:%lu: unknown key in [%s] (not shown: it looks like a "
				"credential; expected %s)",
				p->path, p->line, cfg_section(p), expected);
	return cfg_fail(p->err, p->errlen, "%s:%lu: unknown key '%s' in [%s] (expected %s)",
			p->path, p->line, shown, cfg_section(p), expected);
}

/* Why a value was refused: cfg_value_check's or cfg_store's error. */
static const char *cfg_why(int rc, enum prov_field f)
{
	if (rc == -E2BIG)
		return f == PROV_SCOPES ? "holds an id that is too long" : "is too long";
	if (rc == -EINVAL && f == PROV_SCOPES)
		return "lists '.' or '..', which is no id";
	return "contains control characters";
}

static int cfg_bad_value(struct cfg_parse *p, const char *name, int rc, enum prov_field f)
{
	return cfg_fail(p->err, p->errlen, "%s:%lu: value of '%s' in [%s] %s", p->path, p->line,
			name, cfg_section(p), cfg_why(rc, f));
}

static int cfg_endpoint_value(struct cfg_parse *p, const char *v)
{
	char why[256];

	if (!*v || !config_check_endpoint(v, why, sizeof(why)))
		return 0;
	return cfg_fail(p->err, p->errlen, "%s:%lu: [%s] %s", p->path, p->line, cfg_section(p),
			why);
}

/* Index in the section's keys of a known key not seen before in this section, or -EINVAL. */
static int cfg_lookup_key(struct cfg_parse *p, const char *name)
{
	int i;

	if (!*name || strpbrk(name, " \t:"))
		return cfg_fail(p->err, p->errlen, "%s:%lu: expected 'key = value'", p->path,
				p->line);
	if (p->section < 0)
		return cfg_fail(p->err, p->errlen, "%s:%lu: key outside of any section", p->path,
				p->line);
	i = cfg_find_key(p->c->prov[p->section].desc, name);
	if (i < 0)
		return cfg_unknown_key(p, name);
	if (p->seen[p->section] & (UINT64_C(1) << i))
		return cfg_fail(p->err, p->errlen, "%s:%lu: '%s' set twice in [%s]", p->path,
				p->line, name, cfg_section(p));
	p->seen[p->section] |= UINT64_C(1) << i;
	return i;
}

static int cfg_parse_key(struct cfg_parse *p, char *line, char *eq)
{
	const struct prov_key *key;
	char *name, *value;
	int i, rc;

	*eq = '\0';
	name = cfg_trim(line);
	value = eq + 1;
	cfg_cut_comment(value);
	value = cfg_trim(value);
	i = cfg_lookup_key(p, name);
	if (i < 0)
		return i;
	key = &p->c->prov[p->section].desc->keys[i];
	rc = cfg_value_check(value, key->field);
	if (rc)
		return cfg_bad_value(p, name, rc, key->field);
	if (key->field == PROV_ENDPOINT && (rc = cfg_endpoint_value(p, value)))
		return rc;
	rc = cfg_store(&p->c->prov[p->section], key->field, value);
	if (!rc)
		rc = cfg_set_from(&p->c->prov[p->section], key->field, *value != '\0', "%s:%lu",
				  p->path, p->line);
	if (rc == -ENOMEM)
		return cfg_nomem(p->err, p->errlen);
	if (rc)
		return cfg_bad_value(p, name, rc, key->field);
	p->has_secret |= key->secret && *value;
	return 0;
}

static int cfg_parse_line(struct cfg_parse *p, char *line)
{
	char *s = cfg_trim(line), *eq;

	if (!*s || *s == ';' || *s == '#')
		return 0;
	if (*s == '[')
		return cfg_parse_section(p, s);
	eq = strchr(s, '=');
	if (!eq)
		return cfg_fail(p->err, p->errlen,
				"%s:%lu: expected 'key = value', '[section]' "
				"or a comment",
				p->path, p->line);
	return cfg_parse_key(p, s, eq);
}

static int cfg_read_lines(struct cfg_parse *p, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	while (!rc && (n = getline(&line, &cap, f)) >= 0) {
		p->line++;
		if (n > CFG_MAX_LINE)
			rc = cfg_fail(p->err, p->errlen, "%s:%lu: line too long", p->path, p->line);
		else if (strlen(line) != (size_t)n)
			rc = cfg_fail(p->err, p->errlen, "%s:%lu: NUL byte in line", p->path,
				      p->line);
		else
			/* A UTF-8 byte order mark is what some editors put first. */
			rc = cfg_parse_line(
			    p, p->line == 1 && !strncmp(line, "\xef\xbb\xbf", 3) ? line + 3 : line);
		secret_wipe(line, cap);
	}
	if (!rc && ferror(f))
		rc = cfg_fail(p->err, p->errlen, "%s: read error", p->path);
	free(line);
	return rc;
}

/* Opens path without blocking on a FIFO; 1 when it is absent and may be, 0, or -errno. */
static int cfg_open(const char *path, int explicit, int *fd, struct stat *st, char *err,
		    size_t errlen)
{
	int e;

	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (*fd < 0) {
		e = errno;
		if (!explicit && (e == ENOENT || e == ENOTDIR))
			return 1;
		cfg_fail(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(*fd, st) < 0)
		e = errno;
	else if (S_ISDIR(st->st_mode))
		e = EISDIR;
	else if (!S_ISREG(st->st_mode))
		e = EINVAL;
	else
		return 0;
	close(*fd);
	cfg_fail(err, errlen, "%s: %s", path, e == EINVAL ? "not a regular file" : strerror(e));
	return -e;
}

static int cfg_check_mode(const char *path, const struct stat *st, char *err, size_t errlen)
{
	if (!(st->st_mode & 077))
		return 0;
	return cfg_fail(err, errlen,
			"%s: holds credentials but is readable by group or others (mode %04o); "
			"run chmod 600 %s",
			path, (unsigned)(st->st_mode & 07777), path);
}

static int cfg_read_file(struct config *c, const char *path, int explicit, char *err, size_t errlen)
{
	struct cfg_parse p = {.c = c, .path = path, .section = -1, .err = err, .errlen = errlen};
	struct stat st = {0};
	FILE *f;
	int fd, rc;

	rc = cfg_open(path, explicit, &fd, &st, err, errlen);
	if (rc)
		return rc > 0 ? 0 : rc;
	rc = credfile_trusted(path, &st, err, errlen);
	if (rc) {
		close(fd);
		return rc;
	}
	f = fdopen(fd, "r");
	p.seen = calloc(c->nprov + 1, sizeof(*p.seen));
	if (!f || !p.seen) {
		if (f)
			fclose(f);
		else
			close(fd);
		free(p.seen);
		return cfg_nomem(err, errlen);
	}
	rc = cfg_read_lines(&p, f);
	fclose(f);
	free(p.seen);
	if (!rc && p.has_secret)
		rc = cfg_check_mode(path, &st, err, errlen);
	if (!rc && !(c->path = strdup(path)))
		rc = cfg_nomem(err, errlen);
	return rc;
}

/* ---- the environment ---- */

static const char *cfg_getenv(const struct prov_key *key, const char **which)
{
	const char *v;
	size_t i;

	for (i = 0; i < sizeof(key->env) / sizeof(key->env[0]) && key->env[i]; i++) {
		v = getenv(key->env[i]);
		if (v && *v) {
			*which = key->env[i];
			return v;
		}
	}
	return NULL;
}

/* The environment's value of key into pc; *from_env gets 1 for half a key pair, 2 for a
 * token. */
static int cfg_env_key(struct prov_conf *pc, const struct prov_key *key, int *from_env, char *err,
		       size_t errlen)
{
	const char *which = NULL, *v = cfg_getenv(key, &which);
	char why[256];
	int rc;

	if (!v)
		return 0;
	rc = cfg_value_check(v, key->field);
	if (!rc && key->field == PROV_ENDPOINT && config_check_endpoint(v, why, sizeof(why)))
		return cfg_fail(err, errlen, "environment variable %s: %s", which, why);
	if (!rc)
		rc = cfg_store(pc, key->field, v);
	if (!rc)
		rc = cfg_set_from(pc, key->field, 1, "%s in the environment", which);
	if (rc == -ENOMEM)
		return cfg_nomem(err, errlen);
	if (rc)
		return cfg_fail(err, errlen, "environment variable %s %s", which,
				cfg_why(rc, key->field));
	if (key->field == PROV_KEY_ID || key->field == PROV_SECRET)
		*from_env |= 1;
	if (key->field == PROV_TOKEN)
		*from_env |= 2;
	return 0;
}

static int cfg_apply_env(struct config *c, char *err, size_t errlen)
{
	for (size_t k = 0; k < c->nprov; k++) {
		struct prov_conf *pc = &c->prov[k];
		int from_env = 0, rc;

		for (const struct prov_key *key = pc->desc->keys; key->name; key++) {
			rc = cfg_env_key(pc, key, &from_env, err, errlen);
			if (rc)
				return rc;
		}
		/* An STS token belongs to its key pair: a pair from the environment drops the
		 * file's. */
		if ((from_env & 1) && !(from_env & 2)) {
			secret_free(pc->token);
			pc->token = NULL;
			free(pc->token_from);
			pc->token_from = NULL;
		}
	}
	return 0;
}

/* ---- the vendors' own files ---- */

/* For every cloud that has them, after the file and the environment (credfile.h). */
static int cfg_credfiles(struct config *c, const char *profile, char *err, size_t errlen)
{
	for (size_t k = 0; k < c->nprov; k++) {
		const struct prov_desc *d = c->prov[k].desc;
		int rc = d->credfile ? d->credfile(&c->prov[k], profile, err, errlen) : 0;

		if (rc == -ENOMEM)
			return cfg_nomem(err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every copy of name in the environment, removed, then wiped where it lay: the initial
 * environment is what /proc/<pid>/environ shows and what a child would inherit. */
static void cfg_env_clear(const char *name)
{
	size_t len = strlen(name), n = 0;
	char *found[8];

	for (char **e = environ; *e && n < sizeof(found) / sizeof(found[0]); e++)
		if (!strncmp(*e, name, len) && (*e)[len] == '=')
			found[n++] = *e;
	unsetenv(name);
	while (n--)
		secret_wipe(found[n], strlen(found[n]));
}

void config_clear_env(void)
{
	for (size_t k = 0; providers[k]; k++)
		for (const struct prov_key *key = providers[k]->keys; key->name; key++)
			for (size_t j = 0;
			     j < sizeof(key->env) / sizeof(key->env[0]) && key->env[j]; j++)
				cfg_env_clear(key->env[j]);
}

/* ---- defaults and final checks ---- */

static int cfg_region_ok(const char *r)
{
	size_t n = strlen(r);

	return n && n <= 64 &&
	       strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

static int cfg_defaults(struct prov_conf *pc)
{
	const struct prov_desc *d = pc->desc;
	const char *at;

	if (!pc->region && d->region && !(pc->region = strdup(d->region)))
		return -ENOMEM;
	if (pc->endpoint || !d->endpoint)
		return 0;
	at = strstr(d->endpoint, "%s"); /* the region's place */
	if (!at)
		pc->endpoint = strdup(d->endpoint);
	else if (asprintf(&pc->endpoint, "%.*s%s%s", (int)(at - d->endpoint), d->endpoint,
			  pc->region ? pc->region : "", at + 2) < 0)
		pc->endpoint = NULL;
	return pc->endpoint ? 0 : -ENOMEM;
}

static void cfg_strip_slash(char *url)
{
	size_t n = url ? strlen(url) : 0;

	if (n && url[n - 1] == '/')
		url[n - 1] = '\0';
}

/* The first key of d that fills f, or NULL. */
static const struct prov_key *cfg_key_for(const struct prov_desc *d, enum prov_field f)
{
	for (const struct prov_key *key = d->keys; key->name; key++)
		if (key->field == f)
			return key;
	return NULL;
}

/* Appends "KEY from ORIGIN" for field f of pc to the list in buf, when from is set. */
static void cfg_describe(const struct prov_conf *pc, enum prov_field f, const char *from, char *buf,
			 size_t len)
{
	const struct prov_key *key = cfg_key_for(pc->desc, f);
	size_t used = strlen(buf);

	if (key && from)
		snprintf(buf + used, len - used, "%s%s from %s", used ? ", " : "", key->name, from);
}

void config_describe_creds(const struct prov_conf *pc, char *buf, size_t len)
{
	buf[0] = '\0';
	cfg_describe(pc, PROV_KEY_ID, pc->key_id ? pc->key_id_from : NULL, buf, len);
	cfg_describe(pc, PROV_SECRET, pc->secret ? pc->secret_from : NULL, buf, len);
	cfg_describe(pc, PROV_TOKEN, pc->token ? pc->token_from : NULL, buf, len);
}

void config_describe_scopes(const struct prov_conf *pc, char *buf, size_t len)
{
	buf[0] = '\0';
	cfg_describe(pc, PROV_SCOPES, pc->nscopes ? pc->scopes_from : NULL, buf, len);
}

/* Enabled when the credentials are complete: both halves of a key pair, or the secret of a
 * cloud without key ids (a token); half a pair is an error. */
static int cfg_enable(struct prov_conf *pc, char *err, size_t errlen)
{
	const struct prov_key *id = cfg_key_for(pc->desc, PROV_KEY_ID);
	const struct prov_key *secret = cfg_key_for(pc->desc, PROV_SECRET);

	if (id && secret && !pc->key_id != !pc->secret)
		return cfg_fail(err, errlen, "[%s] %s is missing (%s is set)", pc->desc->name,
				(pc->key_id ? secret : id)->name, (pc->key_id ? id : secret)->name);
	pc->enabled = secret ? pc->secret != NULL : pc->key_id != NULL;
	return 0;
}

static int cfg_finish(struct config *c, char *err, size_t errlen)
{
	int rc, any = 0;

	for (size_t k = 0; k < c->nprov; k++) {
		struct prov_conf *pc = &c->prov[k];

		rc = cfg_enable(pc, err, errlen);
		if (rc)
			return rc;
		if (pc->region && !cfg_region_ok(pc->region))
			return cfg_fail(err, errlen, "[%s] region is not a valid region id",
					pc->desc->name);
		if (cfg_defaults(pc))
			return cfg_nomem(err, errlen);
		cfg_strip_slash(pc->endpoint);
		any |= pc->enabled;
	}
	if (!any)
		return cfg_fail(err, errlen,
				"no credentials configured for any provider (see codesrcfs(1))");
	return 0;
}

/* One empty prov_conf per cloud of table. 0 or -ENOMEM. */
static int cfg_init(struct config *c, const struct prov_desc *const *table)
{
	size_t n = 0;

	while (table[n])
		n++;
	c->prov = calloc(n + 1, sizeof(*c->prov));
	if (!c->prov)
		return -ENOMEM;
	for (c->nprov = 0; c->nprov < n; c->nprov++)
		c->prov[c->nprov].desc = table[c->nprov];
	return 0;
}

int config_load(struct config *c, const char *path, int explicit, char *err, size_t errlen)
{
	return config_load_profile(c, path, explicit, NULL, err, errlen);
}

int config_load_profile(struct config *c, const char *path, int explicit, const char *profile,
			char *err, size_t errlen)
{
	return config_load_table(c, providers, path, explicit, profile, err, errlen);
}

int config_load_table(struct config *c, const struct prov_desc *const *table, const char *path,
		      int explicit, const char *profile, char *err, size_t errlen)
{
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (err && errlen)
		err[0] = '\0';
	if (cfg_init(c, table))
		rc = cfg_nomem(err, errlen);
	else if (path)
		rc = cfg_read_file(c, path, explicit, err, errlen);
	else if (explicit)
		rc = cfg_fail(err, errlen, "no configuration file given");
	if (!rc)
		rc = cfg_apply_env(c, err, errlen);
	if (!rc)
		rc = cfg_credfiles(c, profile, err, errlen);
	if (!rc)
		rc = cfg_finish(c, err, errlen);
	if (rc)
		config_free(c);
	return rc;
}

struct prov_conf *config_prov(const struct config *c, const char *name)
{
	for (size_t k = 0; k < c->nprov; k++)
		if (!strcmp(c->prov[k].desc->name, name))
			return &c->prov[k];
	return NULL;
}

char *config_default_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	struct passwd *pw;
	char *path = NULL;

	/* The XDG spec says a relative XDG_CONFIG_HOME is to be ignored. */
	if (xdg && xdg[0] == '/')
		return asprintf(&path, "%s/codesrcfs/config", xdg) < 0 ? NULL : path;
	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return NULL;
	return asprintf(&path, "%s/.config/codesrcfs/config", home) < 0 ? NULL : path;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t k = 0; k < c->nprov; k++) {
		struct prov_conf *pc = &c->prov[k];

		free(pc->key_id);
		secret_free(pc->secret);
		secret_free(pc->token);
		free(pc->region);
		free(pc->endpoint);
		cfg_scopes_free(pc);
		free(pc->key_id_from);
		free(pc->secret_from);
		free(pc->token_from);
		free(pc->scopes_from);
	}
	free(c->prov);
	free(c->path);
	memset(c, 0, sizeof(*c));
}
