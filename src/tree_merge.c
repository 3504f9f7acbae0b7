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
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "names.h"
#include "tree_i.h"

#define TREE_TRIM_BYTES (1 << 20) /* a listing that large hands free heap back after it */
/* Seconds a first page kept stands for page 1 of the whole listing. Older, page 1 is asked
 * for again: a record gone from it since moved the first one of page 2 into it, where
 * nobody would ask for it (the rest is paged as the cloud pages now), and neither a
 * missing total nor one an add elsewhere kept could tell. Within it, the page is as good
 * as one a listing fetches in parallel with the others (ls asks for the rest at once). */
#define TREE_FIRST_REUSE 1

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

/* A fresh listing being installed: its records (strings in of[i], or their own), names
 * and the names of the links beside them (NULL where a record has none), the children it
 * replaces (by id; the links apart, as they share their target's id), and the listing
 * readers will be given. */
struct install {
	struct prov_page *all;
	struct recblock **of;
	struct names_entry *ne;
	char **links;
	struct byid *old, *old_links;
	struct listing *l;
};

/* The child of id in *old, called name from now on (the watch told when the kernel held
 * it under another name), or a new one. NULL when out of memory. Lock held. */
static struct node *child_of_id(struct tree *t, struct node *dir, struct byid **old, const char *id,
				const char *name)
{
	struct byid *b;
	struct node *c;

	HASH_FIND_STR(*old, id, b);
	if (!b)
		return node_new_child(t, dir, name);
	c = b->node;
	HASH_DEL(*old, b);
	free(b);
	if (strcmp(c->name, name)) {
		char *renamed = strdup(name);

		if (!renamed) {
			node_orphan(t, c);
			return NULL;
		}
		if (node_held(c))
			tree_watch_entry(t, dir, c->name, 1); /* renamed: the old name is gone */
		free(c->name);
		c->name = renamed;
	}
	return c;
}

static int install_child(struct tree *t, struct node *dir, struct install *in, size_t i)
{
	struct prov_record *rec = &in->all->recs[i];
	struct node *c = child_of_id(t, dir, &in->old, rec->id, in->ne[i].name);

	if (!c)
		return -ENOMEM;
	node_take_record(t, c, rec, in->of[i]);
	HASH_ADD_KEYPTR(hh, dir->children, c->name, strlen(c->name), c);
	listing_add(in->l, c, c->name);
	return 0;
}

/* The link name -> target, target just installed, after it in the listing. */
static int install_link(struct tree *t, struct node *dir, struct install *in,
			const struct node *target, const char *name)
{
	struct node *l = child_of_id(t, dir, &in->old_links, target->rec.id, name);

	if (!l)
		return -ENOMEM;
	if (node_set_link(t, l, target) < 0) {
		node_orphan(t, l);
		return -ENOMEM;
	}
	HASH_ADD_KEYPTR(hh, dir->children, l->name, strlen(l->name), l);
	listing_add(in->l, l, l->name);
	return 0;
}

/* Detach dir's children into maps by id so the new listing can reuse them. */
static void detach_children(struct tree *t, struct node *dir, struct install *in)
{
	struct node *c, *tmp;

	HASH_ITER(hh, dir->children, c, tmp) {
		struct byid *b = malloc(sizeof(*b)), *dup;
		struct byid **old = c->link ? &in->old_links : &in->old;

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
 * page's entries still there go in front in the page's order (matched by id, a link apart
 * from the directory whose id it shares: a look-up may have put another node under a name
 * since), the rest keep theirs, so the reader's offsets stay valid; l says how many of the
 * page are gone. 0 or -ENOMEM. */
static int keep_first_page_order(const struct listing *first, struct listing *l)
{
	struct rank *ranks = calloc(first->n ? first->n : 1, sizeof(*ranks)), *map[2] = {0}, *k;
	struct lentry *front = calloc(first->n ? first->n : 1, sizeof(*front));
	size_t nfront = 0, nrest = 0;

	if (!ranks || !front) {
		free(ranks);
		free(front);
		return -ENOMEM;
	}
	for (size_t i = 0; i < first->n; i++) {
		const char *id = first->e[i].node->rec.id;
		int link = first->e[i].node->link != NULL;

		HASH_FIND_STR(map[link], id ? id : "", k);
		if (!id || k)
			continue;
		ranks[i] = (struct rank){.id = id, .place = i};
		HASH_ADD_KEYPTR(hh, map[link], id, strlen(id), &ranks[i]);
	}
	for (size_t i = 0; i < l->n; i++) {
		const char *id = l->e[i].node->rec.id;

		HASH_FIND_STR(map[l->e[i].node->link != NULL], id ? id : "", k);
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
	HASH_CLEAR(hh, map[0]);
	HASH_CLEAR(hh, map[1]);
	free(ranks);
	free(front);
	return 0;
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

/* The names of the links beside all's directories (named ne) into links[i], NULL where
 * record i has no label: its label, by the same rules, with every directory's name taken
 * as well as the names dir serves itself, so a directory keeps its id whatever the links
 * are called. *n: how many, *size: their bytes. 0 or -ENOMEM; the caller frees them. */
static int link_names(const struct node *dir, const struct prov_page *all,
		      const struct names_entry *ne, char **links, size_t *n, size_t *size)
{
	const char *reserved[NODE_RESERVED_MAX];
	struct names_entry *le = calloc(all->n ? all->n : 1, sizeof(*le));
	const char **taken = calloc(all->n + NODE_RESERVED_MAX, sizeof(*taken));
	size_t *idx = calloc(all->n ? all->n : 1, sizeof(*idx));
	size_t m = 0, k = 0;
	int r = -ENOMEM;

	*n = *size = 0;
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
	r = m ? names_assign(le, m, taken) : 0; /* most listings have no labels */
	for (size_t j = 0; r == 0 && j < m; j++) {
		links[idx[j]] = le[j].name;
		*size += strlen(le[j].name) + 1;
	}
	*n = r == 0 ? m : 0;
out:
	free(le);
	free(taken);
	free(idx);
	return r;
}

/* Let go of the children of *old that the new listing did not take. Lock held. */
static void drop_olds(struct tree *t, struct node *dir, struct byid **old, int told)
{
	struct byid *b, *tmp;

	HASH_ITER(hh, *old, b, tmp) {
		HASH_DEL(*old, b);
		if (told && node_held(b->node))
			tree_watch_entry(t, dir, b->node->name, 1); /* gone from the cloud */
		node_orphan(t, b->node);
		free(b);
	}
}

/* Names of in's directories and of the links beside them, and a listing with room for
 * both. 0 or -ENOMEM. */
static int install_names(const struct node *dir, struct install *in)
{
	size_t size, nlinks, lsize;
	int r = listing_names(dir, in->all, in->ne, &size);

	if (r == 0)
		r = link_names(dir, in->all, in->ne, in->links, &nlinks, &lsize);
	if (r == 0 && !(in->l = listing_new(in->all->n + nlinks, size + lsize)))
		r = -ENOMEM;
	return r;
}

/* Replace dir's children by the records of f, and the links beside those that have a
 * label. Lock held. */
static int install_listing(struct tree *t, struct node *dir, struct fetched *f, int whole)
{
	struct prov_page *all = &f->all;
	struct install in = {.all = all, .of = f->of};
	struct listing *cur = dir->listings;
	int r = -ENOMEM;

	in.ne = calloc(all->n ? all->n : 1, sizeof(*in.ne));
	in.links = calloc(all->n ? all->n : 1, sizeof(*in.links));
	if (in.ne && in.links)
		r = install_names(dir, &in);
	if (r < 0)
		goto out;
	detach_children(t, dir, &in);
	for (size_t i = 0; i < all->n && r == 0; i++) {
		r = install_child(t, dir, &in, i);
		if (r == 0 && in.links[i])
			r = install_link(t, dir, &in, in.l->e[in.l->n - 1].node, in.links[i]);
	}
	if (r == 0 && whole && cur && cur->partial)
		r = keep_first_page_order(cur, in.l);
	listing_set(t, dir, in.l, whole);
out:
	drop_olds(t, dir, &in.old, r == 0 && whole);
	drop_olds(t, dir, &in.old_links, r == 0 && whole);
	for (size_t i = 0; i < all->n; i++) {
		free(in.ne ? in.ne[i].name : NULL);
		free(in.links ? in.links[i] : NULL);
	}
	free(in.ne);
	free(in.links);
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

/* Free f, installed. The blocks a whole listing fills are large; once the last one's
 * memory is free, the heap gives back what it can. Lock held. */
static void fetched_done(struct tree *t, struct fetched *f)
{
	size_t size = f->bytes;

	fetched_free(f);
	if (size >= TREE_TRIM_BYTES) {
		pthread_mutex_unlock(&t->lock);
		malloc_trim(0);
		pthread_mutex_lock(&t->lock);
	}
}

/* A listing fetched, cut at the tree's depth, then installed; f is freed. Lock held. */
static int install_fetched(struct tree *t, struct node *dir, struct fetched *f, int whole)
{
	int r;

	node_depth_trim(t, dir, &f->all, f->of);
	r = install_listing(t, dir, f, whole);
	fetched_done(t, f);
	return r;
}

/* Page 1 as a listing to install: its strings packed into one block, without the lock (a
 * copy takes a while). 0 or -ENOMEM (pg then untouched). */
static int first_fetched(struct tree *t, struct prov_page *pg, struct fetched *f)
{
	struct recblock *block;
	int r;

	pthread_mutex_unlock(&t->lock);
	recblock_pack(pg, &block); /* without memory for it, the records stay as they are */
	r = fetched_from_page(f, pg, block);
	if (r < 0 && block) {
		pthread_mutex_lock(&t->lock);
		recblock_done(block, pg); /* its strings, and the records with them, go */
		return r;
	}
	pthread_mutex_lock(&t->lock);
	return r;
}

/* Fetch dir's whole listing and install it; dir claimed, the lock held (released while
 * fetching). Its first page, kept since a reader took it, is page 1 unless it is older than
 * TREE_FIRST_REUSE; the reader's offsets stay valid either way (keep_first_page_order).
 * The pages reach the readers of the first page as they come (tree_stream.c). 0 or
 * -errno. */
static int load_claimed(struct tree *t, struct node *dir, const struct tree_grown *grown)
{
	struct prov_page *first = NULL;
	struct fetched all = {0};
	struct prov_record copy = {0};
	struct stream st;
	struct pager_progress progress = {.fn = stream_pages, .ctx = &st};
	int r = node_fetch_arg(dir, &copy);

	if (r < 0)
		return r;
	if (dir->partial && clock_now() - dir->first_at <= TREE_FIRST_REUSE) {
		first = dir->first;
		dir->first = NULL;
	}
	stream_init(&st, t, dir, grown, first != NULL);
	pthread_mutex_unlock(&t->lock);
	r = pager_listing(dir->prov, dir->prov_root ? NULL : &copy, t->o.parallel, &t->quit, &first,
			  &all, &progress);
	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		if (stream_finish(&st, &all))
			fetched_done(t, &all);
		else
			r = install_fetched(t, dir, &all, 1);
		dir->err_logged = 0;
	}
	dir->rest_err = r < 0 && st.steps ? r : 0;
	/* Its error is for the readers of the listings it grew; one who comes later starts
	 * afresh, from a new first page. */
	if (dir->rest_err && !dir->listed)
		dir->list_expires = clock_now();
	stream_free(&st);
	fetched_free(&all);
	pager_page_drop(&first);
	prov_record_free(&copy);
	return r;
}

int tree_load_claimed(struct tree *t, struct node *dir)
{
	return load_claimed(t, dir, NULL);
}

/* For a reader at the end of partial listing cont: 1 once a listing continues it, waiting
 * while another call fetches; 0 with dir claimed when none does; -EINTR when the reader
 * gave up; the error of a fetch that streamed pages and failed. Lock held. */
static int claim_rest(struct tree *t, struct node *dir, uint64_t cont)
{
	int r = 0;

	dir->waiting++;
	while (!listing_from(dir, cont) && dir->loading && r == 0)
		r = node_wait(t);
	dir->waiting--;
	if (r < 0)
		return r;
	if (listing_from(dir, cont))
		return 1;
	if (dir->rest_err) { /* what streamed so far was all there is to have */
		r = dir->rest_err;
		dir->rest_err = 0;
		return r;
	}
	return node_claim(t, dir); /* nobody fetches it: at once */
}

/* Claim dir and make it whole when it must be: for a reader at the end of partial listing
 * cont, unless a listing continues it; for anyone else (cont 0), unless a fresh one is. */
static int load_whole(struct tree *t, struct node *dir, uint64_t cont,
		      const struct tree_grown *grown)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = cont ? claim_rest(t, dir, cont) : node_claim(t, dir);
	if (r != 0)
		goto out;
	if (cont ? dir->partial && !listing_from(dir, cont)
		 : !dir->listed || clock_now() >= dir->list_expires) {
		r = load_claimed(t, dir, grown);
		/* A reader that gave up is no failure of the cloud's. */
		if (r < 0 && r != -EINTR)
			r = load_failed(t, dir, r);
	}
	node_release(t, dir);
out:
	pthread_mutex_unlock(&t->lock);
	return r < 0 ? r : 0;
}

int tree_load(struct tree *t, struct node *dir)
{
	return load_whole(t, dir, 0, NULL);
}

int tree_load_rest(struct tree *t, struct node *dir, uint64_t gen, const struct tree_grown *grown)
{
	return load_whole(t, dir, gen, grown);
}

int tree_load_first(struct tree *t, struct node *dir)
{
	struct prov_page uniq = {0}, *keep = NULL;
	struct prov_record copy = {0};
	struct fetched f = {0};
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
		r = first_fetched(t, &uniq, &f);
	if (r == 0)
		r = install_fetched(t, dir, &f, f.all.last);
	/* A failed stream's error is for the readers of its listings; this page's fetch again. */
	if (r == 0)
		dir->rest_err = 0;
	if (r == 0 && !dir->listed) {
		pager_page_drop(&dir->first);
		dir->first = keep;
		dir->first_at = clock_now();
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
