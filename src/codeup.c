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

#define CODEUP_PAGE      100
#define CODEUP_MAX_PAGES 1000

enum codeup_kind { CODEUP_ORG = 1, CODEUP_GROUP, CODEUP_REPO };

struct codeup_memo {
	struct json_object *repos; /* array of list items, or NULL */
	int64_t fetched;
};

struct codeup {
	struct provider base;
	struct prov_common c;
	pthread_mutex_t lock;        /* guards memo */
	struct codeup_memo *memo;    /* one per configured organization */
};

static int64_t codeup_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* "/oapi/v1/codeup/organizations/<org>/<what>", the org id percent-encoded. */
static char *codeup_path(const char *org, const char *what)
{
	char *eorg = http_escape(org, strlen(org)), *path = NULL;

	if (eorg && asprintf(&path, "/oapi/v1/codeup/organizations/%s/%s", eorg, what) < 0)
		path = NULL;
	free(eorg);
	return path;
}

static int codeup_fail(const char *what, const struct http_response *resp)
{
	struct json_object *body = json_tokener_parse(resp->body ? resp->body : "");
	const char *code = provider_json_str(body, "errorCode", NULL);
	const char *msg = provider_json_str(body, "errorMessage", NULL);
	const char *rid = http_resp_header(resp, "x-request-id");

	if (!msg)
		msg = provider_json_str(body, "errorDescription", NULL);
	if (!msg)
		msg = provider_json_str(body, "message", NULL);
	log_msg(LOG_ERR, "codeup: %s failed: HTTP %ld %s: %.200s (request id %s)", what,
		resp->status, code ? code : "(no code)", msg ? msg : "", rid ? rid : "none");
	json_object_put(body);
	return resp->status == 401 || resp->status == 403 ? -EACCES : -EIO;
}

/* GET path?query; the answer's status, body and headers in resp. 0 or -errno. */
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
	if (r < 0)
		log_msg(LOG_ERR, "codeup: %s failed: %s", what, strerror(-r));
	else if (resp->status < 200 || resp->status > 299)
		r = codeup_fail(what, resp);
	http_req_free(&req);
	return r;
}

/* Is there a page after this one? Headers when the server sends them, else a full page. */
static int codeup_more(const struct http_response *resp, size_t n)
{
	const char *next = http_resp_header(resp, "x-next-page");

	if (next)
		return *next != '\0' && strcmp(next, "0") != 0;
	return n >= CODEUP_PAGE;
}

static struct json_object *codeup_parse_body(const char *body, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj = NULL;

	if (!tok)
		return NULL;
	obj = json_tokener_parse_ex(tok, body, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(obj, json_type_array)) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* Every page of a list call, appended to the array all. query ends with page, perPage. */
static int codeup_get_all(struct codeup *cu, const char *what, const char *path,
			  const char **query, size_t npage, struct json_object *all)
{
	char page[24];
	int r = 0;

	query[npage] = "page";
	query[npage + 1] = page;
	query[npage + 2] = "perPage";
	query[npage + 3] = "100";
	query[npage + 4] = NULL;
	for (long k = 1; k <= CODEUP_MAX_PAGES; k++) {
		struct http_response resp = {0};
		struct json_object *arr;
		size_t n;

		snprintf(page, sizeof(page), "%ld", k);
		r = codeup_get(cu, what, path, query, &resp);
		arr = r == 0 ? codeup_parse_body(resp.body, resp.len) : NULL;
		if (r == 0 && !arr) {
			log_msg(LOG_ERR, "codeup: %s: the answer is not a JSON array", what);
			r = -EIO;
		}
		n = arr ? json_object_array_length(arr) : 0;
		for (size_t i = 0; i < n; i++)
			json_object_array_add(all, json_object_get(json_object_array_get_idx(arr, i)));
		json_object_put(arr);
		if (r < 0 || !codeup_more(&resp, n)) {
			http_resp_free(&resp);
			break;
		}
		http_resp_free(&resp);
	}
	return r;
}

/* The number or string at key as a string in buf; NULL when neither. */
static const char *codeup_id(struct json_object *o, const char *key, char *buf, size_t cap)
{
	struct json_object *v = provider_json_get(o, key, json_type_int);

	if (v) {
		snprintf(buf, cap, "%lld", (long long)json_object_get_int64(v));
		return buf;
	}
	return provider_json_str(o, key, NULL);
}

static int codeup_group_record(struct json_object *it, const char *org, int show_secrets,
			       struct prov_page *out)
{
	struct prov_record r = {.kind = CODEUP_GROUP, .container = 1};
	const char *path = provider_json_str(it, "path", NULL);
	const char *full = provider_json_str(it, "fullPath", NULL);
	const char *web = provider_json_str(it, "webUrl", NULL);
	char idbuf[32];
	const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));

	if (!id || !path)
		return 0;
	r.id = strdup(id);
	r.name = strdup(path);
	r.name_len = strlen(path);
	r.meta = provider_meta_json(it, show_secrets);
	r.url = strdup(web ? web : "");
	r.web_url = web && *web ? strdup(web) : NULL;
	if (asprintf(&r.aux, "%s\n%s", org, full ? full : "") < 0)
		r.aux = NULL;
	if (!r.id || !r.name || !r.meta || !r.url || !r.aux || prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

static int codeup_repo_record(struct json_object *it, const char *org, int show_secrets,
			      struct prov_page *out)
{
	struct prov_record r = {.kind = CODEUP_REPO};
	const char *path = provider_json_str(it, "path", NULL);
	const char *url = provider_json_str(it, "httpUrlToRepo", NULL);
	const char *branch = provider_json_str(it, "defaultBranch", NULL);
	const char *mtime = provider_json_str(it, "lastActivityAt", NULL);
	char idbuf[32];
	const char *id = codeup_id(it, "id", idbuf, sizeof(idbuf));

	if (!path)
		path = provider_json_str(it, "name", NULL);
	if (!id || !path)
		return 0;
	r.id = strdup(id);
	r.name = strdup(path);
	r.name_len = strlen(path);
	r.meta = provider_meta_json(it, show_secrets);
	r.url = url && *url ? strdup(url) : NULL;
	r.branch = branch && *branch ? strdup(branch) : NULL;
	r.incomplete = !r.url || !r.branch;
	r.aux = strdup(org);
	r.web_url = provider_json_str(it, "webUrl", NULL) ? strdup(provider_json_str(it, "webUrl", NULL)) : NULL;
	r.ctime = provider_parse_time(provider_json_str(it, "createdAt", NULL));
	r.mtime = provider_parse_time(mtime ? mtime : provider_json_str(it, "updatedAt", NULL));
	if (!r.id || !r.name || !r.meta || !r.aux || prov_page_add(out, &r) < 0) {
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

/* Does repository it sit directly in the group whose full path is full (id gid)? For an
 * organization, full is NULL: the repository belongs to no group. */
static int codeup_repo_in(struct json_object *it, const char *full, const char *gid)
{
	const char *pwn = provider_json_str(it, "pathWithNamespace", NULL);
	char buf[32];
	const char *nsid;
	size_t len;

	if (pwn) {
		const char *slash = strrchr(pwn, '/');

		if (!full)
			return path_depth(pwn) == 1;
		len = slash ? (size_t)(slash - pwn) : 0;
		return slash && strlen(full) == len && !strncmp(pwn, full, len);
	}
	nsid = codeup_id(it, "namespaceId", buf, sizeof(buf));
	return full && gid && nsid && !strcmp(nsid, gid);
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

/* The organization's repositories, listed once per dir_ttl. A reference: put it. */
static int codeup_repos(struct codeup *cu, const char *org, struct json_object **out)
{
	int k = codeup_org_index(cu, org), r = 0;
	const char *query[12] = {"orderBy", "created_at", "sort", "asc"};
	struct json_object *all;
	char *path;

	*out = NULL;
	if (k < 0)
		return -ENOENT;
	pthread_mutex_lock(&cu->lock);
	if (cu->memo[k].repos && codeup_now() < cu->memo[k].fetched + cu->c.dir_ttl)
		*out = json_object_get(cu->memo[k].repos);
	pthread_mutex_unlock(&cu->lock);
	if (*out)
		return 0;
	all = json_object_new_array();
	path = codeup_path(org, "repositories");
	r = all && path ? codeup_get_all(cu, "ListRepositories", path, query, 4, all) : -ENOMEM;
	free(path);
	if (r < 0) {
		json_object_put(all);
		return r;
	}
	pthread_mutex_lock(&cu->lock);
	json_object_put(cu->memo[k].repos);
	cu->memo[k].repos = json_object_get(all);
	cu->memo[k].fetched = codeup_now();
	pthread_mutex_unlock(&cu->lock);
	*out = all;
	return 0;
}

/* Split a group's aux "org\nfullPath" in place into its two parts. */
static void codeup_split_aux(char *aux, char **org, char **full)
{
	char *nl = strchr(aux, '\n');

	*org = aux;
	*full = nl ? nl + 1 : aux + strlen(aux);
	if (nl)
		*nl = '\0';
}

/* Groups of dir (parent id, or "" for the top) matching search, then its repositories. */
static int codeup_list_dir(struct codeup *cu, const struct prov_record *dir, const char *search,
			   struct prov_page *out)
{
	const char *query[16] = {"parentId", "", "orderBy", "created_at", "sort", "asc"};
	struct json_object *groups = json_object_new_array(), *repos = NULL;
	char *aux = strdup(dir->aux ? dir->aux : dir->id), *org, *full, *path = NULL;
	int top = dir->kind == CODEUP_ORG, r = -ENOMEM;
	size_t nq = 6;

	if (!groups || !aux)
		goto out;
	codeup_split_aux(aux, &org, &full);
	if (!top)
		query[1] = dir->id;
	if (search) {
		query[nq++] = "search";
		query[nq++] = search;
	}
	path = codeup_path(org, "namespaces");
	if (!path)
		goto out;
	r = codeup_get_all(cu, "ListNamespaces", path, query, nq, groups);
	if (r == 0)
		r = codeup_add_groups(groups, org, top, cu->c.show_secrets, out);
	if (r == 0)
		r = codeup_repos(cu, org, &repos);
	if (r == 0)
		r = codeup_add_repos(repos, org, top ? NULL : full, dir->id, cu->c.show_secrets,
				     out);
	out->total = (long)out->n;
	out->last = 1;
out:
	json_object_put(groups);
	json_object_put(repos);
	free(path);
	free(aux);
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
	return codeup_list_dir((struct codeup *)base, dir, term, out);
}

/* Merge GetRepository's answer into the list item for meta.json, url and branch. */
static int codeup_merge(struct prov_record *rec, struct json_object *got, int show_secrets)
{
	struct json_object *item = json_tokener_parse(rec->meta ? rec->meta : "{}");
	const char *url, *branch;
	char *meta;

	if (!json_object_is_type(item, json_type_object)) {
		json_object_put(item);
		item = json_object_new_object();
	}
	json_object_object_foreach(got, key, val)
		json_object_object_add(item, key, json_object_get(val));
	meta = provider_meta_json(item, show_secrets);
	url = provider_json_str(item, "httpUrlToRepo", NULL);
	branch = provider_json_str(item, "defaultBranch", NULL);
	free(rec->meta);
	free(rec->url);
	free(rec->branch);
	rec->meta = meta;
	rec->url = strdup(url ? url : "");
	rec->branch = branch && *branch ? strdup(branch) : NULL;
	rec->incomplete = 0;
	json_object_put(item);
	return rec->meta && rec->url ? 0 : -ENOMEM;
}

static int codeup_complete(struct provider *base, struct prov_record *rec)
{
	struct codeup *cu = (struct codeup *)base;
	struct http_response resp = {0};
	struct json_object *got = NULL;
	char *eid = http_escape(rec->id, strlen(rec->id)), *what = NULL, *path = NULL;
	int r = -ENOMEM;

	if (!eid || asprintf(&what, "repositories/%s", eid) < 0)
		goto out;
	path = codeup_path(rec->aux ? rec->aux : "", what);
	if (!path)
		goto out;
	r = codeup_get(cu, "GetRepository", path, NULL, &resp);
	if (r < 0)
		goto out;
	got = json_tokener_parse(resp.body);
	r = json_object_is_type(got, json_type_object) ? codeup_merge(rec, got, cu->c.show_secrets)
						       : -EIO;
	if (r == -EIO)
		log_msg(LOG_ERR, "codeup: GetRepository: the answer is not a JSON object");
out:
	json_object_put(got);
	http_resp_free(&resp);
	free(eid);
	free(what);
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
	for (size_t i = 0; i < cu->c.nscopes; i++) {
		json_object_put(cu->memo[i].repos);
		cu->memo[i].repos = NULL;
	}
	pthread_mutex_unlock(&cu->lock);
}

static void codeup_destroy(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;

	if (cu->memo)
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

int codeup_parse_list(const char *body, size_t len, const char *org, int repos, int show_secrets,
		      struct prov_page *out)
{
	struct json_object *arr = codeup_parse_body(body, len);
	int r;

	if (!arr)
		return -EIO;
	r = repos ? codeup_add_repos(arr, org, NULL, NULL, show_secrets, out)
		  : codeup_add_groups(arr, org, 0, show_secrets, out);
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
