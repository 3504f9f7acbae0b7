/* codeup: Alibaba Cloud DevOps Codeup OpenAPI (x-yunxiao-token). The root holds the
 * configured organizations, or every one the token's user joined (ListOrganizations),
 * each named beside its id by ListOrganizations' name. An organization holds
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
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "codeup_i.h"

#define CODEUP_ORG_PAGES 150 /* the docs advise no further: a list that long is no list */
#define CODEUP_ORGS	 "/oapi/v1/platform/organizations"

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
		return -ENOMEM;
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

/* Page k of ListOrganizations (the organizations the token's user joined) into out, with
 * x-total's total when the server sends it, so the tree asks for no page past the last. */
static int codeup_orgs_page(struct codeup *cu, long k, struct prov_page *out)
{
	const char *query[8];
	struct codeup_got got;
	size_t before = out->n;
	int r;

	r = codeup_get_page(cu, "ListOrganizations", CODEUP_ORGS, query, 0, k, &got);
	if (r == 0)
		r = codeup_add_orgs(got.arr, out);
	json_object_put(got.arr);
	out->bytes += got.bytes; /* the tree bounds a listing's bytes */
	out->total = got.total;
	out->page_size = 0;
	if (r == 0)
		provider_page_done(out, k, CODEUP_PAGE, before);
	out->last = !got.more;
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
		if (r == 0 && !provscope_confirm(ids, n, found, "organization", NULL, 0))
			break;
	}
	return r;
}

static int codeup_list_page(struct provider *base, const struct prov_record *dir, long page,
			    struct prov_page *out)
{
	struct codeup *cu = (struct codeup *)base;
	struct codeup_dir d;
	int r;

	if (!dir && !cu->c.nscopes)
		return codeup_orgs_page(cu, page, out);
	if (!dir)
		return provscope_named(base, &cu->c, CODEUP_ORG, "organization", codeup_orgs_of,
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
		return -ENOMEM;
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
		return -ENOENT; /* organizations are found by listing the root */
	r = codeup_dir_of(dir, &s.d);
	if (r < 0)
		return r;
	return provider_filter_pages(base, dir, term, codeup_search_page, &s, out);
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
	got = provjson_parse(resp.body, resp.len);
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
		r = provscope_confirm(cu->c.scopes, cu->c.nscopes, &pg, "organization", why,
				      whylen);
	if (r == 0)
		provscope_seed_keep(&cu->c, &pg); /* their names, for the root's first listing */
	prov_page_free(&pg);
	return r;
}

static void codeup_flush(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;

	provscope_seed_drop(&cu->c);
	codeup_memo_flush(cu);
}

static void codeup_destroy(struct provider *base)
{
	struct codeup *cu = (struct codeup *)base;

	codeup_memo_free(cu);
	provscope_seed_drop(&cu->c);
	provscope_common_free(&cu->c);
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

static struct provider *codeup_new(const struct prov_conf *conf, const struct provider_env *env,
				   char *why, size_t whylen)
{
	struct codeup *cu = calloc(1, sizeof(*cu));

	(void)why;
	(void)whylen;
	if (!cu)
		return NULL;
	cu->base.ops = &codeup_ops;
	pthread_mutex_init(&cu->lock, NULL);
	if (provscope_common_init(&cu->c, conf, env) < 0) {
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
