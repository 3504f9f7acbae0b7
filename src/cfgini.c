/* cfgini: the configuration file, an INI file with a section per cloud of the table.
 *
 * Key ids (access_key_id, access_key) are not secrets: a file holding only those may be
 * readable by others. Secrets and STS tokens make the file private. Whatever it holds, the
 * file must be the user's (or root's) and writable by no one else: an endpoint is where
 * the credentials go. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgcheck.h"
#include "cfgini.h"
#include "cfgstore.h"
#include "credfile.h"
#include "provider.h"
#include "secret.h"

#define CFGINI_MAX_LINE 8192
#define CFGINI_MAX_KEYS 64 /* a bit each in cfgini_parse.seen */

/* State of one file being read. */
struct cfgini_parse {
	struct config *c;
	const char *path;
	unsigned long line;
	int section;	/* index in c->prov, or -1 before the first header */
	uint64_t *seen; /* per section, a bit per key index: duplicates are errors */
	int has_secret;
	char *err;
	size_t errlen;
};

static int cfgini_blank(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static char *cfgini_trim(char *s)
{
	char *end;

	while (cfgini_blank((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && cfgini_blank((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* A ';' or '#' at the start or after a blank opens a comment that runs to the end. */
static void cfgini_cut_comment(char *s)
{
	char *p;

	for (p = s; *p; p++) {
		if ((*p == ';' || *p == '#') && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
	}
}

static const char *cfgini_section(const struct cfgini_parse *p)
{
	return p->c->prov[p->section].desc->name;
}

/* Appends name, the k-th of n, to the list in buf: "a, b or c". */
static void cfgini_list_add(char *buf, size_t len, size_t k, size_t n, const char *name)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", k == 0 ? "" : k + 1 == n ? " or " : ", ", name);
}

/* "pai, volc or codeup": the sections the table knows. */
static void cfgini_expected_sections(const struct config *c, char *buf, size_t len)
{
	buf[0] = '\0';
	for (size_t k = 0; k < c->nprov; k++)
		cfgini_list_add(buf, len, k, c->nprov, c->prov[k].desc->name);
}

/* "token, endpoint or organizations": the keys of d. */
static void cfgini_expected_keys(const struct prov_desc *d, char *buf, size_t len)
{
	size_t n = 0;

	while (n < CFGINI_MAX_KEYS && d->keys[n].name)
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		cfgini_list_add(buf, len, i, n, d->keys[i].name);
}

static int cfgini_unknown_section(struct cfgini_parse *p, const char *name)
{
	char expected[512], shown[CFGCHECK_SHOWN];

	cfgini_expected_sections(p->c, expected, sizeof(expected));
	if (cfgcheck_name(name, shown, sizeof(shown)) < 0)
		return cfgcheck_fail(
		    p->err, p->errlen,
		    "%s:%lu: unknown section (not shown: it looks like a credential; "
		    "expected %s)",
		    p->path, p->line, expected);
	return cfgcheck_fail(p->err, p->errlen, "%s:%lu: unknown section [%s] (expected %s)",
			     p->path, p->line, shown, expected);
}

static int cfgini_parse_section(struct cfgini_parse *p, char *s)
{
	char *close = strchr(s, ']'), *name;

	cfgini_cut_comment(close ? close + 1 : s);
	if (!close || *cfgini_trim(close + 1))
		return cfgcheck_fail(p->err, p->errlen, "%s:%lu: malformed section header", p->path,
				     p->line);
	*close = '\0';
	name = cfgini_trim(s + 1);
	for (size_t k = 0; k < p->c->nprov; k++) {
		if (!strcmp(name, p->c->prov[k].desc->name)) {
			p->section = (int)k;
			return 0;
		}
	}
	return cfgini_unknown_section(p, name);
}

static int cfgini_find_key(const struct prov_desc *d, const char *name)
{
	for (int i = 0; i < CFGINI_MAX_KEYS && d->keys[i].name; i++)
		if (!strcmp(d->keys[i].name, name))
			return i;
	return -1;
}

static int cfgini_unknown_key(struct cfgini_parse *p, const char *name)
{
	char expected[1024], shown[CFGCHECK_SHOWN];

	cfgini_expected_keys(p->c->prov[p->section].desc, expected, sizeof(expected));
	if (cfgcheck_name(name, shown, sizeof(shown)) < 0)
		return cfgcheck_fail(p->err, p->errlen,
				     "%s:%lu: unknown key in [%s] (not shown: it looks like a "
				     "credential; expected %s)",
				     p->path, p->line, cfgini_section(p), expected);
	return cfgcheck_fail(p->err, p->errlen, "%s:%lu: unknown key '%s' in [%s] (expected %s)",
			     p->path, p->line, shown, cfgini_section(p), expected);
}

static int cfgini_bad_value(struct cfgini_parse *p, const char *name, int rc, enum prov_field f)
{
	return cfgcheck_fail(p->err, p->errlen, "%s:%lu: value of '%s' in [%s] %s", p->path,
			     p->line, name, cfgini_section(p), cfgcheck_why(rc, f));
}

static int cfgini_endpoint_value(struct cfgini_parse *p, const char *v)
{
	char why[256];

	if (!*v || !cfgcheck_endpoint(v, why, sizeof(why)))
		return 0;
	return cfgcheck_fail(p->err, p->errlen, "%s:%lu: [%s] %s", p->path, p->line,
			     cfgini_section(p), why);
}

/* Index in the section's keys of a known key not seen before in this section, or -EINVAL. */
static int cfgini_lookup_key(struct cfgini_parse *p, const char *name)
{
	int i;

	if (!*name || strpbrk(name, " \t:"))
		return cfgcheck_fail(p->err, p->errlen, "%s:%lu: expected 'key = value'", p->path,
				     p->line);
	if (p->section < 0)
		return cfgcheck_fail(p->err, p->errlen, "%s:%lu: key outside of any section",
				     p->path, p->line);
	i = cfgini_find_key(p->c->prov[p->section].desc, name);
	if (i < 0)
		return cfgini_unknown_key(p, name);
	if (p->seen[p->section] & (UINT64_C(1) << i))
		return cfgcheck_fail(p->err, p->errlen, "%s:%lu: '%s' set twice in [%s]", p->path,
				     p->line, name, cfgini_section(p));
	p->seen[p->section] |= UINT64_C(1) << i;
	return i;
}

static int cfgini_parse_key(struct cfgini_parse *p, char *line, char *eq)
{
	const struct prov_key *key;
	char *name, *value;
	int i, rc;

	*eq = '\0';
	name = cfgini_trim(line);
	value = eq + 1;
	cfgini_cut_comment(value);
	value = cfgini_trim(value);
	i = cfgini_lookup_key(p, name);
	if (i < 0)
		return i;
	key = &p->c->prov[p->section].desc->keys[i];
	rc = cfgcheck_value(value, key->field);
	if (rc)
		return cfgini_bad_value(p, name, rc, key->field);
	if (key->field == PROV_ENDPOINT && (rc = cfgini_endpoint_value(p, value)))
		return rc;
	rc = cfgstore_set(&p->c->prov[p->section], key->field, value);
	if (!rc)
		rc = cfgstore_origin(&p->c->prov[p->section], key->field, *value != '\0', "%s:%lu",
				     p->path, p->line);
	if (rc == -ENOMEM)
		return cfgcheck_nomem(p->err, p->errlen);
	if (rc)
		return cfgini_bad_value(p, name, rc, key->field);
	p->has_secret |= key->secret && *value;
	return 0;
}

static int cfgini_parse_line(struct cfgini_parse *p, char *line)
{
	char *s = cfgini_trim(line), *eq;

	if (!*s || *s == ';' || *s == '#')
		return 0;
	if (*s == '[')
		return cfgini_parse_section(p, s);
	eq = strchr(s, '=');
	if (!eq)
		return cfgcheck_fail(p->err, p->errlen,
				     "%s:%lu: expected 'key = value', '[section]' "
				     "or a comment",
				     p->path, p->line);
	return cfgini_parse_key(p, s, eq);
}

static int cfgini_read_lines(struct cfgini_parse *p, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	while (!rc && (n = getline(&line, &cap, f)) >= 0) {
		p->line++;
		if (n > CFGINI_MAX_LINE)
			rc = cfgcheck_fail(p->err, p->errlen, "%s:%lu: line too long", p->path,
					   p->line);
		else if (strlen(line) != (size_t)n)
			rc = cfgcheck_fail(p->err, p->errlen, "%s:%lu: NUL byte in line", p->path,
					   p->line);
		else
			/* A UTF-8 byte order mark is what some editors put first. */
			rc = cfgini_parse_line(
			    p, p->line == 1 && !strncmp(line, "\xef\xbb\xbf", 3) ? line + 3 : line);
		secret_wipe(line, cap);
	}
	if (!rc && ferror(f))
		rc = cfgcheck_fail(p->err, p->errlen, "%s: read error", p->path);
	free(line);
	return rc;
}

/* Opens path without blocking on a FIFO; 1 when it is absent and may be, 0, or -errno. */
static int cfgini_open(const char *path, int explicit, int *fd, struct stat *st, char *err,
		       size_t errlen)
{
	int e;

	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (*fd < 0) {
		e = errno;
		if (!explicit && (e == ENOENT || e == ENOTDIR))
			return 1;
		cfgcheck_fail(err, errlen, "%s: %s", path, strerror(e));
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
	cfgcheck_fail(err, errlen, "%s: %s", path,
		      e == EINVAL ? "not a regular file" : strerror(e));
	return -e;
}

static int cfgini_check_mode(const char *path, const struct stat *st, char *err, size_t errlen)
{
	if (!(st->st_mode & 077))
		return 0;
	return cfgcheck_fail(
	    err, errlen,
	    "%s: holds credentials but is readable by group or others (mode %04o); "
	    "run chmod 600 %s",
	    path, (unsigned)(st->st_mode & 07777), path);
}

int cfgini_read(struct config *c, const char *path, int explicit, char *err, size_t errlen)
{
	struct cfgini_parse p = {.c = c, .path = path, .section = -1, .err = err, .errlen = errlen};
	struct stat st = {0};
	FILE *f;
	int fd, rc;

	rc = cfgini_open(path, explicit, &fd, &st, err, errlen);
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
		return cfgcheck_nomem(err, errlen);
	}
	rc = cfgini_read_lines(&p, f);
	fclose(f);
	free(p.seen);
	if (!rc && p.has_secret)
		rc = cfgini_check_mode(path, &st, err, errlen);
	if (!rc && !(c->path = strdup(path)))
		rc = cfgcheck_nomem(err, errlen);
	return rc;
}
