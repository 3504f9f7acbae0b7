#define _GNU_SOURCE /* asprintf */
/* codeup: Alibaba Cloud DevOps Codeup OpenAPI (x-yunxiao-token). An organization holds
 * its top-level groups and the repositories that belong to no group; a group holds its
 * sub-groups and its repositories. The API has no group filter for repositories, so the
 * organization's repositories are listed once, memoised for dir_ttl, and placed by their
 * namespace path. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "log.h"
#include "provider.h"

#define CODEUP_PAGE	 100
#define CODEUP_PAGE_S	 "100"
#define CODEUP_MAX_PAGES 1000

enum codeup_kind { CODEUP_ORG = 1, CODEUP_GROUP, CODEUP_REPO };

struct codeup_memo {
	struct json_object *repos; /* array of list items, or NULL */
	int64_t fetched;
};

struct codeup {
	struct provider base;
	struct prov_common c;
	pthread_mutex_t lock;	  /* guards memo */
	struct codeup_memo *memo; /* one per configured organization */
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
		log_msg(LOG_ERR, "codeup: %s failed: %s", what, strerror(-r));
	} else if (resp->status < 200 || resp->status > 299) {
		codeup_log(what, resp, NULL);
		r = codeup_classify_error(resp->status, resp->body, resp->len);
	}
	return r;
}

/* Is there a page after this one? The paging headers when the server sends them, else a
 * full page says so. got counts the entries so far. */
static int codeup_more(const struct http_response *resp, size_t n, size_t got)
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
			return (long long)got < t;
	}
	return n >= CODEUP_PAGE;
}

/* Every page of a list call, appended to the array all. query has room for four more
 * entries and a NULL after its nq. */
static int codeup_get_all(struct codeup *cu, const char *what, const char *path, const char **query,
			  size_t nq, struct json_object *all)
{
	char page[24];
	int r = 0, more = 1;

	query[nq] = "page";
	query[nq + 1] = page;
	query[nq + 2] = "perPage";
	query[nq + 3] = CODEUP_PAGE_S;
	query[nq + 4] = NULL;
	for (long k = 1; r == 0 && more; k++) {
		struct http_response resp = {0};
		struct json_object *arr = NULL;
		size_t n = 0;

		if (k > CODEUP_MAX_PAGES) {
			log_msg(LOG_WARNING, "codeup: %s: more than %d pages; the rest is left out",
				what, CODEUP_MAX_PAGES);
			break;
		}
		snprintf(page, sizeof(page), "%ld", k);
		r = codeup_get(cu, what, path, query, &resp);
		if (r == 0) {
			arr = provider_json_parse(resp.body, resp.len);
			if (!json_object_is_type(arr, json_type_array)) {
				codeup_log(what, &resp, "the answer is not a JSON array");
				r = -EIO;
			}
		}
		n = r == 0 ? json_object_array_length(arr) : 0;
		for (size_t i = 0; i < n; i++)
			json_object_array_add(all,
					      json_object_get(json_object_array_get_idx(arr, i)));
		more = r == 0 && codeup_more(&resp, n, json_object_array_length(all));
		json_object_put(arr);
		http_resp_free(&resp);
	}
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

static int codeup_group_record(struct json_object *it, const char *org, int show_secrets,
			       struct prov_page *out)
{
	struct prov_record r = {.kind = CODEUP_GROUP, .container = 1};
	const char *full = provider_json_str(it, "fullPath", NULL);
	size_t wlen;
	const char *web = provider_json_str(it, "webUrl", &wlen);
	char idbuf[32];
	const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));
	const char *name = codeup_name(it, &r.name_len);

	if (!id || !name)
		return 0;
	r.id = strdup(id);
	r.name = provider_strndup(name, r.name_len);
	r.meta = provider_meta_json(it, show_secrets);
	/* What listing the group takes besides its id: the organization and its full path. */
	if (asprintf(&r.aux, "%s\n%s", org, full ? full : "") < 0)
		r.aux = NULL;
	if (!r.id || !r.name || !r.meta || !r.aux ||
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
	struct prov_record r = {.kind = CODEUP_REPO};
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
	r.aux = strdup(org);
	r.ctime = provider_parse_time(provider_json_str(it, "createdAt", NULL));
	r.mtime = provider_parse_time(mtime ? mtime : provider_json_str(it, "updatedAt", NULL));
	if (fail || !r.id || !r.name || !r.meta || !r.aux || prov_page_add(out, &r) < 0) {
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

static int codeup_add_groups(struct json_object *arr, const char *org, int top, int show_secrets,
			     struct prov_page *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < json_object_array_length(arr); i++) {
		struct json_object *it = json_object_array_get_idx(arr, i);
		const char *full = provider_json_str(it, "fullPath", NULL);

		/* "parentId empty" may answer every group the caller can see: keep the top. */
		if (top && full && path_depth(full) != 1)
			continue;
		r = codeup_group_record(it, org, show_secrets, out);
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

static int codeup_org_index(struct codeup *cu, const char *org)
{
	for (size_t i = 0; i < cu->c.nscopes; i++)
		if (!strcmp(cu->c.scopes[i], org))
			return (int)i;
	return -1;
}

/* Take and drop references to the memo under the lock: json-c's reference counts need not
 * be atomic, and readers on other threads share the array. */
static struct json_object *codeup_memo_take(struct codeup *cu, int k)
{
	struct json_object *o = NULL;

	pthread_mutex_lock(&cu->lock);
	if (cu->memo[k].repos && codeup_now() < cu->memo[k].fetched + cu->c.dir_ttl)
		o = json_object_get(cu->memo[k].repos);
	pthread_mutex_unlock(&cu->lock);
	return o;
}

static void codeup_memo_drop(struct codeup *cu, struct json_object *o)
{
	pthread_mutex_lock(&cu->lock);
	json_object_put(o);
	pthread_mutex_unlock(&cu->lock);
}

static void codeup_memo_store(struct codeup *cu, int k, struct json_object *o)
{
	pthread_mutex_lock(&cu->lock);
	json_object_put(cu->memo[k].repos);
	cu->memo[k].repos = json_object_get(o);
	cu->memo[k].fetched = codeup_now();
	pthread_mutex_unlock(&cu->lock);
}

/* The organization's repositories: the memo while fresh, else every page (memoised), or
 * with search only those the API's filter answers (a look-up, not memoised). The result
 * is shared: release it with codeup_memo_drop. */
static int codeup_repos(struct codeup *cu, const char *org, const char *search,
			struct json_object **out)
{
	const char *query[12] = {"orderBy", "created_at", "sort", "asc"};
	int k = codeup_org_index(cu, org), r;
	size_t nq = 4;
	char *path;

	*out = NULL;
	if (k < 0)
		return -ENOENT;
	*out = codeup_memo_take(cu, k);
	if (*out)
		return 0;
	if (search) {
		query[nq++] = "search";
		query[nq++] = search;
	}
	*out = json_object_new_array();
	path = codeup_path(org, "repositories", NULL);
	r = *out && path ? codeup_get_all(cu, "ListRepositories", path, query, nq, *out) : -ENOMEM;
	free(path);
	if (r == 0 && !search)
		codeup_memo_store(cu, k, *out);
	if (r < 0) {
		json_object_put(*out);
		*out = NULL;
	}
	return r;
}

/* A directory's organization, full path (groups) and the id its sub-groups name as parent. */
struct codeup_dir {
	char *buf;
	const char *org, *full, *gid;
};

static int codeup_dir_of(const struct prov_record *dir, struct codeup_dir *d)
{
	char *nl;

	memset(d, 0, sizeof(*d));
	if (dir->kind == CODEUP_ORG) {
		d->org = dir->id;
		return 0;
	}
	if (dir->kind != CODEUP_GROUP || !dir->aux)
		return -ENOTDIR;
	d->buf = strdup(dir->aux);
	if (!d->buf)
		return -ENOMEM;
	nl = strchr(d->buf, '\n');
	if (nl)
		*nl++ = '\0';
	d->org = d->buf;
	d->full = nl ? nl : "";
	d->gid = dir->id;
	return 0;
}

/* The sub-groups of d (parentId empty: the top-level groups) matching search, if any. */
static int codeup_groups(struct codeup *cu, const struct codeup_dir *d, const char *search,
			 struct prov_page *out)
{
	const char *query[16] = {"parentId", d->gid ? d->gid : "", "orderBy", "created_at", "sort",
				 "asc"};
	struct json_object *groups = json_object_new_array();
	char *path = codeup_path(d->org, "namespaces", NULL);
	size_t nq = 6;
	int r = -ENOMEM;

	if (search) {
		query[nq++] = "search";
		query[nq++] = search;
	}
	if (groups && path)
		r = codeup_get_all(cu, "ListNamespaces", path, query, nq, groups);
	if (r == 0)
		r = codeup_add_groups(groups, d->org, !d->gid, cu->c.show_secrets, out);
	json_object_put(groups);
	free(path);
	return r;
}

/* Groups of dir, then its repositories; the whole directory as one final page. */
static int codeup_list_dir(struct codeup *cu, const struct prov_record *dir, const char *search,
			   struct prov_page *out)
{
	struct json_object *repos = NULL;
	struct codeup_dir d;
	int r = codeup_dir_of(dir, &d);

	if (r < 0)
		return r;
	r = codeup_groups(cu, &d, search, out);
	if (r == 0)
		r = codeup_repos(cu, d.org, search, &repos);
	if (r == 0)
		r = codeup_add_repos(repos, d.org, d.gid ? d.full : NULL, d.gid, cu->c.show_secrets,
				     out);
	codeup_memo_drop(cu, repos);
	free(d.buf);
	out->total = (long)out->n;
	out->page_size = 0;
	out->last = 1;
	return r;
}

static int codeup_list_page(struct provider *base, const struct prov_record *dir, long page,
			    struct prov_page *out)
{
	struct codeup *cu = (struct codeup *)base;

	if (!dir)
		return provider_scopes_page(cu->c.scopes, cu->c.nscopes, CODEUP_ORG, out);
	if (page > 1) { /* the whole container comes in page 1 */
		out->last = 1;
		return 0;
	}
	return codeup_list_dir(cu, dir, NULL, out);
}

static int codeup_lookup(struct provider *base, const struct prov_record *dir, const char *term,
			 struct prov_page *out)
{
	if (!dir)
		return -ENOENT; /* organizations are the configured ones */
	return codeup_list_dir((struct codeup *)base, dir, term, out);
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

	if (rec->kind != CODEUP_REPO || !rec->aux || !rec->id)
		return -EIO;
	path = codeup_path(rec->aux, "repositories", rec->id);
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

static int codeup_check(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;
	struct http_response resp = {0};
	int r = codeup_get(cu, "GetCurrentUser", "/oapi/v1/platform/user", NULL, &resp);

	http_resp_free(&resp);
	return r;
}

static void codeup_flush(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;

	pthread_mutex_lock(&cu->lock);
	for (size_t i = 0; cu->memo && i < cu->c.nscopes; i++) {
		json_object_put(cu->memo[i].repos);
		cu->memo[i].repos = NULL;
	}
	pthread_mutex_unlock(&cu->lock);
}

static void codeup_destroy(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;

	codeup_flush(base);
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
	int r = -EIO;

	if (json_object_is_type(arr, json_type_array))
		r = codeup_add_groups(arr, org, top, show_secrets, out);
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

struct provider *codeup_new(const struct prov_conf *conf, const struct provider_env *env)
{
	struct codeup *cu;

	if (!conf->nscopes)
		return NULL; /* Codeup has no call that lists organizations */
	cu = calloc(1, sizeof(*cu));
	if (!cu)
		return NULL;
	cu->base.ops = &codeup_ops;
	cu->base.name = "codeup";
	pthread_mutex_init(&cu->lock, NULL);
	if (provider_common_init(&cu->c, conf, env) < 0 ||
	    !(cu->memo = calloc(conf->nscopes, sizeof(*cu->memo)))) {
		codeup_destroy(&cu->base);
		return NULL;
	}
	return &cu->base;
}
