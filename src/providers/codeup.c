#define _GNU_SOURCE /* asprintf */
/* codeup: Alibaba Cloud DevOps Codeup OpenAPI (x-yunxiao-token). An organization holds
 * its top-level groups and the repositories that belong to no group; a group holds its
 * sub-groups and its repositories. The API has no group filter for repositories, so the
 * organization's repositories are listed page by page, each page memoised for dir_ttl and
 * shared by every directory, and placed by their namespace path. Page k of a directory is
 * its groups on page k of ListNamespaces and its repositories among page k of that list:
 * the tree pages it like any listing without a total, told that more follow on every page
 * but the last (prov_page.more), whatever the page brought. Codeup's own bounds
 * (docs/design.md §4) end what that leaves to it: no list call is asked past its page
 * CODEUP_MAX_PAGES, and an organization's memo holds at most CODEUP_MAX_ITEMS
 * repositories in CODEUP_MAX_BYTES of answers. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <uthash.h>

#include "log.h"
#include "providers_i.h"

#define CODEUP_PAGE   100
#define CODEUP_PAGE_S "100"
/* Codeup's bounds (docs/design.md §4): the pages of any list call, and what an
 * organization's memo keeps. The memo keeps its repositories as parsed JSON, some 2.7 KB
 * for a 535-byte item, so tighter than a listing's. */
#define CODEUP_MAX_PAGES 1000
#define CODEUP_MAX_ITEMS 100000L
#define CODEUP_MAX_BYTES (128L << 20)
#define CODEUP_ORG_PAGES 150 /* the docs advise no further: a list that long is no list */
#define CODEUP_ORGS	 "/oapi/v1/platform/organizations"

enum codeup_kind { CODEUP_ORG = 1, CODEUP_GROUP, CODEUP_REPO };

/* How far one parent's groups go: page 1 of a listing learns it, so the later pages of the
 * listing ask ListNamespaces nothing once the groups ended. */
struct codeup_lane {
	UT_hash_handle hh;
	long last;  /* the last page of the parent's groups, 0 while unknown */
	char gid[]; /* the parent's id; "" for the organization */
};

/* An organization's repositories as the server pages them, and its lanes. Dropped as a
 * whole dir_ttl after the first of them came. */
struct codeup_memo {
	struct json_object **pages; /* pages[k - 1]: the array of page k, or NULL */
	long npages;		    /* room in pages */
	long last;		    /* the last page, 0 while unknown */
	size_t items, bytes;	    /* what the pages held hold, against the bounds */
	int64_t fetched;	    /* when the first of them came; 0 while empty */
	unsigned gen;		    /* counts the drops: a page asked for before one is not kept */
	struct codeup_lane *lanes;
};

struct codeup {
	struct provider base;
	struct prov_common c;
	pthread_mutex_t lock;	  /* guards memo, and every reference count of what it holds */
	struct codeup_memo *memo; /* one per configured organization */
};

/* A directory's organization, full path (groups), the id its sub-groups name as parent and
 * the ids of the groups above it, outermost first. */
struct codeup_dir {
	const char *org, *full, *gid;
	char *const *anc;
	size_t nanc;
};

static int64_t codeup_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* One path segment, percent-encoded. "", "." and ".." are refused: curl would resolve them
 * as dot segments and the request would leave the organization. */
static char *codeup_seg(const char *s)
{
	if (!s || !*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return NULL;
	return http_escape(s, strlen(s));
}

/* "/oapi/v1/codeup/organizations/<org>/<what>[/<id>]", org and id percent-encoded. */
static char *codeup_path(const char *org, const char *what, const char *id)
{
	char *eorg = codeup_seg(org), *eid = id ? codeup_seg(id) : NULL, *path = NULL;

	if (eorg && (!id || eid) &&
	    asprintf(&path, "/oapi/v1/codeup/organizations/%s/%s%s%s", eorg, what, id ? "/" : "",
		     id ? eid : "") < 0)
		path = NULL;
	free(eorg);
	free(eid);
	return path;
}

int codeup_classify_error(long status, const char *body, size_t len)
{
	static const char *const denied[] = {"InvalidTokenError", "ExpiredTokenError",
					     "Unauthorized", "Forbidden", NULL};
	struct json_object *o = provider_json_parse(body, len);
	const char *code = provider_json_str(o, "errorCode", NULL);
	int r = status == 401 || status == 403 ? -EACCES : -EIO;

	for (size_t i = 0; code && denied[i]; i++)
		if (!strncmp(code, denied[i], strlen(denied[i])))
			r = -EACCES;
	json_object_put(o);
	return r;
}

/* The one line a failed answer logs: call, status, code, request id; never the token. */
static void codeup_log(const char *what, const struct http_response *resp, const char *why)
{
	struct json_object *body = provider_json_parse(resp->body, resp->len);
	const char *code = provider_json_str(body, "errorCode", NULL);
	const char *msg = provider_json_str(body, "errorMessage", NULL);
	const char *rid = http_resp_header(resp, "x-request-id");

	if (!msg)
		msg = provider_json_str(body, "errorDescription", NULL);
	if (!msg)
		msg = provider_json_str(body, "message", NULL);
	log_msg(LOG_ERR, "codeup: %s failed: HTTP %ld %s: %.200s (request id %s)", what,
		resp->status, code ? code : "(no code)", why ? why : (msg ? msg : ""),
		rid ? rid : "none");
	json_object_put(body);
}

/* GET path?query (name, value pairs, NULL-terminated); a 2xx answer in resp, else the
 * error, logged once. */
static int codeup_get(struct codeup *cu, const char *what, const char *path,
		      const char *const *query, struct http_response *resp)
{
	struct http_request req;
	int r = http_req_init(&req, "GET", cu->c.endpoint, path);

	if (r < 0)
		return r;
	req.label = what;
	req.id_header = "x-request-id";
	for (size_t i = 0; r == 0 && query && query[i]; i += 2)
		r = http_req_query(&req, query[i], query[i + 1]);
	if (r == 0)
		r = http_req_header(&req, "x-yunxiao-token", cu->c.secret);
	if (r == 0)
		r = http_perform(cu->c.http, &req, resp);
	http_req_free(&req);
	if (r < 0) {
		log_msg(provider_fail_level(r), "codeup: %s failed: %s", what, strerror(-r));
	} else if (resp->status < 200 || resp->status > 299) {
		codeup_log(what, resp, NULL);
		r = codeup_classify_error(resp->status, resp->body, resp->len);
	}
	return r;
}

/* Is there a page after page k, which held n entries? The paging headers when the server
 * sends them, else a full page says so. */
static int codeup_more(const struct http_response *resp, size_t n, long k)
{
	const char *next = http_resp_header(resp, "x-next-page");
	const char *total = http_resp_header(resp, "x-total");
	char *end;
	long long t;

	if (n == 0)
		return 0;
	if (next)
		return *next != '\0' && strcmp(next, "0") != 0;
	if (total && *total) {
		t = strtoll(total, &end, 10);
		if (*end == '\0' && t >= 0)
			return (long long)(k - 1) * CODEUP_PAGE + (long long)n < t;
	}
	return n >= CODEUP_PAGE;
}

/* Past a bound of a list call: it fails rather than be served cut. */
static int codeup_bound(const char *what, const char *path, const char *bound, long limit)
{
	log_msg(LOG_ERR,
		"codeup: %s %s: more than %ld %s; failing rather than serving it cut "
		"(docs/design.md §4)",
		what, path, limit, bound);
	return -EIO;
}

/* What page k of a list call brought. */
struct codeup_got {
	struct json_object *arr; /* its array; the caller puts it */
	size_t bytes;		 /* the answer's length */
	int more;		 /* a page follows */
};

/* Page k of a list call, no further than CODEUP_MAX_PAGES. query has room for four more
 * entries and a NULL after its nq. */
static int codeup_get_page(struct codeup *cu, const char *what, const char *path,
			   const char **query, size_t nq, long k, struct codeup_got *got)
{
	struct http_response resp = {0};
	char page[24];
	int r;

	memset(got, 0, sizeof(*got));
	if (k > CODEUP_MAX_PAGES)
		return codeup_bound(what, path, "pages", CODEUP_MAX_PAGES);
	snprintf(page, sizeof(page), "%ld", k);
	query[nq] = "page";
	query[nq + 1] = page;
	query[nq + 2] = "perPage";
	query[nq + 3] = CODEUP_PAGE_S;
	query[nq + 4] = NULL;
	r = codeup_get(cu, what, path, query, &resp);
	if (r == 0) {
		got->bytes = resp.len;
		got->arr = provider_json_parse(resp.body, resp.len);
		if (!json_object_is_type(got->arr, json_type_array)) {
			codeup_log(what, &resp, "the answer is not a JSON array");
			json_object_put(got->arr);
			got->arr = NULL;
			r = -EIO;
		}
	}
	if (r == 0)
		got->more = codeup_more(&resp, json_object_array_length(got->arr), k);
	http_resp_free(&resp);
	return r;
}

/* The number or string at key as a string in buf; NULL when neither, or empty. */
static const char *codeup_id(struct json_object *o, const char *key, char *buf, size_t cap)
{
	struct json_object *v = provider_json_get(o, key, json_type_int);
	const char *s;

	if (v) {
		snprintf(buf, cap, "%lld", (long long)json_object_get_int64(v));
		return buf;
	}
	s = provider_json_str(o, key, NULL);
	return s && *s ? s : NULL;
}

/* A group's name: its path; its name when the path is missing. */
static const char *codeup_name(struct json_object *it, size_t *len)
{
	const char *s = provider_json_str(it, "path", len);

	return s ? s : provider_json_str(it, "name", len);
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
	const char *full = provider_json_str(it, "fullPath", NULL);
	size_t wlen;
	const char *web = provider_json_str(it, "webUrl", &wlen);
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
	r.meta = provider_meta_json(it, show_secrets);
	/* What listing the group takes besides its id: the organization, its full path and
	 * the groups above it. */
	r.scope = strdup(d->org);
	r.path = codeup_dup(full);
	if (!r.id || !r.name || !r.meta || !r.scope || (full && *full && !r.path) ||
	    codeup_ancestors(d, &r) < 0 ||
	    provider_url(web, wlen, "webUrl", id, show_secrets, &r.url) < 0 ||
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
	meta = provider_meta_json(own, show_secrets);
	json_object_put(own);
	return meta;
}

static int codeup_repo_record(struct json_object *it, const char *org, int show_secrets,
			      struct prov_page *out)
{
	struct prov_record r = {.kind = CODEUP_REPO, .kind_name = "repository"};
	size_t ulen, wlen;
	const char *url = provider_json_str(it, "httpUrlToRepo", &ulen);
	const char *web = provider_json_str(it, "webUrl", &wlen);
	const char *branch = provider_json_str(it, "defaultBranch", NULL);
	const char *mtime = provider_json_str(it, "lastActivityAt", NULL);
	char idbuf[32];
	const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));
	const char *name = codeup_name(it, &r.name_len);
	int fail;

	if (!id || !name)
		return 0;
	r.id = strdup(id);
	r.name = provider_strndup(name, r.name_len);
	r.meta = codeup_meta_json(it, show_secrets);
	fail = provider_url(url, ulen, "httpUrlToRepo", id, show_secrets, &r.url) < 0 ||
	       provider_url(web, wlen, NULL, id, show_secrets, &r.web_url) < 0;
	r.branch = codeup_dup(branch);
	r.incomplete = !r.url || !r.branch; /* GetRepository has them */
	r.scope = strdup(org);
	r.ctime = provider_parse_time(provider_json_str(it, "createdAt", NULL));
	r.mtime = provider_parse_time(mtime ? mtime : provider_json_str(it, "updatedAt", NULL));
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
	const char *pwn = provider_json_str(it, "pathWithNamespace", NULL);
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

static int codeup_add_groups(struct json_object *arr, const struct codeup_dir *d, int top,
			     int show_secrets, struct prov_page *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);
		const char *full = provider_json_str(it, "fullPath", NULL);

		/* "parentId empty" may answer every group the caller can see: keep the top. */
		if (top && full && path_depth(full) != 1)
			continue;
		r = codeup_group_record(it, d, show_secrets, out);
	}
	return r;
}

static int codeup_add_repos(struct json_object *arr, const char *org, const char *full,
			    const char *gid, int show_secrets, struct prov_page *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && arr && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);

		if (json_object_is_type(it, json_type_object) && codeup_repo_in(it, full, gid))
			r = codeup_repo_record(it, org, show_secrets, out);
	}
	return r;
}

static struct codeup_memo *codeup_memo_of(struct codeup *cu, const char *org)
{
	for (size_t i = 0; i < cu->c.nscopes; i++)
		if (!strcmp(cu->c.scopes[i], org))
			return &cu->memo[i];
	return NULL;
}

/* Empty m when force, or when dir_ttl passed since its first page came. Lock held. */
static void codeup_memo_expire(struct codeup *cu, struct codeup_memo *m, int force)
{
	struct codeup_lane *l, *tmp;

	if (!force && (!m->fetched || codeup_now() < m->fetched + cu->c.dir_ttl))
		return;
	for (long k = 0; k < m->npages; k++) {
		json_object_put(m->pages[k]);
		m->pages[k] = NULL;
	}
	HASH_ITER(hh, m->lanes, l, tmp) {
		HASH_DEL(m->lanes, l);
		free(l);
	}
	m->last = 0;
	m->items = m->bytes = 0;
	m->fetched = 0;
	m->gen++;
}

/* Drop a reference taken from the memo (or to a page that may have joined it) under the
 * lock: json-c's reference counts need not be atomic. */
static void codeup_memo_drop(struct codeup *cu, struct json_object *o)
{
	pthread_mutex_lock(&cu->lock);
	json_object_put(o);
	pthread_mutex_unlock(&cu->lock);
}

/* Keep page k, fetched while the memo was at generation gen, unless the memo would then
 * hold more than its bounds: the list call (at path) fails instead. Lock held. */
static int codeup_memo_keep(struct codeup_memo *m, unsigned gen, long k,
			    const struct codeup_got *got, const char *path)
{
	size_t n = json_object_array_length(got->arr);
	struct json_object **grown;

	if (m->gen != gen)
		return 0; /* dropped meanwhile: the page belongs to the listing that asked */
	if (k > m->npages || !m->pages[k - 1]) {
		if (m->items + n > (size_t)CODEUP_MAX_ITEMS)
			return codeup_bound("ListRepositories", path, "entries", CODEUP_MAX_ITEMS);
		if (m->bytes + got->bytes > (size_t)CODEUP_MAX_BYTES)
			return codeup_bound("ListRepositories", path, "bytes of answers",
					    CODEUP_MAX_BYTES);
	}
	if (k > m->npages) {
		grown = realloc(m->pages, (size_t)k * sizeof(*grown));
		if (!grown)
			return 0; /* not kept: asked again next time */
		memset(grown + m->npages, 0, (size_t)(k - m->npages) * sizeof(*grown));
		m->pages = grown;
		m->npages = k;
	}
	if (!m->pages[k - 1]) {
		m->pages[k - 1] = json_object_get(got->arr);
		m->items += n;
		m->bytes += got->bytes;
	}
	if (!got->more && (!m->last || k < m->last))
		m->last = k;
	if (!m->fetched)
		m->fetched = codeup_now();
	return 0;
}

/* Page k of org's repositories, the memo's or fetched and kept (got->bytes then counts the
 * answer); got->more when a page follows. Release got->arr with codeup_memo_drop. */
static int codeup_repos_page(struct codeup *cu, struct codeup_memo *m, const char *org, long k,
			     struct codeup_got *got)
{
	const char *query[12] = {"orderBy", "created_at", "sort", "asc"};
	char *path;
	unsigned gen;
	int last, r;

	memset(got, 0, sizeof(*got));
	pthread_mutex_lock(&cu->lock);
	codeup_memo_expire(cu, m, 0);
	got->arr = k <= m->npages ? json_object_get(m->pages[k - 1]) : NULL;
	last = m->last && k >= m->last;
	got->more = !last;
	if (!got->arr && last)
		got->arr = json_object_new_array(); /* past the end: nothing to ask */
	gen = m->gen;
	pthread_mutex_unlock(&cu->lock);
	if (got->arr || last)
		return got->arr ? 0 : -ENOMEM;
	path = codeup_path(org, "repositories", NULL);
	r = path ? codeup_get_page(cu, "ListRepositories", path, query, 4, k, got) : -ENOMEM;
	if (r == 0) {
		pthread_mutex_lock(&cu->lock);
		r = codeup_memo_keep(m, gen, k, got, path);
		pthread_mutex_unlock(&cu->lock);
	}
	free(path);
	return r;
}

/* Every page of org's repositories when the memo holds them all, fresh: references in a
 * new array *pages of *n (release each with codeup_memo_drop). 0 when it does not. */
static int codeup_repos_whole(struct codeup *cu, struct codeup_memo *m, struct json_object ***pages,
			      long *n)
{
	long k;

	*pages = NULL;
	*n = 0;
	pthread_mutex_lock(&cu->lock);
	codeup_memo_expire(cu, m, 0);
	for (k = 0; m->last && k < m->last && k < m->npages && m->pages[k]; k++)
		;
	if (m->last && k == m->last && (*pages = calloc((size_t)k, sizeof(**pages)))) {
		for (*n = 0; *n < k; (*n)++)
			(*pages)[*n] = json_object_get(m->pages[*n]);
	}
	pthread_mutex_unlock(&cu->lock);
	return *n > 0;
}

/* The last page of parent gid's groups as a listing learnt it, 0 while unknown. */
static long codeup_lane_last(struct codeup *cu, struct codeup_memo *m, const char *gid)
{
	struct codeup_lane *l;
	long last;

	pthread_mutex_lock(&cu->lock);
	codeup_memo_expire(cu, m, 0);
	HASH_FIND_STR(m->lanes, gid, l);
	last = l ? l->last : 0;
	pthread_mutex_unlock(&cu->lock);
	return last;
}

/* Page k of parent gid's groups was the last (done) or not: page 1 says afresh, a later
 * page only that they end sooner. */
static void codeup_lane_keep(struct codeup *cu, struct codeup_memo *m, const char *gid, long k,
			     int done)
{
	struct codeup_lane *l;

	pthread_mutex_lock(&cu->lock);
	codeup_memo_expire(cu, m, 0);
	HASH_FIND_STR(m->lanes, gid, l);
	if (!l && (l = calloc(1, sizeof(*l) + strlen(gid) + 1))) {
		strcpy(l->gid, gid);
		HASH_ADD_STR(m->lanes, gid, l);
	}
	if (l && k == 1)
		l->last = done ? 1 : 0;
	else if (l && done && (!l->last || k < l->last))
		l->last = k;
	if (!m->fetched)
		m->fetched = codeup_now();
	pthread_mutex_unlock(&cu->lock);
}

static int codeup_dir_of(const struct prov_record *dir, struct codeup_dir *d)
{
	memset(d, 0, sizeof(*d));
	if (dir->kind == CODEUP_ORG) {
		d->org = dir->id;
		return 0;
	}
	if (dir->kind != CODEUP_GROUP || !dir->scope)
		return -ENOTDIR;
	d->org = dir->scope;
	d->full = dir->path ? dir->path : "";
	d->gid = dir->id;
	d->anc = dir->ancestors;
	d->nanc = dir->nancestors;
	return 0;
}

/* d's sub-groups (parentId empty: the top-level groups) on page k of ListNamespaces, with
 * search those the filter answers; *done when no page follows. */
static int codeup_groups_page(struct codeup *cu, const struct codeup_dir *d, const char *search,
			      long k, struct prov_page *out, int *done)
{
	const char *query[16] = {"parentId", d->gid ? d->gid : "", "orderBy", "created_at", "sort",
				 "asc"};
	struct codeup_got got = {0};
	char *path = codeup_path(d->org, "namespaces", NULL);
	size_t nq = 6;
	int r = -ENOMEM;

	if (search) {
		query[nq++] = "search";
		query[nq++] = search;
	}
	if (path)
		r = codeup_get_page(cu, "ListNamespaces", path, query, nq, k, &got);
	if (r == 0)
		r = codeup_add_groups(got.arr, d, !d->gid, cu->c.show_secrets, out);
	out->bytes += got.bytes; /* the tree bounds a listing's bytes */
	*done = !got.more;
	json_object_put(got.arr);
	free(path);
	return r;
}

/* d's repositories in the array of a page of the organization's list. */
static int codeup_take_repos(struct codeup *cu, const struct codeup_dir *d, struct json_object *arr,
			     struct prov_page *out)
{
	return codeup_add_repos(arr, d->org, d->gid ? d->full : NULL, d->gid, cu->c.show_secrets,
				out);
}

/* Page k of d's listing. No answer counts d's own entries, so the total stays unknown and
 * the page is the last when both lists ended. A page may hold none of d's entries (they
 * lie on later pages of the organization's list), so every page but the last says more
 * follow: the bounds of the list calls end a listing that never ends. */
static int codeup_dir_page(struct codeup *cu, const struct codeup_dir *d, long k,
			   struct prov_page *out)
{
	struct codeup_memo *m = codeup_memo_of(cu, d->org);
	const char *parent = d->gid ? d->gid : "";
	struct codeup_got repos = {0};
	int gdone = 1, r = 0;
	long glast;

	if (!m)
		return -ENOENT;
	glast = k > 1 ? codeup_lane_last(cu, m, parent) : 0;
	if (!glast || k <= glast) {
		r = codeup_groups_page(cu, d, NULL, k, out, &gdone);
		if (r == 0)
			codeup_lane_keep(cu, m, parent, k, gdone);
	}
	if (r == 0)
		r = codeup_repos_page(cu, m, d->org, k, &repos);
	if (r == 0)
		r = codeup_take_repos(cu, d, repos.arr, out);
	codeup_memo_drop(cu, repos.arr);
	out->bytes += repos.bytes;
	out->total = -1;
	out->page_size = 0;
	out->last = gdone && !repos.more;
	out->more = !out->last;
	return r;
}

static int codeup_list_page(struct provider *base, const struct prov_record *dir, long page,
			    struct prov_page *out)
{
	struct codeup *cu = (struct codeup *)base;
	struct codeup_dir d;
	int r;

	if (!dir)
		return provider_scopes_page(cu->c.scopes, cu->c.nscopes, CODEUP_ORG, "organization",
					    out);
	r = codeup_dir_of(dir, &d);
	return r < 0 ? r : codeup_dir_page(cu, &d, page, out);
}

/* What a look-up has learnt between its pages. */
struct codeup_search {
	struct codeup_dir d;
	int groups_done, repos_done;
};

/* d's repositories the memo holds when it holds them all (a look-up asks nothing then), else
 * those on page k of the repositories the filter answers. */
static int codeup_search_repos(struct codeup *cu, struct codeup_search *s, const char *term, long k,
			       struct prov_page *out)
{
	const char *query[12] = {"orderBy", "created_at", "sort", "asc", "search", term};
	struct codeup_memo *m = codeup_memo_of(cu, s->d.org);
	struct json_object **pages;
	struct codeup_got got = {0};
	char *path;
	long n;
	int r = 0;

	if (!m)
		return -ENOENT;
	if (k == 1 && codeup_repos_whole(cu, m, &pages, &n)) {
		for (long i = 0; i < n; i++) {
			if (r == 0)
				r = codeup_take_repos(cu, &s->d, pages[i], out);
			codeup_memo_drop(cu, pages[i]);
		}
		free(pages);
		s->repos_done = 1;
		return r;
	}
	path = codeup_path(s->d.org, "repositories", NULL);
	r = path ? codeup_get_page(cu, "ListRepositories", path, query, 6, k, &got) : -ENOMEM;
	if (r == 0)
		r = codeup_take_repos(cu, &s->d, got.arr, out);
	s->repos_done = !got.more;
	json_object_put(got.arr);
	free(path);
	return r;
}

static int codeup_search_page(struct provider *base, const struct prov_record *dir,
			      const char *term, long k, struct prov_page *out, void *ctx)
{
	struct codeup *cu = (struct codeup *)base;
	struct codeup_search *s = ctx;
	int r = 0;

	(void)dir; /* s->d holds what the look-up needs of it */
	if (!s->groups_done)
		r = codeup_groups_page(cu, &s->d, term, k, out, &s->groups_done);
	if (r == 0 && !s->repos_done)
		r = codeup_search_repos(cu, s, term, k, out);
	out->last = s->groups_done && s->repos_done;
	return r;
}

static int codeup_lookup(struct provider *base, const struct prov_record *dir, const char *term,
			 struct prov_page *out)
{
	struct codeup_search s = {0};
	int r;

	if (!dir)
		return -ENOENT; /* organizations are the configured ones */
	r = codeup_dir_of(dir, &s.d);
	if (r < 0)
		return r;
	return provider_filter_pages(base, dir, term, codeup_search_page, &s, out);
}

/* Merge GetRepository's answer over the list item (meta.json), and take url and branch
 * from the result. rec changes only when everything succeeded. */
static int codeup_merge(struct prov_record *rec, struct json_object *got, int show_secrets)
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
	meta = provider_meta_json(item, show_secrets);
	url = provider_json_str(item, "httpUrlToRepo", &ulen);
	branch = provider_json_str(item, "defaultBranch", NULL);
	ru = provider_url(url, ulen, "httpUrlToRepo", rec->id, show_secrets, &nurl);
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

static int codeup_complete(struct provider *base, struct prov_record *rec)
{
	struct codeup *cu = (struct codeup *)base;
	struct http_response resp = {0};
	struct json_object *got = NULL;
	char *path = NULL;
	int r = -EIO;

	if (rec->kind != CODEUP_REPO || !rec->scope || !rec->id)
		return -EIO;
	path = codeup_path(rec->scope, "repositories", rec->id);
	if (!path)
		goto out;
	r = codeup_get(cu, "GetRepository", path, NULL, &resp);
	if (r < 0)
		goto out;
	got = provider_json_parse(resp.body, resp.len);
	if (!json_object_is_type(got, json_type_object)) {
		codeup_log("GetRepository", &resp, "the answer is not a JSON object");
		r = -EIO;
		goto out;
	}
	r = codeup_merge(rec, got, cu->c.show_secrets);
out:
	json_object_put(got);
	http_resp_free(&resp);
	free(path);
	return r;
}

/* The organizations in the array of a ListOrganizations answer, as containers. */
static int codeup_add_orgs(struct json_object *arr, struct prov_page *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);
		const char *ctime = provider_json_str(it, "createdAt", NULL);
		char idbuf[32];
		const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));

		if (id)
			r = provider_add_container(out, id, CODEUP_ORG, "organization",
						   provider_parse_time(ctime));
	}
	return r;
}

/* The organizations of ids among those the token's user joined, into found: every page
 * of ListOrganizations until each of ids came. */
static int codeup_orgs_of(struct provider *base, char *const *ids, size_t n,
			  struct prov_page *found)
{
	const char *query[8] = {NULL};
	struct codeup_got got = {.more = 1};
	int r = 0;

	for (long k = 1; r == 0 && got.more && k <= CODEUP_ORG_PAGES; k++) {
		r = codeup_get_page((struct codeup *)base, "ListOrganizations", CODEUP_ORGS, query,
				    0, k, &got);
		if (r == 0)
			r = codeup_add_orgs(got.arr, found);
		json_object_put(got.arr);
		if (r == 0 && !provider_confirm_scopes(ids, n, found, "organization", NULL, 0))
			break;
	}
	return r;
}

/* The token, and the configured organizations with the same call when there are some. */
static int codeup_check(struct provider *base, char *why, size_t whylen)
{
	struct codeup *cu = (struct codeup *)base;
	struct http_response resp = {0};
	struct prov_page pg = {0};
	int r;

	if (!cu->c.nscopes) {
		r = codeup_get(cu, "GetCurrentUser", "/oapi/v1/platform/user", NULL, &resp);
		http_resp_free(&resp);
		return r;
	}
	r = codeup_orgs_of(base, cu->c.scopes, cu->c.nscopes, &pg);
	if (r == 0)
		r = provider_confirm_scopes(cu->c.scopes, cu->c.nscopes, &pg, "organization", why,
					    whylen);
	prov_page_free(&pg);
	return r;
}

static void codeup_flush(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;

	pthread_mutex_lock(&cu->lock);
	for (size_t i = 0; cu->memo && i < cu->c.nscopes; i++)
		codeup_memo_expire(cu, &cu->memo[i], 1);
	pthread_mutex_unlock(&cu->lock);
}

static void codeup_destroy(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;

	codeup_flush(base);
	for (size_t i = 0; cu->memo && i < cu->c.nscopes; i++)
		free(cu->memo[i].pages);
	free(cu->memo);
	provider_common_free(&cu->c);
	pthread_mutex_destroy(&cu->lock);
	free(cu);
}

static const struct provider_ops codeup_ops = {
    .check = codeup_check,
    .list_page = codeup_list_page,
    .lookup = codeup_lookup,
    .complete = codeup_complete,
    .flush = codeup_flush,
    .destroy = codeup_destroy,
};

int codeup_parse_namespaces(const char *body, size_t len, const char *org, int top,
			    int show_secrets, struct prov_page *out)
{
	struct json_object *arr = provider_json_parse(body, len);
	struct codeup_dir d = {.org = org};
	int r = -EIO;

	if (json_object_is_type(arr, json_type_array))
		r = codeup_add_groups(arr, &d, top, show_secrets, out);
	json_object_put(arr);
	return r;
}

int codeup_parse_organizations(const char *body, size_t len, struct prov_page *out)
{
	struct json_object *arr = provider_json_parse(body, len);
	int r = -EIO;

	if (json_object_is_type(arr, json_type_array))
		r = codeup_add_orgs(arr, out);
	json_object_put(arr);
	return r;
}

int codeup_parse_repositories(const char *body, size_t len, const char *org, const char *full,
			      const char *gid, int show_secrets, struct prov_page *out)
{
	struct json_object *arr = provider_json_parse(body, len);
	int r = -EIO;

	if (json_object_is_type(arr, json_type_array))
		r = codeup_add_repos(arr, org, full, gid, show_secrets, out);
	json_object_put(arr);
	return r;
}

static struct provider *codeup_new(const struct prov_conf *conf, const struct provider_env *env,
				   char *why, size_t whylen)
{
	struct codeup *cu;

	if (!conf->nscopes) {
		snprintf(why, whylen,
			 "[%s] organizations is required: Codeup has no call that lists them",
			 conf->desc->name);
		return NULL;
	}
	cu = calloc(1, sizeof(*cu));
	if (!cu)
		return NULL;
	cu->base.ops = &codeup_ops;
	pthread_mutex_init(&cu->lock, NULL);
	if (provider_common_init(&cu->c, conf, env) < 0 ||
	    !(cu->memo = calloc(conf->nscopes, sizeof(*cu->memo)))) {
		codeup_destroy(&cu->base);
		return NULL;
	}
	return &cu->base;
}

static const struct prov_key codeup_keys[] = {
    {"token", PROV_SECRET, 1, {"CODEUP_TOKEN", "ALIBABA_CLOUD_YUNXIAO_ACCESS_TOKEN"}},
    {"endpoint", PROV_ENDPOINT, 0, {NULL}},
    {"organizations", PROV_SCOPES, 0, {"ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID"}},
    {NULL, 0, 0, {NULL}},
};

const struct prov_desc codeup_desc = {
    .name = "codeup",
    .keys = codeup_keys,
    .endpoint = "https://openapi-rdc.aliyuncs.com",
    .create = codeup_new,
};
