#define _GNU_SOURCE /* asprintf */
/* credfile: the aliyun CLI's ~/.aliyun/config.json and the Volcengine SDKs' ~/.volc/config,
 * read after the environment and the codesrcfs configuration, for a provider that has no
 * credentials yet. Like the codesrcfs file, one readable by group or others is refused, and
 * so is one that anyone but the user (or root) owns or can change. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "credfile.h"
#include "provider.h"
#include "secret.h"

#define CREDFILE_MAX (1 << 20)

static int cred_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cred_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int credfile_trusted(const char *path, const struct stat *st, char *err, size_t errlen)
{
	/* Whoever can change the file chooses the endpoint our credentials are sent to. */
	if (st->st_uid != 0 && st->st_uid != getuid())
		return cred_fail(err, errlen,
				 "%s: belongs to uid %u, not to you (uid %u) or root; codesrcfs "
				 "reads only files that no one else can change",
				 path, (unsigned)st->st_uid, (unsigned)getuid());
	if (st->st_mode & 022)
		return cred_fail(err, errlen,
				 "%s: can be changed by group or others (mode %04o); run chmod "
				 "go-w %s",
				 path, (unsigned)(st->st_mode & 07777), path);
	return 0;
}

static char *cred_home_path(const char *rel)
{
	const char *home = getenv("HOME");
	struct passwd *pw;
	char *path;

	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || asprintf(&path, "%s/%s", home, rel) < 0)
		return NULL;
	return path;
}

/* The JSON object in path; NULL with *rc 0 when there is no such file. */
static struct json_object *cred_read(const char *path, int *rc, char *err, size_t errlen)
{
	struct json_object *obj = NULL;
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd;

	*rc = 0;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return NULL; /* absent or unreadable: the user did not set this source up */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CREDFILE_MAX) {
		*rc = cred_fail(err, errlen, "%s: not a regular file of reasonable size", path);
		goto out;
	}
	*rc = credfile_trusted(path, &st, err, errlen);
	if (*rc)
		goto out;
	if (st.st_mode & 077) {
		*rc = cred_fail(
		    err, errlen,
		    "%s: holds credentials but is readable by group or others (mode %04o); "
		    "run chmod 600 %s",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	obj = n >= 0 ? json_tokener_parse(buf) : NULL;
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		obj = NULL;
		*rc = cred_fail(err, errlen, "%s: not a JSON object", path);
	}
out:
	if (buf)
		secret_wipe(buf, (size_t)st.st_size);
	free(buf);
	close(fd);
	return obj;
}

static const char *cred_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return *json_object_get_string(v) ? json_object_get_string(v) : NULL;
}

/* v into an empty slot, and origin (a format) into from, when from is not NULL. */
static int cred_set(char **slot, char **from, const char *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int cred_set(char **slot, char **from, const char *v, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!v || *slot)
		return 0;
	*slot = strdup(v);
	if (!*slot)
		return -ENOMEM;
	if (!from)
		return 0;
	free(*from);
	va_start(ap, fmt);
	n = vasprintf(from, fmt, ap);
	va_end(ap);
	if (n < 0)
		*from = NULL;
	return n < 0 ? -ENOMEM : 0;
}

static struct json_object *aliyun_profile(struct json_object *root, const char *name)
{
	struct json_object *list;

	if (!json_object_object_get_ex(root, "profiles", &list) ||
	    !json_object_is_type(list, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *p = json_object_array_get_idx(list, i);
		const char *n =
		    json_object_is_type(p, json_type_object) ? cred_str(p, "name") : NULL;

		if (n && !strcmp(n, name))
			return p;
	}
	return NULL;
}

static int aliyun_take(struct prov_conf *pc, struct json_object *prof, const char *path,
		       const char *name, char *err, size_t errlen)
{
	const char *mode = cred_str(prof, "mode");
	int sts = mode && !strcmp(mode, "StsToken");

	if (!mode || (strcmp(mode, "AK") && !sts))
		return cred_fail(err, errlen,
				 "%s: profile '%s' uses mode '%s'; codesrcfs reads only AK and "
				 "StsToken profiles",
				 path, name, mode ? mode : "(none)");
	if (!cred_str(prof, "access_key_id") || !cred_str(prof, "access_key_secret"))
		return cred_fail(err, errlen,
				 "%s: profile '%s' lacks access_key_id or "
				 "access_key_secret",
				 path, name);
	if (cred_set(&pc->key_id, &pc->key_id_from, cred_str(prof, "access_key_id"),
		     "%s profile '%s'", path, name) ||
	    cred_set(&pc->secret, &pc->secret_from, cred_str(prof, "access_key_secret"),
		     "%s profile '%s'", path, name) ||
	    (sts && cred_set(&pc->token, &pc->token_from, cred_str(prof, "sts_token"),
			     "%s profile '%s'", path, name)) ||
	    cred_set(&pc->region, NULL, cred_str(prof, "region_id"), "%s", path))
		return -ENOMEM;
	return 0;
}

static int aliyun_fill(struct prov_conf *pc, const char *profile, char *err, size_t errlen)
{
	char *path = cred_home_path(".aliyun/config.json");
	struct json_object *root, *prof;
	const char *name;
	int rc;

	if (!path)
		return 0;
	root = cred_read(path, &rc, err, errlen);
	if (!root)
		goto out;
	name = profile ? profile : cred_str(root, "current");
	prof = name ? aliyun_profile(root, name) : NULL;
	if (prof)
		rc = aliyun_take(pc, prof, path, name, err, errlen);
	else if (profile)
		rc = cred_fail(err, errlen, "%s: no profile named '%s'", path, profile);
	json_object_put(root);
out:
	free(path);
	return rc;
}

static int volc_fill(struct prov_conf *pc, char *err, size_t errlen)
{
	char *path = cred_home_path(".volc/config");
	struct json_object *root;
	int rc;

	if (!path)
		return 0;
	root = cred_read(path, &rc, err, errlen);
	if (root && cred_str(root, "ak") && cred_str(root, "sk") &&
	    (cred_set(&pc->key_id, &pc->key_id_from, cred_str(root, "ak"), "%s", path) ||
	     cred_set(&pc->secret, &pc->secret_from, cred_str(root, "sk"), "%s", path) ||
	     cred_set(&pc->region, NULL, cred_str(root, "region"), "%s", path)))
		rc = -ENOMEM;
	json_object_put(root);
	free(path);
	return rc;
}

/* A source is taken whole or not at all: never half a key pair from each. */
static int cred_has_key(const struct prov_conf *pc)
{
	return pc->key_id || pc->secret;
}

int credfile_aliyun(struct prov_conf *pc, const char *profile, char *err, size_t errlen)
{
	if (profile && cred_has_key(pc))
		return cred_fail(err, errlen,
				 "-o profile=%s conflicts with [%s] credentials "
				 "from the configuration or the environment",
				 profile, pc->desc->name);
	return cred_has_key(pc) ? 0 : aliyun_fill(pc, profile, err, errlen);
}

int credfile_volc(struct prov_conf *pc, const char *profile, char *err, size_t errlen)
{
	(void)profile; /* a profile names one of ~/.aliyun/config.json's */
	return cred_has_key(pc) ? 0 : volc_fill(pc, err, errlen);
}
