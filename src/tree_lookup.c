/* tree_lookup: one name in a directory. A listed directory answers from its listing; a
 * never-listed one asks the provider's name filter (one request) and is seeded with the
 * answer; a miss is remembered for neg_ttl. Lock rules: tree_i.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "names.h"
#include "tree_i.h"

#define TREE_MAX_NEG 4096 /* remembered misses per directory before they are dropped */

static int neg_fresh(const struct node *dir, const char *name)
{
	struct neg *e;

	HASH_FIND_STR(dir->neg, name, e);
	return e && clock_now() < e->expires;
}

/* Remember that name is missing from dir, until `until` at the latest. */
static void neg_add(struct tree *t, struct node *dir, const char *name, int64_t until)
{
	struct neg *e;

	if (dir->nneg >= TREE_MAX_NEG)
		node_neg_clear(dir);
	HASH_FIND_STR(dir->neg, name, e);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->name = strdup(name))) {
			free(e);
			return;
		}
		HASH_ADD_KEYPTR(hh, dir->neg, e->name, strlen(e->name), e);
		dir->nneg++;
	}
	e->expires = clock_now() + t->o.neg_ttl;
	if (until < e->expires)
		e->expires = until;
}

/* The filter term for name: its longest run free of '_' (which sanitising may have
 * produced). Empty when the filter cannot answer exactly and the caller must list. */
static void seek_term(const char *name, char *term, size_t cap)
{
	size_t best = 0, bestlen = 0, len = strlen(name);

	term[0] = '\0';
	if (strchr(name, '~') || len >= NAMES_MAX)
		return;
	for (size_t i = 0; i < len;) {
		size_t run = strcspn(name + i, "_");

		if (run > bestlen)
			best = i, bestlen = run;
		i += run ? run : 1;
	}
	if (bestlen && bestlen < cap) {
		memcpy(term, name + best, bestlen);
		term[bestlen] = '\0';
	}
}

/* Seed dir with the entry called name, or remember that there is none. Lock held. */
static int seed_child(struct tree *t, struct node *dir, const char *name, struct prov_record *rec)
{
	struct node *c, *old;

	/* A listing that gave the old node keeps it (and its place) for its readers; the
	 * name is the new one's from now on. */
	HASH_FIND_STR(dir->children, name, old);
	if (old) {
		HASH_DEL(dir->children, old);
		node_orphan(t, old);
	}
	if (!rec) {
		neg_add(t, dir, name, INT64_MAX);
		return 0;
	}
	c = node_new_child(t, dir, name);
	if (!c)
		return -ENOMEM;
	node_take_record(t, c, rec, NULL);
	c->seed_expires = clock_now() + t->o.attr_ttl;
	HASH_ADD_KEYPTR(hh, dir->children, c->name, strlen(c->name), c);
	return 0;
}

/* Find name among the filter's candidates, naming them as a full listing would. */
static int seek_pick(struct prov_page *pg, const char *name, const char *const *reserved,
		     struct prov_record **pick)
{
	struct names_entry *ne = calloc(pg->n ? pg->n : 1, sizeof(*ne));
	size_t *idx = calloc(pg->n ? pg->n : 1, sizeof(*idx));
	size_t m = 0;
	char safe[NAMES_MAX + 1];
	int r = -ENOMEM;

	*pick = NULL;
	if (!ne || !idx)
		goto out;
	for (size_t i = 0; i < pg->n; i++) {
		names_sanitize(pg->recs[i].name ? pg->recs[i].name : "", pg->recs[i].name_len,
			       safe);
		if (strcmp(safe, name))
			continue;
		ne[m].raw = pg->recs[i].name ? pg->recs[i].name : "";
		ne[m].raw_len = pg->recs[i].name_len;
		ne[m].id = pg->recs[i].id;
		ne[m].ctime = pg->recs[i].ctime;
		idx[m++] = i;
	}
	r = names_assign(ne, m, reserved);
	for (size_t j = 0; r == 0 && j < m; j++)
		if (!strcmp(ne[j].name, name))
			*pick = &pg->recs[idx[j]];
out:
	for (size_t j = 0; ne && j < m; j++)
		free(ne[j].name);
	free(ne);
	free(idx);
	return r;
}

/* Resolve name in a never-listed dir with the API's own filter: one request. */
static int seek(struct tree *t, struct node *dir, const char *name, const char *term)
{
	struct prov_record copy = {0}, *pick;
	struct prov_page pg = {0};
	const char *reserved[NODE_RESERVED_MAX];
	int r;

	pthread_mutex_lock(&t->lock);
	r = prov_record_copy(&copy, &dir->rec);
	node_reserved(dir, reserved);
	pthread_mutex_unlock(&t->lock);
	if (r < 0)
		return r;
	r = pager_lookup(dir->prov, &copy, term, &pg);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&t->lock);
	node_depth_trim(t, dir, &pg, NULL); /* as a listing of dir would be */
	pthread_mutex_unlock(&t->lock);
	r = seek_pick(&pg, name, reserved, &pick);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&t->lock);
	r = seed_child(t, dir, name, pick);
	pthread_mutex_unlock(&t->lock);
out:
	prov_page_free(&pg);
	prov_record_free(&copy);
	return r;
}

/* What dir already knows of name. 1 found, 0 unknown, -ENOENT known missing. Lock held. */
static int child_cached(struct tree *t, struct node *dir, const char *name, struct node **out)
{
	int64_t now = clock_now();
	struct node *c;

	HASH_FIND_STR(dir->children, name, c);
	if (dir->listed && now < dir->list_expires) {
		if (!c) {
			/* The kernel remembers it, so a refresh may have to undo that; we
			 * trust it no longer than the listing. */
			neg_add(t, dir, name, dir->list_expires);
			return -ENOENT;
		}
	} else if (!c || dir->listed || now >= c->seed_expires) {
		return neg_fresh(dir, name) ? -ENOENT : 0;
	}
	node_ref(c);
	*out = c;
	return 1;
}

/* After a fetch: take what is there, stale or not, without fetching again. Lock held. */
static int child_after_fetch(struct node *dir, const char *name, struct node **out)
{
	struct node *c;

	HASH_FIND_STR(dir->children, name, c);
	if (!c || (!dir->listed && c->seed_expires == 0))
		return -ENOENT;
	node_ref(c);
	*out = c;
	return 0;
}

int tree_child_get(struct tree *t, struct node *dir, const char *name, struct node **out)
{
	char term[NAMES_MAX + 1];
	int r;

	pthread_mutex_lock(&t->lock);
	for (r = 0; dir->loading && r == 0;)
		r = node_wait(t);
	if (r == 0)
		r = child_cached(t, dir, name, out);
	if (r != 0) {
		pthread_mutex_unlock(&t->lock);
		return r < 0 ? r : 0;
	}
	term[0] = '\0';
	if (!dir->listed && !dir->prov_root && pager_can_lookup(dir->prov))
		seek_term(name, term, sizeof(term));
	pthread_mutex_unlock(&t->lock);

	r = term[0] ? seek(t, dir, name, term) : tree_load(t, dir);
	if (r < 0)
		return r;
	pthread_mutex_lock(&t->lock);
	r = child_after_fetch(dir, name, out);
	pthread_mutex_unlock(&t->lock);
	return r;
}
