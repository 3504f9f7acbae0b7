/* tree_merge: a fresh listing installed into the live nodes.
 *
 * Names are assigned over the whole listing; a child that keeps its id keeps its node (and
 * the kernel's lookups on it). A first page a reader was given keeps its order in front of
 * the whole listing that follows, so the reader's offsets stay valid. What the kernel
 * holds that a refresh changed is told to the watch. Lock rules: tree_i.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "names.h"
#include "tree_i.h"

struct byid {
	struct node *node;
	UT_hash_handle hh;
};

/* A refresh brings node n, which the kernel holds, the record rec: tell the watch which of
 * its copies of n and of n's files went stale. Lock held. */
static void watch_record(const struct tree *t, const struct node *n, const struct prov_record *rec)
{
	uint64_t ino = node_ino(t, n);
	int changed = n->rec.mtime != rec->mtime || n->rec.ctime != rec->ctime;
	unsigned kept = 0; /* files served before and after, one bit each */
	size_t len;
	int nl;

	for (unsigned i = 0; tree_files[i]; i++) {
		const char *was = node_file(n, tree_files[i], &len, &nl);
		const char *now = node_record_file(rec, tree_files[i], &len, &nl);

		if (!was != !now) {
			tree_watch_entry(t, n, tree_files[i], 1); /* a file came or went */
			changed = 1;
		} else if (was) {
			kept |= 1u << i;
			changed |= strcmp(was, now) != 0;
		}
	}
	if (!changed)
		return;
	tree_watch_inode(t, ino);
	for (unsigned i = 0; tree_files[i]; i++)
		if (kept & (1u << i))
			tree_watch_inode(t, ino | (i + 1));
}

void node_take_record(struct tree *t, struct node *n, struct prov_record *rec)
{
	if (rec->incomplete && !n->rec.incomplete && n->rec.url) {
		prov_record_free(rec);
		return;
	}
	if (node_held(n))
		watch_record(t, n, rec);
	node_set_record(n, rec);
}

static int install_child(struct tree *t, struct node *dir, struct byid **old,
			 struct prov_record *rec, const char *name, struct node **order,
			 size_t *norder)
{
	struct byid *b;
	struct node *c;

	HASH_FIND_STR(*old, rec->id, b);
	if (b) {
		c = b->node;
		HASH_DEL(*old, b);
		free(b);
		if (node_held(c) && strcmp(c->name, name))
			tree_watch_entry(t, dir, c->name, 1); /* renamed: the old name is gone */
		free(c->name);
		c->name = strdup(name);
		if (!c->name) {
			node_unref(t, c);
			return -ENOMEM;
		}
	} else {
		c = node_new(t, name, dir->prov);
		if (!c)
			return -ENOMEM;
	}
	node_take_record(t, c, rec);
	HASH_ADD_KEYPTR(hh, dir->children, c->name, strlen(c->name), c);
	order[(*norder)++] = c;
	return 0;
}

/* Detach dir's children into a map by id so the new listing can reuse them. */
static void detach_children(struct tree *t, struct node *dir, struct byid **old)
{
	struct node *c, *tmp;

	HASH_ITER(hh, dir->children, c, tmp)
	{
		struct byid *b = malloc(sizeof(*b)), *dup;

		HASH_DEL(dir->children, c);
		HASH_FIND_STR(*old, c->rec.id ? c->rec.id : "", dup);
		if (!b || dup || !c->rec.id) {
			free(b);
			node_order_replace(dir, c, NULL);
			node_unref(t, c);
			continue;
		}
		b->node = c;
		HASH_ADD_KEYPTR(hh, *old, c->rec.id, strlen(c->rec.id), b);
	}
}

/* Mark (or unmark) the entries of a first page a reader has been given, so the whole
 * listing can keep them in front in the same order: the reader's offsets stay valid even
 * when entries moved on the server meanwhile. */
static void keep_first_page_order(struct node *dir, int whole, int mark)
{
	for (size_t i = 0; whole && dir->partial && i < dir->norder; i++)
		dir->order[i]->rank = mark ? i + 1 : 0;
}

static int rank_cmp(const void *a, const void *b)
{
	const struct node *x = *(struct node *const *)a, *y = *(struct node *const *)b;

	return (x->rank > y->rank) - (x->rank < y->rank);
}

/* Move the first page's survivors to the front of order, in their old order; the rest keep
 * theirs. Returns how many of the old first page's nold entries are gone. */
static size_t first_page_prefix(struct node **order, size_t n, size_t nold)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++) {
		struct node *c = order[i];

		if (!c->rank)
			continue;
		memmove(&order[kept + 1], &order[kept], (i - kept) * sizeof(*order));
		order[kept++] = c;
	}
	qsort(order, kept, sizeof(*order), rank_cmp);
	return nold - kept;
}

/* Misses of dir the kernel may remember that its fresh listing has: they go. Lock held. */
static void watch_found(const struct tree *t, const struct node *dir)
{
	struct neg *e, *tmp;
	struct node *c;

	HASH_ITER(hh, dir->neg, e, tmp)
	{
		HASH_FIND_STR(dir->children, e->name, c);
		if (c)
			tree_watch_entry(t, dir, e->name, 1);
	}
}

/* The unique names of all's records, as names_assign gives them. */
static int listing_names(const struct node *dir, const struct prov_page *all,
			 struct names_entry *ne)
{
	const char *reserved[4];

	for (size_t i = 0; i < all->n; i++) {
		ne[i].raw = all->recs[i].name ? all->recs[i].name : "";
		ne[i].raw_len = all->recs[i].name ? all->recs[i].name_len : 0;
		ne[i].id = all->recs[i].id;
		ne[i].ctime = all->recs[i].ctime;
	}
	node_reserved(dir, reserved);
	return names_assign(ne, all->n, reserved);
}

/* dir now holds order: a whole listing or its first page. Lock held. */
static void listing_set(struct tree *t, struct node *dir, struct node **order, size_t norder,
			int whole)
{
	free(dir->order);
	dir->order = order;
	dir->norder = norder;
	dir->listed = whole;
	dir->partial = !whole;
	dir->gen++;
	dir->list_expires = clock_now() + t->o.dir_ttl;
	/* A first page answers look-ups of its names as a name look-up would. */
	for (size_t i = 0; !whole && i < norder; i++)
		dir->order[i]->seed_expires = dir->list_expires;
	if (whole)
		pager_page_drop(&dir->first);
	watch_found(t, dir);
	node_neg_clear(dir);
	node_order_check(dir);
}

/* Replace dir's children by the records of all. Called with the lock held. */
static int install_listing(struct tree *t, struct node *dir, struct prov_page *all, int whole)
{
	struct names_entry *ne = calloc(all->n ? all->n : 1, sizeof(*ne));
	struct node **order = calloc(all->n ? all->n : 1, sizeof(*order));
	struct byid *old = NULL, *b, *tmp;
	size_t norder = 0;
	int r = -ENOMEM;

	if (!ne || !order)
		goto out;
	r = listing_names(dir, all, ne);
	if (r < 0)
		goto out;
	keep_first_page_order(dir, whole, 1);
	detach_children(t, dir, &old);
	for (size_t i = 0; i < all->n && r == 0; i++)
		r = install_child(t, dir, &old, &all->recs[i], ne[i].name, order, &norder);
	if (r == 0 && whole && dir->partial)
		dir->dropped = first_page_prefix(order, norder, dir->norder);
	keep_first_page_order(dir, whole, 0);
	listing_set(t, dir, order, norder, whole);
	order = NULL;
out:
	HASH_ITER(hh, old, b, tmp)
	{
		HASH_DEL(old, b);
		if (r == 0 && whole && node_held(b->node))
			tree_watch_entry(t, dir, b->node->name, 1); /* gone from the cloud */
		node_unref(t, b->node);
		free(b);
	}
	for (size_t i = 0; ne && i < all->n; i++)
		free(ne[i].name);
	free(ne);
	free(order);
	return r;
}

/* What a fetch for dir passes the provider: a copy of its record, taken under the lock so
 * the call can run without it; nothing for a provider's root. */
static int node_fetch_arg(const struct node *dir, struct prov_record *copy)
{
	return dir->prov_root ? 0 : prov_record_copy(copy, &dir->rec);
}

/* A refresh of dir failed: serve its last listing for another dir_ttl, and say so once. */
static int load_failed(struct tree *t, struct node *dir, int r)
{
	if (!dir->listed)
		return r;
	if (!dir->err_logged)
		log_msg(LOG_WARNING, "%s: refreshing '%s' failed (%s); serving the last listing",
			dir->prov->name, dir->name, strerror(-r));
	dir->err_logged = 1;
	dir->list_expires = clock_now() + t->o.dir_ttl;
	return 0;
}

int tree_load(struct tree *t, struct node *dir)
{
	struct prov_page all = {0}, *first = NULL;
	struct prov_record copy = {0};
	int r = 0;

	pthread_mutex_lock(&t->lock);
	node_claim(t, dir);
	if (dir->listed && clock_now() < dir->list_expires)
		goto release;
	r = node_fetch_arg(dir, &copy);
	if (r < 0)
		goto release;
	if (dir->partial && clock_now() < dir->list_expires) {
		first = dir->first;
		dir->first = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	r = pager_listing(dir->prov, dir->prov_root ? NULL : &copy, t->o.parallel, &first, &all);
	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		r = install_listing(t, dir, &all, 1);
		dir->err_logged = 0;
	} else {
		r = load_failed(t, dir, r);
	}
release:
	node_release(t, dir);
	pthread_mutex_unlock(&t->lock);
	prov_page_free(&all);
	pager_page_drop(&first);
	prov_record_free(&copy);
	return r;
}

int tree_load_first(struct tree *t, struct node *dir)
{
	struct prov_page uniq = {0}, *keep = NULL;
	struct prov_record copy = {0};
	int r = 0;

	pthread_mutex_lock(&t->lock);
	node_claim(t, dir);
	if ((dir->listed || dir->partial) && clock_now() < dir->list_expires)
		goto release;
	r = node_fetch_arg(dir, &copy);
	pthread_mutex_unlock(&t->lock);
	if (r == 0)
		r = pager_first(dir->prov, dir->prov_root ? NULL : &copy, &uniq, &keep);
	pthread_mutex_lock(&t->lock);
	if (r == 0)
		r = install_listing(t, dir, &uniq, uniq.last);
	if (r == 0 && !dir->listed) {
		pager_page_drop(&dir->first);
		dir->first = keep;
		keep = NULL;
	}
release:
	node_release(t, dir);
	pthread_mutex_unlock(&t->lock);
	prov_page_free(&uniq);
	pager_page_drop(&keep);
	prov_record_free(&copy);
	return r;
}
