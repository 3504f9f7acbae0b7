/* config: the INI file, the environment and validation of what they say.
 *
 * Order: the file (if any), then the environment (which wins, key by key), then
 * defaults, then checks. Errors are one line in err; they name files, lines, sections
 * and keys but never print a value, and a name is printed only when it looks like a
 * key name (a stray secret on a line of its own must not end up on stderr).
 *
 * Key ids (access_key_id, access_key) are not secrets: a file holding only those may be
 * readable by others. Secrets and STS tokens make the file private. Whatever it holds, the
 * file must be the user's (or root's) and writable by no one else: an endpoint is where
 * the credentials go. */
#define _GNU_SOURCE /* explicit_bzero, strcasecmp */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "credfile.h"

#define CFG_MAX_LINE  8192
#define CFG_MAX_VALUE 4096 /* STS tokens run to a couple of thousand bytes */
#define CFG_MAX_URL   512
#define CFG_MAX_NAME  32 /* longest name worth echoing back in an error */
#define CFG_MAX_SCOPE 256

enum cfg_field { CF_KEY_ID, CF_SECRET, CF_TOKEN, CF_REGION, CF_ENDPOINT, CF_SCOPES };

struct cfg_key {
	enum prov_kind prov;
	enum cfg_field field;
	int secret;
	const char *name;
};

static const struct cfg_key cfg_keys[] = {
    {PROV_PAI, CF_KEY_ID, 0, "access_key_id"},	  {PROV_PAI, CF_SECRET, 1, "access_key_secret"},
    {PROV_PAI, CF_TOKEN, 1, "security_token"},	  {PROV_PAI, CF_REGION, 0, "region"},
    {PROV_PAI, CF_ENDPOINT, 0, "endpoint"},	  {PROV_PAI, CF_SCOPES, 0, "workspaces"},
    {PROV_VOLC, CF_KEY_ID, 0, "access_key"},	  {PROV_VOLC, CF_SECRET, 1, "secret_key"},
    {PROV_VOLC, CF_TOKEN, 1, "security_token"},	  {PROV_VOLC, CF_REGION, 0, "region"},
    {PROV_VOLC, CF_ENDPOINT, 0, "endpoint"},	  {PROV_VOLC, CF_SCOPES, 0, "workspaces"},
    {PROV_CODEUP, CF_SECRET, 1, "token"},	  {PROV_CODEUP, CF_ENDPOINT, 0, "endpoint"},
    {PROV_CODEUP, CF_SCOPES, 0, "organizations"},
};

#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

/* Environment variables, most preferred first; the first non-empty one counts. */
struct cfg_env {
	enum prov_kind prov;
	enum cfg_field field;
	const char *vars[4];
};

static const struct cfg_env cfg_envs[] = {
    {PROV_PAI,
     CF_KEY_ID,
     {"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABACLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY_ID"}},
    {PROV_PAI,
     CF_SECRET,
     {"ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABACLOUD_ACCESS_KEY_SECRET",
      "ALICLOUD_ACCESS_KEY_SECRET"}},
    {PROV_PAI, CF_TOKEN, {"ALIBABA_CLOUD_SECURITY_TOKEN"}},
    {PROV_PAI, CF_REGION, {"ALIBABA_CLOUD_REGION_ID"}},
    {PROV_VOLC, CF_KEY_ID, {"VOLCENGINE_ACCESS_KEY", "VOLC_ACCESSKEY"}},
    {PROV_VOLC, CF_SECRET, {"VOLCENGINE_SECRET_KEY", "VOLC_SECRETKEY"}},
    {PROV_VOLC, CF_TOKEN, {"VOLCENGINE_SESSION_TOKEN"}},
    {PROV_VOLC, CF_REGION, {"VOLCENGINE_REGION"}},
    {PROV_CODEUP, CF_SECRET, {"CODEUP_TOKEN", "ALIBABA_CLOUD_YUNXIAO_ACCESS_TOKEN"}},
    {PROV_CODEUP, CF_SCOPES, {"ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID"}},
};

#define CFG_NENVS (sizeof(cfg_envs) / sizeof(cfg_envs[0]))

/* State of one file being read. */
struct cfg_parse {
	struct config *c;
	const char *path;
	unsigned long line;
	int section;		       /* enum prov_kind, or -1 before the first header */
	unsigned int seen[PROV_COUNT]; /* bit per cfg_keys index: duplicates are errors */
	int has_secret;
	char *err;
	size_t errlen;
};

static const char *const cfg_names[PROV_COUNT] = {"pai", "volc", "codeup"};

const char *config_prov_name(enum prov_kind k)
{
	return (unsigned)k < PROV_COUNT ? cfg_names[k] : "?";
}

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

static void cfg_wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
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

/* Safe to echo back: short, lower-case letters, digits, '_' and '-'. */
static int cfg_echoable(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > CFG_MAX_NAME)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
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

static char **cfg_slot(struct prov_conf *pc, enum cfg_field f)
{
	switch (f) {
	case CF_KEY_ID:
		return &pc->key_id;
	case CF_SECRET:
		return &pc->secret;
	case CF_TOKEN:
		return &pc->token;
	case CF_REGION:
		return &pc->region;
	case CF_ENDPOINT:
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

/* Stores value (already checked) in field; an empty value unsets it. */
static int cfg_store(struct prov_conf *pc, enum cfg_field f, const char *value)
{
	char **slot, *copy;

	if (f == CF_SCOPES)
		return cfg_set_scopes(pc, value);
	slot = cfg_slot(pc, f);
	copy = *value ? strdup(value) : NULL;
	if (*value && !copy)
		return -ENOMEM;
	cfg_wipe_free(*slot);
	*slot = copy;
	return 0;
}

/* ---- the file ---- */

/* A tab may separate list items; anywhere else a control character is a mistake. */
static int cfg_value_check(const char *v, enum cfg_field f)
{
	if (strlen(v) > CFG_MAX_VALUE)
		return -E2BIG;
	return cfg_has_control(v, f == CF_SCOPES ? "\t" : "") ? -EINVAL : 0;
}

static int cfg_parse_section(struct cfg_parse *p, char *s)
{
	char *close = strchr(s, ']'), *name;
	int k;

	cfg_cut_comment(close ? close + 1 : s);
	if (!close || *cfg_trim(close + 1))
		return cfg_fail(p->err, p->errlen, "%s:%lu: malformed section header", p->path,
				p->line);
	*close = '\0';
	name = cfg_trim(s + 1);
	for (k = 0; k < PROV_COUNT; k++) {
		if (!strcmp(name, cfg_names[k])) {
			p->section = k;
			return 0;
		}
	}
	if (cfg_echoable(name))
		return cfg_fail(p->err, p->errlen,
				"%s:%lu: unknown section [%s] (expected pai, volc or codeup)",
				p->path, p->line, name);
	return cfg_fail(p->err, p->errlen, "%s:%lu: unknown section", p->path, p->line);
}

static int cfg_find_key(int section, const char *name)
{
	size_t i;

	for (i = 0; i < CFG_NKEYS; i++)
		if ((int)cfg_keys[i].prov == section && !strcmp(cfg_keys[i].name, name))
			return (int)i;
	return -1;
}

static int cfg_unknown_key(struct cfg_parse *p, const char *name)
{
	if (!cfg_echoable(name))
		return cfg_fail(p->err, p->errlen, "%s:%lu: unknown key in [%s]", p->path, p->line,
				cfg_names[p->section]);
	return cfg_fail(p->err, p->errlen, "%s:%lu: unknown key '%s' in [%s]", p->path, p->line,
			name, cfg_names[p->section]);
}

/* Why a value was refused: cfg_value_check's or cfg_store's error. */
static const char *cfg_why(int rc, enum cfg_field f)
{
	if (rc == -E2BIG)
		return f == CF_SCOPES ? "holds an id that is too long" : "is too long";
	if (rc == -EINVAL && f == CF_SCOPES)
		return "lists '.' or '..', which is no id";
	return "contains control characters";
}

static int cfg_bad_value(struct cfg_parse *p, const char *name, int rc, enum cfg_field f)
{
	return cfg_fail(p->err, p->errlen, "%s:%lu: value of '%s' in [%s] %s", p->path, p->line,
			name, cfg_names[p->section], cfg_why(rc, f));
}

static int cfg_endpoint_value(struct cfg_parse *p, const char *v)
{
	char why[256];

	if (!*v || !config_check_endpoint(v, why, sizeof(why)))
		return 0;
	return cfg_fail(p->err, p->errlen, "%s:%lu: [%s] %s", p->path, p->line,
			cfg_names[p->section], why);
}

/* Index in cfg_keys of a known key not seen before in this section, or -EINVAL. */
static int cfg_lookup_key(struct cfg_parse *p, const char *name)
{
	int i;

	if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789_-.") != strlen(name))
		return cfg_fail(p->err, p->errlen, "%s:%lu: expected 'key = value'", p->path,
				p->line);
	if (p->section < 0)
		return cfg_fail(p->err, p->errlen, "%s:%lu: key outside of any section", p->path,
				p->line);
	i = cfg_find_key(p->section, name);
	if (i < 0)
		return cfg_unknown_key(p, name);
	if (p->seen[p->section] & (1u << i))
		return cfg_fail(p->err, p->errlen, "%s:%lu: '%s' set twice in [%s]", p->path,
				p->line, name, cfg_names[p->section]);
	p->seen[p->section] |= 1u << i;
	return i;
}

static int cfg_parse_key(struct cfg_parse *p, char *line, char *eq)
{
	const struct cfg_key *key;
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
	key = &cfg_keys[i];
	rc = cfg_value_check(value, key->field);
	if (rc)
		return cfg_bad_value(p, name, rc, key->field);
	if (key->field == CF_ENDPOINT && (rc = cfg_endpoint_value(p, value)))
		return rc;
	rc = cfg_store(&p->c->prov[p->section], key->field, value);
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
		explicit_bzero(line, cap);
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
	if (!f) {
		close(fd);
		return cfg_nomem(err, errlen);
	}
	rc = cfg_read_lines(&p, f);
	fclose(f);
	if (!rc && p.has_secret)
		rc = cfg_check_mode(path, &st, err, errlen);
	if (!rc && !(c->path = strdup(path)))
		rc = cfg_nomem(err, errlen);
	return rc;
}

/* ---- the environment ---- */

static const char *cfg_getenv(const struct cfg_env *e, const char **which)
{
	const char *v;
	size_t i;

	for (i = 0; i < sizeof(e->vars) / sizeof(e->vars[0]) && e->vars[i]; i++) {
		v = getenv(e->vars[i]);
		if (v && *v) {
			*which = e->vars[i];
			return v;
		}
	}
	return NULL;
}

/* An STS token belongs to its key pair: a pair from the environment drops the file's. */
static void cfg_env_drop_token(struct config *c, const int from_env[PROV_COUNT])
{
	int k;

	for (k = 0; k < PROV_COUNT; k++)
		if ((from_env[k] & 1) && !(from_env[k] & 2)) {
			cfg_wipe_free(c->prov[k].token);
			c->prov[k].token = NULL;
		}
}

static int cfg_apply_env(struct config *c, char *err, size_t errlen)
{
	int from_env[PROV_COUNT] = {0}, rc;
	const char *v, *which = NULL;
	size_t i;

	for (i = 0; i < CFG_NENVS; i++) {
		const struct cfg_env *e = &cfg_envs[i];

		v = cfg_getenv(e, &which);
		if (!v)
			continue;
		rc = cfg_value_check(v, e->field);
		if (!rc)
			rc = cfg_store(&c->prov[e->prov], e->field, v);
		if (rc == -ENOMEM)
			return cfg_nomem(err, errlen);
		if (rc)
			return cfg_fail(err, errlen, "environment variable %s %s", which,
					cfg_why(rc, e->field));
		if (e->field == CF_KEY_ID || e->field == CF_SECRET)
			from_env[e->prov] |= 1;
		if (e->field == CF_TOKEN)
			from_env[e->prov] |= 2;
	}
	cfg_env_drop_token(c, from_env);
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
		explicit_bzero(found[n], strlen(found[n]));
}

void config_clear_env(void)
{
	for (size_t i = 0; i < CFG_NENVS; i++)
		for (size_t j = 0; j < sizeof(cfg_envs[i].vars) / sizeof(cfg_envs[i].vars[0]) &&
				   cfg_envs[i].vars[j];
		     j++)
			cfg_env_clear(cfg_envs[i].vars[j]);
}

/* ---- defaults and final checks ---- */

static int cfg_region_ok(const char *r)
{
	size_t n = strlen(r);

	return n && n <= 64 &&
	       strspn(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == n;
}

static int cfg_defaults(struct prov_conf *pc, enum prov_kind k)
{
	static const char *const region[PROV_COUNT] = {"cn-hangzhou", "cn-beijing", NULL};
	static const char *const endpoint[PROV_COUNT] = {NULL, "https://open.volcengineapi.com",
							 "https://openapi-rdc.aliyuncs.com"};

	if (!pc->region && region[k] && !(pc->region = strdup(region[k])))
		return -ENOMEM;
	if (pc->endpoint)
		return 0;
	if (k == PROV_PAI) {
		if (asprintf(&pc->endpoint, "https://aiworkspace.%s.aliyuncs.com", pc->region) < 0)
			pc->endpoint = NULL;
	} else {
		pc->endpoint = strdup(endpoint[k]);
	}
	return pc->endpoint ? 0 : -ENOMEM;
}

static void cfg_strip_slash(char *url)
{
	size_t n = strlen(url);

	if (n && url[n - 1] == '/')
		url[n - 1] = '\0';
}

/* Enabled when the pair (or codeup's token) is complete; half a pair is an error. */
static int cfg_enable(struct prov_conf *pc, enum prov_kind k, char *err, size_t errlen)
{
	static const char *const id_key[PROV_COUNT] = {"access_key_id", "access_key", NULL};
	static const char *const secret_key[PROV_COUNT] = {"access_key_secret", "secret_key",
							   "token"};

	if (k == PROV_CODEUP) {
		pc->enabled = pc->secret != NULL;
		return 0;
	}
	if (pc->key_id && !pc->secret)
		return cfg_fail(err, errlen, "[%s] %s is missing (%s is set)", cfg_names[k],
				secret_key[k], id_key[k]);
	if (!pc->key_id && pc->secret)
		return cfg_fail(err, errlen, "[%s] %s is missing (%s is set)", cfg_names[k],
				id_key[k], secret_key[k]);
	pc->enabled = pc->key_id != NULL;
	return 0;
}

static int cfg_finish(struct config *c, char *err, size_t errlen)
{
	int k, rc, any = 0;

	for (k = 0; k < PROV_COUNT; k++) {
		struct prov_conf *pc = &c->prov[k];

		rc = cfg_enable(pc, k, err, errlen);
		if (rc)
			return rc;
		if (pc->region && !cfg_region_ok(pc->region))
			return cfg_fail(err, errlen, "[%s] region is not a valid region id",
					cfg_names[k]);
		if (cfg_defaults(pc, k))
			return cfg_nomem(err, errlen);
		cfg_strip_slash(pc->endpoint);
		any |= pc->enabled;
	}
	if (!any)
		return cfg_fail(err, errlen,
				"no credentials configured for any provider (see codesrcfs(1))");
	return 0;
}

int config_load(struct config *c, const char *path, int explicit, char *err, size_t errlen)
{
	return config_load_profile(c, path, explicit, NULL, err, errlen);
}

int config_load_profile(struct config *c, const char *path, int explicit, const char *profile,
			char *err, size_t errlen)
{
	int rc = 0;

	memset(c, 0, sizeof(*c));
	if (err && errlen)
		err[0] = '\0';
	if (path)
		rc = cfg_read_file(c, path, explicit, err, errlen);
	else if (explicit)
		rc = cfg_fail(err, errlen, "no configuration file given");
	if (!rc)
		rc = cfg_apply_env(c, err, errlen);
	if (!rc)
		rc = credfile_fill(c, profile, err, errlen);
	if (!rc)
		rc = cfg_finish(c, err, errlen);
	if (rc)
		config_free(c);
	return rc;
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
	int k;

	if (!c)
		return;
	for (k = 0; k < PROV_COUNT; k++) {
		struct prov_conf *pc = &c->prov[k];

		free(pc->key_id);
		cfg_wipe_free(pc->secret);
		cfg_wipe_free(pc->token);
		free(pc->region);
		free(pc->endpoint);
		cfg_scopes_free(pc);
	}
	free(c->path);
	memset(c, 0, sizeof(*c));
}
