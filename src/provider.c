/* provider: making providers from their descriptors, a thread's way to give up, and what
 * every cloud shares of its life cycle: what an answer means and the line a failed one
 * logs, paging arithmetic and name-filter pages; records and pages and their memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "provider.h"
#include "providers/providers_i.h"

/* The calling thread's way to give up (provider_set_cancel). */
static __thread struct prov_cancel provider_cancel;

/* The provider of conf, made by its cloud's constructor. NULL with err on failure. */
static struct provider *provider_new(const struct prov_conf *conf, const struct provider_env *env,
				     char *err, size_t errlen)
{
	const struct prov_desc *d = conf->desc;
	struct provider *p;
	char why[256] = "";

	p = d->create(conf, env, why, sizeof(why));
	if (!p) {
		snprintf(err, errlen, "cannot set up the provider (%s)",
			 why[0] ? why : "out of memory");
		return NULL;
	}
	p->name = d->name;
	return p;
}

void provider_set_cancel(const struct prov_cancel *c)
{
	provider_cancel = c ? *c : (struct prov_cancel){0};
	http_thread_cancel(provider_cancel.cancelled, provider_cancel.ctx);
}

void provider_set_slots(struct http_slots *slots)
{
	http_thread_slots(slots);
}

struct prov_cancel provider_get_cancel(void)
{
	return provider_cancel;
}

int provider_cancelled(void)
{
	return provider_cancel.cancelled && provider_cancel.cancelled(provider_cancel.ctx);
}

/* The log level of a request that got no answer: a reader that gave up (-EINTR) or the
 * daemon stopping (-ECANCELED) is asked for, not met, and worth no error line. */
static int provider_fail_level(int r)
{
	return r == -EINTR || r == -ECANCELED ? LOG_DEBUG : LOG_ERR;
}

void provider_log_answer(const char *cloud, const char *call, const struct http_response *resp,
			 const char *code, const char *msg, const char *rid, const char *why)
{
	log_msg(LOG_ERR, "%s: %s failed: HTTP %ld %s: %.200s (request id %s)", cloud, call,
		resp->status, code ? code : "(no code)", why ? why : (msg ? msg : ""),
		rid ? rid : "none");
}

int provider_answer(const char *cloud, const char *call, int r, const struct http_response *resp,
		    provider_log_fn log, provider_errno_fn classify)
{
	if (r < 0) {
		log_msg(provider_fail_level(r), "%s: %s failed: %s", cloud, call, strerror(-r));
		return r;
	}
	if (resp->status < 200 || resp->status > 299) {
		log(call, resp, NULL);
		return classify(resp->status, resp->body, resp->len);
	}
	return 0;
}

int provider_new_all(const struct config *c, const struct provider_env *env, struct provider ***out,
		     size_t *n, char *err, size_t errlen)
{
	struct provider **all = calloc(c->nprov + 1, sizeof(*all));
	char why[512];
	size_t k, made = 0;

	*out = NULL;
	*n = 0;
	if (!all) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (k = 0; k < c->nprov; k++) {
		if (!c->prov[k].enabled)
			continue; /* a cloud without credentials has no directory */
		all[made] = provider_new(&c->prov[k], env, why, sizeof(why));
		if (!all[made])
			break;
		made++;
	}
	if (k < c->nprov) {
		snprintf(err, errlen, "%s: %s", c->prov[k].desc->name, why);
		while (made-- > 0)
			all[made]->ops->destroy(all[made]);
		free(all);
		return -EINVAL;
	}
	*out = all;
	*n = made;
	return 0;
}

char *provider_strndup(const char *s, size_t len)
{
	char *d = s ? malloc(len + 1) : NULL;

	if (d) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

void provider_page_done(struct prov_page *out, long page, long asked, size_t before)
{
	long long n = (long long)(out->n - before);
	long long size = out->page_size > 0 && out->page_size < asked ? out->page_size : asked;

	/* Short of asked with more beyond it: the server pages by a smaller size of its own,
	 * and the next pages' offsets follow that size, not ours. */
	if (n > 0 && n < size && out->total >= 0 && (page - 1) * size + n < out->total)
		size = n;
	out->page_size = (long)size;
	if (out->total < 0) /* no total: only a short page ends the listing */
		out->last = n < size;
	else
		out->last = n == 0 || (page - 1) * size + n >= out->total;
}

#define PROVIDER_FILTER_PAGES 50 /* a name filter that needs more is no filter */

int provider_filter_pages(struct provider *p, const struct prov_record *dir, const char *term,
			  provider_filter_fn fetch, void *ctx, struct prov_page *out)
{
	int r = 0;

	for (long page = 1; page <= PROVIDER_FILTER_PAGES; page++) {
		out->last = 0;
		r = fetch(p, dir, term, page, out, ctx);
		if (r == 0 && out->n > (size_t)PROV_MAX_ENTRIES) {
			log_msg(LOG_ERR,
				"%s: the name filter in %s: more than %ld entries; failing "
				"(docs/design.md §4)",
				p->name, dir->id, PROV_MAX_ENTRIES);
			return -EIO;
		}
		if (r < 0 || out->last)
			return r;
	}
	log_msg(LOG_WARNING,
		"%s: the name filter in %s still had more after %d pages; the "
		"look-up uses what came",
		p->name, dir->id, PROVIDER_FILTER_PAGES);
	return r;
}

int prov_page_add(struct prov_page *pg, const struct prov_record *r)
{
	if (pg->n == pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 16;
		struct prov_record *grown = realloc(pg->recs, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		pg->recs = grown;
		pg->cap = cap;
	}
	pg->recs[pg->n++] = *r;
	return 0;
}

void prov_record_free(struct prov_record *r)
{
	free(r->id);
	free(r->name);
	free(r->meta);
	free(r->url);
	free(r->branch);
	free(r->web_url);
	free(r->scope);
	free(r->path);
	free(r->label);
	for (size_t i = 0; i < r->nancestors; i++)
		free(r->ancestors[i]);
	free(r->ancestors);
	memset(r, 0, sizeof(*r));
}

void prov_page_free(struct prov_page *pg)
{
	for (size_t i = 0; i < pg->n; i++)
		prov_record_free(&pg->recs[i]);
	free(pg->recs);
	memset(pg, 0, sizeof(*pg));
	pg->total = -1;
}

static int copy_str(char **dst, const char *src, size_t len)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = malloc(len + 1);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, len);
	(*dst)[len] = '\0';
	return 0;
}

/* dst's copy of src's ancestors; dst->nancestors counts those copied so far. */
static int copy_ancestors(struct prov_record *dst, const struct prov_record *src)
{
	dst->nancestors = 0;
	if (!src->nancestors)
		return 0;
	dst->ancestors = calloc(src->nancestors, sizeof(*dst->ancestors));
	if (!dst->ancestors)
		return -ENOMEM;
	for (; dst->nancestors < src->nancestors; dst->nancestors++) {
		const char *id = src->ancestors[dst->nancestors];

		if (copy_str(&dst->ancestors[dst->nancestors], id, strlen(id)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int prov_record_copy(struct prov_record *dst, const struct prov_record *src)
{
	/* Scalars first; every pointer is then owned by dst alone, so freeing on failure is
	 * safe. */
	*dst = *src;
	dst->id = dst->name = dst->meta = dst->url = dst->branch = dst->web_url = NULL;
	dst->scope = dst->path = dst->label = NULL;
	dst->ancestors = NULL;
	dst->nancestors = 0;
	if (copy_str(&dst->id, src->id, src->id ? strlen(src->id) : 0) ||
	    copy_str(&dst->name, src->name, src->name_len) ||
	    copy_str(&dst->meta, src->meta, src->meta ? strlen(src->meta) : 0) ||
	    copy_str(&dst->url, src->url, src->url ? strlen(src->url) : 0) ||
	    copy_str(&dst->branch, src->branch, src->branch ? strlen(src->branch) : 0) ||
	    copy_str(&dst->web_url, src->web_url, src->web_url ? strlen(src->web_url) : 0) ||
	    copy_str(&dst->scope, src->scope, src->scope ? strlen(src->scope) : 0) ||
	    copy_str(&dst->path, src->path, src->path ? strlen(src->path) : 0) ||
	    copy_str(&dst->label, src->label, src->label_len) || copy_ancestors(dst, src)) {
		prov_record_free(dst);
		return -ENOMEM;
	}
	return 0;
}
