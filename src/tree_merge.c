/* tree_merge: a fresh listing installed into the live nodes.
 *
 * Names are assigned over the whole listing; a child that keeps its id keeps its node (and
 * the kernel's lookups on it). A first page a reader was given keeps its order in front of
 * the whole listing that follows, so the reader's offsets stay valid. What the kernel
 * holds that a refresh changed is told to the watch. Lock rules: tree_i.h. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "names.h"
#include "tree_i.h"

#define TREE_TRIM_BYTES (1 << 20) /* a listing that large hands free heap back after it */

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

void node_take_record(struct tree *t, struct node *n, struct prov_record *rec,
		      struct recblock *block)
{
	if (rec->incomplete && !n->rec.incomplete && n->rec.url) {
		if (block)
			memset(rec, 0, sizeof(*rec)); /* the block's strings */
		else
			prov_record_free(rec);
		node_rec_own(n); /* kept, but not in the block of the listing it came with */
		return;
	}
	if (node_held(n))
		watch_record(t, n, rec);
	node_set_record(n, rec, block);
}

/* A fresh listing being installed: its records (strings in block, or their own) and
 * names, the children it replaces (by id), and the listing readers will be given. */
struct install {
	struct prov_page *all;
	struct recblock *block;
	struct names_entry *ne;
	struct byid *old;
	struct listing *l;
};

static int install_child(struct tree *t, struct node *dir, struct install *in, size_t i)
{
	struct prov_record *rec = &in->all->recs[i];
	const char *name = in->ne[i].name;
	struct byid *b;
	struct node *c;

	HASH_FIND_STR(in->old, rec->id, b);
	if (b) {
		c = b->node;
		HASH_DEL(in->old, b);
		free(b);
	} else {
		c = node_new(t, name, dir->prov);
		if (!c)
			return -ENOMEM;
	}
	if (strcmp(c->name, name)) {
		char *renamed = strdup(name);

		if (!renamed) {
			node_orphan(t, c);
			return -ENOMEM;
		}
		if (node_held(c))
			tree_watch_entry(t, dir, c->name, 1); /* renamed: the old name is gone */
		free(c->name);
		c->name = renamed;
	}
	node_take_record(t, c, rec, in->block);
	HASH_ADD_KEYPTR(hh, dir->children, c->name, strlen(c->name), c);
	listing_add(in->l, c, c->name);
	return 0;
}

/* Detach dir's children into a map by id so the new listing can reuse them. */
static void detach_children(struct tree *t, struct node *dir, struct byid **old)
{
	struct node *c, *tmp;

	HASH_ITER(hh, dir->children, c, tmp) {
		struct byid *b = malloc(sizeof(*b)), *dup;

		HASH_DEL(dir->children, c);
		HASH_FIND_STR(*old, c->rec.id ? c->rec.id : "", dup);
		if (!b || dup || !c->rec.id) {
			free(b);
			node_orphan(t, c);
			continue;
		}
		b->node = c;
		HASH_ADD_KEYPTR(hh, *old, c->rec.id, strlen(c->rec.id), b);
	}
}

struct rank {
	const char *id;
	size_t place;
	UT_hash_handle hh;
};

/* The whole listing l follows first page `first` a reader may be part-way through: the
 * page's entries still there go in front in the page's order (matched by id: a look-up
 * may have put another node under a name since), the rest keep theirs, so the reader's
 * offsets stay valid; l says how many of the page are gone. 0 or -ENOMEM. */
static int keep_first_page_order(const struct listing *first, struct listing *l)
{
	struct rank *ranks = calloc(first->n ? first->n : 1, sizeof(*ranks)), *map = NULL, *k;
	struct lentry *front = calloc(first->n ? first->n : 1, sizeof(*front));
	size_t nfront = 0, nrest = 0;

	if (!ranks || !front) {
		free(ranks);
		free(front);
		return -ENOMEM;
	}
	for (size_t i = 0; i < first->n; i++) {
		const char *id = first->e[i].node->rec.id;

		HASH_FIND_STR(map, id ? id : "", k);
		if (!id || k)
			continue;
		ranks[i] = (struct rank){.id = id, .place = i};
		HASH_ADD_KEYPTR(hh, map, id, strlen(id), &ranks[i]);
	}
	for (size_t i = 0; i < l->n; i++) {
		const char *id = l->e[i].node->rec.id;

		HASH_FIND_STR(map, id ? id : "", k);
		if (k && !front[k->place].node) {
			front[k->place] = l->e[i];
			nfront++;
		} else {
			l->e[nrest++] = l->e[i];
		}
	}
	memmove(&l->e[nfront], l->e, nrest * sizeof(*l->e));
	for (size_t i = 0, j = 0; i < first->n; i++)
		if (front[i].node)
			l->e[j++] = front[i];
	l->from = first->gen;
	l->dropped = first->n - nfront;
	HASH_CLEAR(hh, map);
	free(ranks);
	free(front);
	return 0;
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

/* The unique names of all's records, as names_assign gives them; *size: their bytes. */
static int listing_names(const struct node *dir, const struct prov_page *all,
			 struct names_entry *ne, size_t *size)
{
	const char *reserved[NODE_RESERVED_MAX];
	int r;

	for (size_t i = 0; i < all->n; i++) {
		ne[i].raw = all->recs[i].name ? all->recs[i].name : "";
		ne[i].raw_len = all->recs[i].name ? all->recs[i].name_len : 0;
		ne[i].id = all->recs[i].id;
		ne[i].ctime = all->recs[i].ctime;
	}
	node_reserved(dir, reserved);
	r = names_assign(ne, all->n, reserved);
	*size = 0;
	for (size_t i = 0; r == 0 && i < all->n; i++)
		*size += strlen(ne[i].name) + 1;
	return r;
}

/* dir now serves l: a whole listing or its first page. Lock held. */
static void listing_set(struct tree *t, struct node *dir, struct listing *l, int whole)
{
	dir->listed = whole;
	dir->partial = !whole;
	l->partial = !whole;
	listing_push(t, dir, l, ++dir->gen);
	dir->list_expires = clock_now() + t->o.dir_ttl;
	/* A first page answers look-ups of its names as a name look-up would. */
	for (size_t i = 0; !whole && i < l->n; i++)
		l->e[i].node->seed_expires = dir->list_expires;
	if (whole)
		pager_page_drop(&dir->first);
	watch_found(t, dir);
	index_listing_changed(t, dir);
	node_neg_clear(dir);
}

/* Replace dir's children by the records of all (strings in block, or their own). Lock
 * held. */
static int install_listing(struct tree *t, struct node *dir, struct prov_page *all,
			   struct recblock *block, int whole)
{
	struct install in = {.all = all, .block = block};
	struct listing *cur = dir->listings;
	struct byid *b, *tmp;
	size_t names_size;
	int r = -ENOMEM;

	in.ne = calloc(all->n ? all->n : 1, sizeof(*in.ne));
	if (!in.ne)
		goto out;
	r = listing_names(dir, all, in.ne, &names_size);
	if (r == 0 && !(in.l = listing_new(all->n, names_size)))
		r = -ENOMEM;
	if (r < 0)
		goto out;
	detach_children(t, dir, &in.old);
	for (size_t i = 0; i < all->n && r == 0; i++)
		r = install_child(t, dir, &in, i);
	if (r == 0 && whole && cur && cur->partial)
		r = keep_first_page_order(cur, in.l);
	listing_set(t, dir, in.l, whole);
out:
	HASH_ITER(hh, in.old, b, tmp) {
		HASH_DEL(in.old, b);
		if (r == 0 && whole && node_held(b->node))
			tree_watch_entry(t, dir, b->node->name, 1); /* gone from the cloud */
		node_orphan(t, b->node);
		free(b);
	}
	for (size_t i = 0; in.ne && i < all->n; i++)
		free(in.ne[i].name);
	free(in.ne);
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

/* A listing just fetched: its strings packed into one block (without the lock: the copy
 * of a large listing takes a while), then installed. A block a whole listing fills is
 * large; once the last one's memory is free, the heap gives back what it can. */
static int install_fetched(struct tree *t, struct node *dir, struct prov_page *pg, int whole)
{
	struct recblock *block;
	size_t size;
	int r;

	pthread_mutex_unlock(&t->lock);
	recblock_pack(pg, &block); /* without memory for it, the records stay as they are */
	size = block ? block->size : 0;
	pthread_mutex_lock(&t->lock);
	r = install_listing(t, dir, pg, block, whole);
	recblock_done(block, pg);
	if (size >= TREE_TRIM_BYTES) {
		pthread_mutex_unlock(&t->lock);
		prov_page_free(pg);
		malloc_trim(0);
		pthread_mutex_lock(&t->lock);
	}
	return r;
}

/* Fetch dir's whole listing and install it; dir claimed, the lock held (released while
 * fetching). cont: the first page (its gen) a reader is at the end of, whose page is used
 * however old (one read, one listing); 0 for anyone else. 0 or -errno. */
static int load_claimed(struct tree *t, struct node *dir, uint64_t cont)
{
	struct prov_page all = {0}, *first = NULL;
	struct prov_record copy = {0};
	int r = node_fetch_arg(dir, &copy);

	if (r < 0)
		return r;
	if (dir->partial && (clock_now() < dir->list_expires ||
			     (cont && listing_find(t, dir, cont) == dir->listings))) {
		first = dir->first;
		dir->first = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	r = pager_listing(dir->prov, dir->prov_root ? NULL : &copy, t->o.parallel, &t->quit, &first,
			  &all);
	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		r = install_fetched(t, dir, &all, 1);
		dir->err_logged = 0;
	}
	prov_page_free(&all);
	pager_page_drop(&first);
	prov_record_free(&copy);
	return r;
}

int tree_load_claimed(struct tree *t, struct node *dir)
{
	return load_claimed(t, dir, 0);
}

/* Claim dir and make it whole when it must be: for a reader at the end of first page
 * cont, unless a whole listing is there; for anyone else (cont 0), unless a fresh one is. */
static int load_whole(struct tree *t, struct node *dir, uint64_t cont)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = node_claim(t, dir);
	if (r < 0)
		goto out;
	if (cont ? dir->partial && !listing_from(dir, cont)
		 : !dir->listed || clock_now() >= dir->list_expires) {
		r = load_claimed(t, dir, cont);
		/* A reader that gave up is no failure of the cloud's. */
		if (r < 0 && r != -EINTR)
			r = load_failed(t, dir, r);
	}
	node_release(t, dir);
out:
	pthread_mutex_unlock(&t->lock);
	return r;
}

int tree_load(struct tree *t, struct node *dir)
{
	return load_whole(t, dir, 0);
}

int tree_load_rest(struct tree *t, struct node *dir, uint64_t gen)
{
	return load_whole(t, dir, gen);
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
		r = install_fetched(t, dir, &uniq, uniq.last);
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
