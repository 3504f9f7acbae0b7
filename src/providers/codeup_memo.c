/* codeup_memo: the organization-wide memo (see codeup_i.h). The API has no group filter
 * for repositories, so an organization's repositories are listed page by page, each page
 * kept for dir_ttl and shared by every directory of the organization, within Codeup's
 * bounds (CODEUP_MAX_ITEMS, CODEUP_MAX_BYTES); beside them, how far each parent's groups
 * go. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <uthash.h>

#include "clock.h"
#include "codeup_i.h"

/* org's memo, made when first asked for; NULL when out of memory. */
struct codeup_memo *codeup_memo_of(struct codeup *cu, const char *org)
{
	struct codeup_memo *m;

	pthread_mutex_lock(&cu->lock);
	HASH_FIND_STR(cu->memo, org, m);
	if (!m && (m = calloc(1, sizeof(*m) + strlen(org) + 1))) {
		strcpy(m->org, org);
		HASH_ADD_STR(cu->memo, org, m);
	}
	pthread_mutex_unlock(&cu->lock);
	return m;
}

/* Empty m when force, or when dir_ttl passed since its first page came. Lock held. */
static void codeup_memo_expire(struct codeup *cu, struct codeup_memo *m, int force)
{
	struct codeup_lane *l, *tmp;

	if (!force && (!m->fetched || clock_now() < m->fetched + cu->c.dir_ttl))
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
void codeup_memo_drop(struct codeup *cu, struct json_object *o)
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
		m->fetched = clock_now();
	return 0;
}

/* Page k of org's repositories, the memo's or fetched and kept (got->bytes then counts the
 * answer); got->more when a page follows. Release got->arr with codeup_memo_drop. */
int codeup_repos_page(struct codeup *cu, struct codeup_memo *m, const char *org, long k,
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
int codeup_repos_whole(struct codeup *cu, struct codeup_memo *m, struct json_object ***pages,
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
long codeup_lane_last(struct codeup *cu, struct codeup_memo *m, const char *gid)
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
void codeup_lane_keep(struct codeup *cu, struct codeup_memo *m, const char *gid, long k, int done)
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
		m->fetched = clock_now();
	pthread_mutex_unlock(&cu->lock);
}

void codeup_memo_flush(struct codeup *cu)
{
	struct codeup_memo *m, *tmp;

	pthread_mutex_lock(&cu->lock);
	HASH_ITER(hh, cu->memo, m, tmp)
		codeup_memo_expire(cu, m, 1);
	pthread_mutex_unlock(&cu->lock);
}

void codeup_memo_free(struct codeup *cu)
{
	struct codeup_memo *m, *tmp;

	codeup_memo_flush(cu);
	HASH_ITER(hh, cu->memo, m, tmp) {
		HASH_DEL(cu->memo, m);
		free(m->pages);
		free(m);
	}
}
