/* codeup_parse: Codeup's answers → records (see codeup_i.h): organizations, groups (never
 * one listed inside itself or below), repositories placed by their namespace, and
 * GetRepository's answer merged over a listed repository. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "codeup_i.h"
#include "log.h"

/* The number or string at key as a string in buf; NULL when neither, or empty. */
static const char *codeup_id(struct json_object *o, const char *key, char *buf, size_t cap)
{
	struct json_object *v = provjson_get(o, key, json_type_int);
	const char *s;

	if (v) {
		snprintf(buf, cap, "%lld", (long long)json_object_get_int64(v));
		return buf;
	}
	s = provjson_str(o, key, NULL);
	return s && *s ? s : NULL;
}

/* A group's name: its path; its name when the path is missing. */
static const char *codeup_name(struct json_object *it, size_t *len)
{
	const char *s = provjson_str(it, "path", len);

	return s ? s : provjson_str(it, "name", len);
}

static char *codeup_dup(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

/* Is id directory d's, or that of a group above d? */
static int codeup_above(const struct codeup_dir *d, const char *id)
{
	if (d->gid && !strcmp(d->gid, id))
		return 1;
	for (size_t i = 0; i < d->nanc; i++)
		if (!strcmp(d->anc[i], id))
			return 1;
	return 0;
}

/* The ancestors of a group listed in d: d's, then d itself when d is a group. */
static int codeup_ancestors(const struct codeup_dir *d, struct prov_record *r)
{
	size_t n = d->nanc + 1;

	if (!d->gid)
		return 0;
	r->ancestors = calloc(n, sizeof(*r->ancestors));
	if (!r->ancestors)
		return -ENOMEM;
	for (; r->nancestors < n; r->nancestors++) {
		const char *id = r->nancestors < d->nanc ? d->anc[r->nancestors] : d->gid;

		r->ancestors[r->nancestors] = strdup(id);
		if (!r->ancestors[r->nancestors])
			return -ENOMEM;
	}
	return 0;
}

/* A group listed in directory d. A group that names d, or a group above d, as its child
 * would make an endless tree, and is left out. */
static int codeup_group_record(struct json_object *it, const struct codeup_dir *d, int show_secrets,
			       struct prov_page *out)
{
	struct prov_record r = {.kind = CODEUP_GROUP, .kind_name = "group", .container = 1};
	const char *full = provjson_str(it, "fullPath", NULL);
	size_t wlen;
	const char *web = provjson_str(it, "webUrl", &wlen);
	char idbuf[32];
	const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));
	const char *name = codeup_name(it, &r.name_len);

	if (!id || !name)
		return 0;
	if (codeup_above(d, id)) {
		log_msg(LOG_WARNING,
			"codeup: group %.64s is listed inside itself or a group it holds; left "
			"out",
			id);
		return 0;
	}
	r.id = strdup(id);
	r.name = provider_strndup(name, r.name_len);
	r.meta = redact_meta_json(it, show_secrets);
	/* What listing the group takes besides its id: the organization, its full path and
	 * the groups above it. */
	r.scope = strdup(d->org);
	r.path = codeup_dup(full);
	if (!r.id || !r.name || !r.meta || !r.scope || (full && *full && !r.path) ||
	    codeup_ancestors(d, &r) < 0 ||
	    redact_url(web, wlen, "webUrl", id, show_secrets, &r.url) < 0 ||
	    (r.url && !(r.web_url = strdup(r.url))) || prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

/* meta.json of a memoised item: the memo is shared with other threads, and printing an
 * object writes into it, so a private copy is printed. */
static char *codeup_meta_json(struct json_object *it, int show_secrets)
{
	struct json_object *own = NULL;
	char *meta;

	if (json_object_deep_copy(it, &own, NULL) != 0)
		return NULL;
	meta = redact_meta_json(own, show_secrets);
	json_object_put(own);
	return meta;
}

static int codeup_repo_record(struct json_object *it, const char *org, int show_secrets,
			      struct prov_page *out)
{
	struct prov_record r = {.kind = CODEUP_REPO, .kind_name = "repository"};
	size_t ulen, wlen;
	const char *url = provjson_str(it, "httpUrlToRepo", &ulen);
	const char *web = provjson_str(it, "webUrl", &wlen);
	const char *branch = provjson_str(it, "defaultBranch", NULL);
	const char *mtime = provjson_str(it, "lastActivityAt", NULL);
	char idbuf[32];
	const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));
	const char *name = codeup_name(it, &r.name_len);
	int fail;

	if (!id || !name)
		return 0;
	r.id = strdup(id);
	r.name = provider_strndup(name, r.name_len);
	r.meta = codeup_meta_json(it, show_secrets);
	fail = redact_url(url, ulen, "httpUrlToRepo", id, show_secrets, &r.url) < 0 ||
	       redact_url(web, wlen, NULL, id, show_secrets, &r.web_url) < 0;
	r.branch = codeup_dup(branch);
	r.incomplete = !r.url || !r.branch; /* GetRepository has them */
	r.scope = strdup(org);
	r.ctime = provjson_time(provjson_str(it, "createdAt", NULL));
	r.mtime = provjson_time(mtime ? mtime : provjson_str(it, "updatedAt", NULL));
	if (fail || !r.id || !r.name || !r.meta || !r.scope || prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

/* Depth of a full path: the number of '/' in it. */
static int path_depth(const char *p)
{
	int d = 0;

	for (; p && *p; p++)
		d += *p == '/';
	return d;
}

/* Does repository it sit directly in the group of full path full and id gid? Both NULL:
 * does it belong to no group? The namespace path (pathWithNamespace without its last part)
 * decides; without one, the namespaceId. */
static int codeup_repo_in(struct json_object *it, const char *full, const char *gid)
{
	const char *pwn = provjson_str(it, "pathWithNamespace", NULL);
	const char *slash = pwn ? strrchr(pwn, '/') : NULL;
	char buf[32];
	const char *nsid;

	if (!full && !gid)
		return pwn && path_depth(pwn) == 1; /* "org/repo" */
	if (slash && full && *full)
		return strlen(full) == (size_t)(slash - pwn) && !strncmp(pwn, full, slash - pwn);
	nsid = codeup_id(it, "namespaceId", buf, sizeof(buf));
	return gid && nsid && !strcmp(nsid, gid);
}

int codeup_add_groups(struct json_object *arr, const struct codeup_dir *d, int top,
		      int show_secrets, struct prov_page *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);
		const char *full = provjson_str(it, "fullPath", NULL);

		/* "parentId empty" may answer every group the caller can see: keep the top. */
		if (top && full && path_depth(full) != 1)
			continue;
		r = codeup_group_record(it, d, show_secrets, out);
	}
	return r;
}

int codeup_add_repos(struct json_object *arr, const char *org, const char *full, const char *gid,
		     int show_secrets, struct prov_page *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && arr && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);

		if (json_object_is_type(it, json_type_object) && codeup_repo_in(it, full, gid))
			r = codeup_repo_record(it, org, show_secrets, out);
	}
	return r;
}

/* The organizations in the array of a ListOrganizations answer, as containers, each
 * with its name as label. */
int codeup_add_orgs(struct json_object *arr, struct prov_page *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);
		const char *ctime = provjson_str(it, "createdAt", NULL);
		char idbuf[32];
		const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));
		size_t len;
		const char *name = provjson_str(it, "name", &len);

		if (id)
			r = provscope_add_container(out, id, CODEUP_ORG, "organization",
						    provjson_time(ctime), name && len ? name : NULL,
						    len);
	}
	return r;
}

/* Merge GetRepository's answer over the list item (meta.json), and take url and branch
 * from the result. rec changes only when everything succeeded. */
int codeup_merge(struct prov_record *rec, struct json_object *got, int show_secrets)
{
	struct json_object *item = json_tokener_parse(rec->meta ? rec->meta : "{}");
	const char *url, *branch;
	char *meta, *nurl = NULL, *nbranch;
	size_t ulen;
	int r = -ENOMEM, ru;

	if (!json_object_is_type(item, json_type_object)) {
		json_object_put(item);
		item = json_object_new_object();
	}
	if (!item)
		return -ENOMEM;
	json_object_object_foreach(got, key, val)
		json_object_object_add(item, key, json_object_get(val));
	meta = redact_meta_json(item, show_secrets);
	url = provjson_str(item, "httpUrlToRepo", &ulen);
	branch = provjson_str(item, "defaultBranch", NULL);
	ru = redact_url(url, ulen, "httpUrlToRepo", rec->id, show_secrets, &nurl);
	nbranch = codeup_dup(branch);
	if (meta && ru == 0 && (nbranch || !branch || !*branch)) {
		free(rec->meta);
		free(rec->url);
		free(rec->branch);
		rec->meta = meta;
		rec->url = nurl;
		rec->branch = nbranch;
		rec->incomplete = 0;
		meta = nurl = nbranch = NULL;
		r = 0;
	}
	free(meta);
	free(nurl);
	free(nbranch);
	json_object_put(item);
	return r;
}

int codeup_parse_namespaces(const char *body, size_t len, const char *org, int top,
			    int show_secrets, struct prov_page *out)
{
	struct json_object *arr = provjson_parse(body, len);
	struct codeup_dir d = {.org = org};
	int r = -EIO;

	if (json_object_is_type(arr, json_type_array))
		r = codeup_add_groups(arr, &d, top, show_secrets, out);
	json_object_put(arr);
	return r;
}

int codeup_parse_organizations(const char *body, size_t len, struct prov_page *out)
{
	struct json_object *arr = provjson_parse(body, len);
	int r = -EIO;

	if (json_object_is_type(arr, json_type_array))
		r = codeup_add_orgs(arr, out);
	json_object_put(arr);
	return r;
}

int codeup_parse_repositories(const char *body, size_t len, const char *org, const char *full,
			      const char *gid, int show_secrets, struct prov_page *out)
{
	struct json_object *arr = provjson_parse(body, len);
	int r = -EIO;

	if (json_object_is_type(arr, json_type_array))
		r = codeup_add_repos(arr, org, full, gid, show_secrets, out);
	json_object_put(arr);
	return r;
}
