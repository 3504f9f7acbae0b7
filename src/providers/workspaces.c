/* workspaces: what PAI and Volcengine share. Both have workspaces at the root (the
 * configured ones, named by one filtered listing call, or every one the listing call
 * gives), code sources in a workspace, and a name filter on that listing; only the
 * requests differ, behind the cloud's fetch (struct ws_cloud). */
#include <errno.h>
#include <stdlib.h>

#include "providers_i.h"

/* The configured workspaces the cloud knows, into found: its listing filtered by ids,
 * every page of it (a server may page by fewer than asked), within check_pages. */
static int ws_workspaces_of(struct provider *base, char *const *ids, size_t n,
			    struct prov_page *found)
{
	struct ws_provider *w = (struct ws_provider *)base;
	int r = 0;

	found->last = 0;
	for (long page = 1; r == 0 && !found->last && page <= w->cloud->check_pages; page++)
		r = w->cloud->fetch(w, NULL, NULL, ids, n, page, w->cloud->page_size, found);
	return r;
}

/* The credentials, and the configured workspaces with the same call. */
static int ws_check(struct provider *base, char *why, size_t whylen)
{
	struct ws_provider *w = (struct ws_provider *)base;
	struct prov_page pg = {0};
	int r;

	if (!w->c.nscopes)
		r = w->cloud->fetch(w, NULL, NULL, NULL, 0, 1, 1, &pg);
	else
		r = ws_workspaces_of(base, w->c.scopes, w->c.nscopes, &pg);
	if (r == 0)
		r = provscope_confirm(w->c.scopes, w->c.nscopes, &pg, "workspace", why, whylen);
	if (r == 0 && w->c.nscopes)
		provscope_seed_keep(&w->c, &pg); /* their names, for the root's first listing */
	prov_page_free(&pg);
	return r;
}

static int ws_list_page(struct provider *base, const struct prov_record *dir, long page,
			struct prov_page *out)
{
	struct ws_provider *w = (struct ws_provider *)base;

	if (dir || !w->c.nscopes)
		return w->cloud->fetch(w, dir ? dir->id : NULL, NULL, NULL, 0, page,
				       w->cloud->page_size, out);
	return provscope_named(base, &w->c, w->cloud->workspace_kind, "workspace", ws_workspaces_of,
			       out);
}

static int ws_filter_page(struct provider *base, const struct prov_record *ws, const char *term,
			  long page, struct prov_page *out, void *ctx)
{
	struct ws_provider *w = (struct ws_provider *)base;

	(void)ctx;
	return w->cloud->fetch(w, ws->id, term, NULL, 0, page, w->cloud->page_size, out);
}

/* The name filter: a superset of the entries whose name holds term. */
static int ws_lookup(struct provider *base, const struct prov_record *dir, const char *term,
		     struct prov_page *out)
{
	if (!dir)
		return -ENOENT; /* workspaces are found by listing the root */
	return provider_filter_pages(base, dir, term, ws_filter_page, NULL, out);
}

static void ws_flush(struct provider *base)
{
	provscope_seed_drop(&((struct ws_provider *)base)->c);
}

static void ws_destroy(struct provider *base)
{
	struct ws_provider *w = (struct ws_provider *)base;

	provscope_common_free(&w->c);
	free(w);
}

static const struct provider_ops ws_ops = {
    .check = ws_check,
    .list_page = ws_list_page,
    .lookup = ws_lookup,
    .flush = ws_flush,
    .destroy = ws_destroy,
};

struct provider *ws_provider_new(const struct ws_cloud *cloud, const struct prov_conf *conf,
				 const struct provider_env *env)
{
	struct ws_provider *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->base.ops = &ws_ops;
	w->cloud = cloud;
	if (provscope_common_init(&w->c, conf, env) < 0) {
		free(w);
		return NULL;
	}
	return &w->base;
}
