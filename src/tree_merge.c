/* tree_merge: a fresh listing installed into the live nodes.
 *
 * Names are assigned over the whole listing; a child that keeps its id keeps its node (and
 * the kernel's lookups on it). An entry with a display name beside its id (a workspace or
 * organization: its record's label) gets a symbolic link of that name beside its
 * directory, named after every directory (docs/design.md §1). A first page a reader was
 * given keeps its order in front of the whole listing that follows, so the reader's
 * offsets stay valid. What the kernel holds that a refresh changed is told to the watch.
 * Lock rules: tree_i.h. */
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

/* A directory's children by id while a listing is installed: the links apart, as they
 * share their target's id. */
struct olds {
	struct byid *nodes, *links;
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

/* The child of id in old, called name from now on (the watch told when the kernel held
 * it under another name), or a new one. NULL when out of memory. Lock held. */
static struct node *child_of_id(struct tree *t, struct node *dir, struct byid **old, const char *id,
				const char *name)
{
	struct byid *b;
	struct node *c;

	HASH_FIND_STR(*old, id, b);
	if (!b)
		return node_new(t, name, dir->prov);
	c = b->node;
	HASH_DEL(*old, b);
	free(b);
	if (node_held(c) && strcmp(c->name, name))
		tree_watch_entry(t, dir, c->name, 1); /* renamed: the old name is gone */
	free(c->name);
	c->name = strdup(name);
	if (!c->name) {
		node_unref(t, c);
		return NULL;
	}
	return c;
}

static int install_child(struct tree *t, struct node *dir, struct byid **old,
			 struct prov_record *rec, const char *name, struct node **order,
			 size_t *norder)
{
	struct node *c = child_of_id(t, dir, old, rec->id, name);

	if (!c)
		return -ENOMEM;
	node_take_record(t, c, rec);
	HASH_ADD_KEYPTR(hh, dir->children, c->name, strlen(c->name), c);
	order[(*norder)++] = c;
	return 0;
}

/* The link name -> target, target just installed, after it in dir's order. */
static int install_link(struct tree *t, struct node *dir, struct byid **old,
			const struct node *target, const char *name, struct node **order,
			size_t *norder)
{
	struct node *l = child_of_id(t, dir, old, target->rec.id, name);

	if (!l)
		return -ENOMEM;
	if (node_set_link(t, l, target) < 0) {
		node_unref(t, l);
		return -ENOMEM;
	}
	HASH_ADD_KEYPTR(hh, dir->children, l->name, strlen(l->name), l);
	order[(*norder)++] = l;
	return 0;
}

/* Detach dir's children into maps by id so the new listing can reuse them. */
static void detach_children(struct tree *t, struct node *dir, struct olds *olds)
{
	struct node *c, *tmp;

	HASH_ITER(hh, dir->children, c, tmp) {
		struct byid *b = malloc(sizeof(*b)), *dup;
		struct byid **old = c->link ? &olds->links : &olds->nodes;

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

	HASH_ITER(hh, dir->neg, e, tmp) {
		HASH_FIND_STR(dir->children, e->name, c);
		if (c)
			tree_watch_entry(t, dir, e->name, 1);
	}
}

/* The unique names of all's records, as names_assign gives them. */
static int listing_names(const struct node *dir, const struct prov_page *all,
			 struct names_entry *ne)
{
	const char *reserved[NODE_RESERVED_MAX];

	for (size_t i = 0; i < all->n; i++) {
		ne[i].raw = all->recs[i].name ? all->recs[i].name : "";
		ne[i].raw_len = all->recs[i].name ? all->recs[i].name_len : 0;
		ne[i].id = all->recs[i].id;
		ne[i].ctime = all->recs[i].ctime;
	}
	node_reserved(dir, reserved);
	return names_assign(ne, all->n, reserved);
}

/* The names of the links beside all's directories (named ne) into links[i], NULL where
 * record i has no label: its label, by the same rules, with every directory's name taken
 * as well as the names dir serves itself, so a directory keeps its id whatever the links
 * are called. 0 or -ENOMEM; the caller frees the names. */
static int link_names(const struct node *dir, const struct prov_page *all,
		      const struct names_entry *ne, char **links)
{
	const char *reserved[NODE_RESERVED_MAX];
	struct names_entry *le = calloc(all->n ? all->n : 1, sizeof(*le));
	const char **taken = calloc(all->n + sizeof(reserved) / sizeof(*reserved), sizeof(*taken));
	size_t *idx = calloc(all->n ? all->n : 1, sizeof(*idx));
	size_t m = 0, k = 0;
	int r = -ENOMEM;

	if (!le || !taken || !idx)
		goto out;
	node_reserved(dir, reserved);
	while (reserved[k])
		taken[k] = reserved[k], k++;
	for (size_t i = 0; i < all->n; i++) {
		const struct prov_record *rec = &all->recs[i];

		taken[k++] = ne[i].name;
		if (!rec->label)
			continue;
		le[m] = (struct names_entry){.raw = rec->label,
					     .raw_len = rec->label_len,
					     .id = rec->id,
					     .ctime = rec->ctime};
		idx[m++] = i;
	}
	r = names_assign(le, m, taken);
	for (size_t j = 0; r == 0 && j < m; j++)
		links[idx[j]] = le[j].name;
out:
	free(le);
	free(taken);
	free(idx);
	return r;
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
	index_listing_changed(t, dir);
	node_neg_clear(dir);
	node_order_check(dir);
}

/* Let go of the children of old that the new listing did not take. Lock held. */
static void drop_olds(struct tree *t, struct node *dir, struct byid **old, int told)
{
	struct byid *b, *tmp;

	HASH_ITER(hh, *old, b, tmp) {
		HASH_DEL(*old, b);
		if (told && node_held(b->node))
			tree_watch_entry(t, dir, b->node->name, 1); /* gone from the cloud */
		node_unref(t, b->node);
		free(b);
	}
}

/* Replace dir's children by the records of all (and the links beside those that have a
 * label). Called with the lock held. */
static int install_listing(struct tree *t, struct node *dir, struct prov_page *all, int whole)
{
	struct names_entry *ne = calloc(all->n ? all->n : 1, sizeof(*ne));
	char **links = calloc(all->n ? all->n : 1, sizeof(*links));
	struct node **order = calloc(all->n ? 2 * all->n : 1, sizeof(*order));
	struct olds old = {NULL, NULL};
	size_t norder = 0;
	int r = -ENOMEM;

	if (!ne || !links || !order)
		goto out;
	r = listing_names(dir, all, ne);
	if (r == 0)
		r = link_names(dir, all, ne, links);
	if (r < 0)
		goto out;
	keep_first_page_order(dir, whole, 1);
	detach_children(t, dir, &old);
	for (size_t i = 0; i < all->n && r == 0; i++) {
		r = install_child(t, dir, &old.nodes, &all->recs[i], ne[i].name, order, &norder);
		if (r == 0 && links[i])
			r = install_link(t, dir, &old.links, order[norder - 1], links[i], order,
					 &norder);
	}
	if (r == 0 && whole && dir->partial)
		dir->dropped = first_page_prefix(order, norder, dir->norder);
	keep_first_page_order(dir, whole, 0);
	listing_set(t, dir, order, norder, whole);
	order = NULL;
out:
	drop_olds(t, dir, &old.nodes, r == 0 && whole);
	drop_olds(t, dir, &old.links, r == 0 && whole);
	for (size_t i = 0; i < all->n; i++) {
		free(ne ? ne[i].name : NULL);
		free(links ? links[i] : NULL);
	}
	free(ne);
	free(links);
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

int tree_load_claimed(struct tree *t, struct node *dir)
{
	struct prov_page all = {0}, *first = NULL;
	struct prov_record copy = {0};
	int r = node_fetch_arg(dir, &copy);

	if (r < 0)
		return r;
	if (dir->partial && clock_now() < dir->list_expires) {
		first = dir->first;
		dir->first = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	r = pager_listing(dir->prov, dir->prov_root ? NULL : &copy, t->o.parallel, &t->quit, &first,
			  &all);
	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		r = install_listing(t, dir, &all, 1);
		dir->err_logged = 0;
	}
	prov_page_free(&all);
	pager_page_drop(&first);
	prov_record_free(&copy);
	return r;
}

int tree_load(struct tree *t, struct node *dir)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = node_claim(t, dir);
	if (r < 0)
		goto out;
	if (!dir->listed || clock_now() >= dir->list_expires) {
		r = tree_load_claimed(t, dir);
		/* A reader that gave up is no failure of the cloud's. */
		if (r < 0 && r != -EINTR)
			r = load_failed(t, dir, r);
	}
	node_release(t, dir);
out:
	pthread_mutex_unlock(&t->lock);
	return r;
}

int tree_load_first(struct tree *t, struct node *dir)
{
	struct prov_page uniq = {0}, *keep = NULL;
	struct prov_record copy = {0};
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (node_claim(t, dir) < 0) {
		pthread_mutex_unlock(&t->lock);
		return -EINTR;
	}
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
