/* tree: nodes addressed by path, filled from the providers on demand.
 *
 * One mutex guards every node field; no network call is made while holding it. A node
 * that is being fetched has `loading` set and other threads wait on the condition
 * variable instead of fetching it again. Nodes are reference-counted so a refresh can
 * replace a directory's children while another thread, or the kernel, still uses an old
 * one.
 *
 * Inode numbers: the root is TREE_ROOT; any other is a node's address mixed with a key
 * drawn at start (so no heap address reaches user space), with the low two bits naming
 * one of the node's files (1 + index in tree_files) or the node itself (0). Every lookup
 * the kernel holds is one reference on the node. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stddef.h>
#include <sys/random.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "log.h"
#include "names.h"
#include "tree.h"

#define TREE_MAX_PAGES 100000	    /* guards against a server that never says "last" */
#define TREE_RELIST    3	    /* fetches of a listing whose total moved while paging */
#define TREE_MAX_NEG   4096	    /* remembered misses per directory before they are dropped */
#define TREE_FILE_MASK 3u	    /* low bits of an inode number: which file of the node */
#define TREE_INO_HIGH  (1ULL << 62) /* above any address: no inode number is 0 or TREE_ROOT */

/* Those bits are free in a node's address only with malloc's alignment. */
_Static_assert(alignof(max_align_t) > TREE_FILE_MASK, "malloc alignment too small");

struct neg {
	char *name;
	int64_t expires;
	UT_hash_handle hh;
};

struct node {
	char *name;
	struct prov_record rec;
	struct provider *prov; /* NULL for the root */
	int prov_root;	       /* the provider's own directory: lists with dir == NULL */
	uint64_t refs;	       /* the parent's, the kernel's lookups, calls in flight */
	struct node *children; /* by name */
	struct node **order;   /* children in listing order: readdir offsets index it */
	size_t norder;
	int listed;		 /* children hold a whole listing */
	int partial;		 /* children hold the first page only (page-through) */
	struct prov_page *first; /* that page, kept so the whole listing need not ask again */
	uint64_t gen;		 /* bumped when its entries change: its mtime's nanoseconds */
	struct node *all_prev, *all_next; /* every live node, attached or not: tree_free */
	size_t rank;	/* 1 + place in a first page a reader was given, while re-ordering */
	size_t dropped; /* entries of that first page gone from the whole listing */
	int64_t list_expires;
	int64_t seed_expires; /* a child found by a name look-up is trusted until then */
	int loading;
	int err_logged;
	struct neg *neg;
	size_t nneg;
	UT_hash_handle hh;
};

struct tree {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct node *root;
	struct node *all; /* every live node, so that nodes only the kernel held are freed too */
	uint64_t ino_key;
	struct tree_opts o;
	int64_t mount_time;
	struct tree_watch watch; /* all NULL: nobody keeps copies */
};

static const char *const tree_files[] = {"meta.json", "url", "branch", NULL};

/* What a failed provider call means to the reader (DESIGN §3): rejected credentials stay
 * EACCES, a missing entry ENOENT; every other failure, a time-out included, is EIO. */
static int prov_errno(int r)
{
	if (r >= 0 || r == -EACCES || r == -ENOENT || r == -ENOMEM)
		return r;
	return -EIO;
}

static int64_t tree_now(const struct tree *t)
{
	struct timespec ts;

	if (t->o.now)
		return t->o.now();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static struct node *node_new(struct tree *t, const char *name, struct provider *prov)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = strdup(name);
	if (!n->name) {
		free(n);
		return NULL;
	}
	n->prov = prov;
	n->refs = 1;
	n->gen = 1;
	n->all_next = t->all;
	if (t->all)
		t->all->all_prev = n;
	t->all = n;
	return n;
}

static void neg_clear(struct node *n)
{
	struct neg *e, *tmp;

	HASH_ITER(hh, n->neg, e, tmp)
	{
		HASH_DEL(n->neg, e);
		free(e->name);
		free(e);
	}
	n->nneg = 0;
}

static void page_drop(struct prov_page **pg)
{
	if (*pg)
		prov_page_free(*pg);
	free(*pg);
	*pg = NULL;
}

/* Free what n owns; its children table must be empty or cleared. */
static void node_free(struct node *n)
{
	neg_clear(n);
	free(n->order);
	page_drop(&n->first);
	prov_record_free(&n->rec);
	free(n->name);
	free(n);
}

/* Drop count references to n; the last one frees it and lets go of its children. */
static void node_unref_n(struct tree *t, struct node *n, uint64_t count)
{
	struct node *c, *tmp;

	if (!n)
		return;
	if (n->refs > count) {
		n->refs -= count;
		return;
	}
	HASH_ITER(hh, n->children, c, tmp)
	{
		HASH_DEL(n->children, c);
		node_unref_n(t, c, 1);
	}
	if (n->all_prev)
		n->all_prev->all_next = n->all_next;
	else
		t->all = n->all_next;
	if (n->all_next)
		n->all_next->all_prev = n->all_prev;
	node_free(n);
}

static void node_unref(struct tree *t, struct node *n)
{
	node_unref_n(t, n, 1);
}

/* Put repl (NULL: nothing) where c stands in dir's listing order. A child leaves order
 * whenever it leaves dir->children: order holds no reference of its own. Lock held. */
static void order_replace(struct node *dir, const struct node *c, struct node *repl)
{
	for (size_t i = 0; i < dir->norder; i++) {
		if (dir->order[i] != c)
			continue;
		if (repl) {
			dir->order[i] = repl;
		} else {
			memmove(&dir->order[i], &dir->order[i + 1],
				(dir->norder - i - 1) * sizeof(*dir->order));
			dir->norder--;
		}
		return;
	}
}

/* Every entry a reader can be given is a live child under its own name. Lock held. */
static void order_check(const struct node *dir)
{
	for (size_t i = 0; i < dir->norder; i++) {
		struct node *c;

		HASH_FIND_STR(dir->children, dir->order[i]->name, c);
		assert(c == dir->order[i]);
		(void)c;
	}
}

static uint64_t node_ino(const struct tree *t, const struct node *n)
{
	return n == t->root ? TREE_ROOT : (uint64_t)(uintptr_t)n ^ t->ino_key;
}

/* The node of inode ino and, in *file, which of its files (0: the node itself). */
static struct node *ino_node(const struct tree *t, uint64_t ino, unsigned *file)
{
	*file = 0;
	if (ino == TREE_ROOT)
		return t->root;
	*file = (unsigned)(ino & TREE_FILE_MASK);
	return (struct node *)(uintptr_t)((ino & ~(uint64_t)TREE_FILE_MASK) ^ t->ino_key);
}

static void watch_entry(const struct tree *t, const struct node *dir, const char *name, int gone)
{
	if (t->watch.entry)
		t->watch.entry(t->watch.ctx, node_ino(t, dir), name, gone);
}

static void watch_inode(const struct tree *t, uint64_t ino)
{
	if (t->watch.inode)
		t->watch.inode(t->watch.ctx, ino);
}

/* Held beyond its parent's reference: by the kernel (or a call in flight). */
static int node_held(const struct node *n)
{
	return n->refs > 1;
}

static int node_is_dir_container(const struct node *n)
{
	return n->rec.container || n->prov_root || !n->prov;
}

/* The contents of file fname of a record, or NULL when it has no such file. */
static const char *record_file(const struct prov_record *rec, const char *fname, size_t *len,
			       int *nl)
{
	const char *s = NULL;

	*nl = 0;
	if (!strcmp(fname, "meta.json"))
		s = rec->meta;
	else if (!strcmp(fname, "url"))
		s = rec->url, *nl = 1;
	else if (!strcmp(fname, "branch"))
		s = rec->branch, *nl = 1;
	if (!s)
		return NULL;
	*len = strlen(s) + *nl;
	return s;
}

static const char *node_file(const struct node *n, const char *fname, size_t *len, int *nl)
{
	return record_file(&n->rec, fname, len, nl);
}

/* Which of tree_files n serves, one bit each: a directory's entries besides its children. */
static unsigned node_file_set(const struct node *n)
{
	return (n->rec.meta ? 1u : 0) | (n->rec.url ? 2u : 0) | (n->rec.branch ? 4u : 0);
}

/* Replace n's record by rec (taken); a changed file set is a changed directory. */
static void node_set_record(struct node *n, struct prov_record *rec)
{
	unsigned before = node_file_set(n);

	prov_record_free(&n->rec);
	n->rec = *rec;
	memset(rec, 0, sizeof(*rec));
	if (node_file_set(n) != before)
		n->gen++;
}

/* 1 + the index of name in tree_files, or 0 when it names none of them. */
static unsigned file_index(const char *name)
{
	for (unsigned i = 0; tree_files[i]; i++)
		if (!strcmp(name, tree_files[i]))
			return i + 1;
	return 0;
}

static int64_t tree_time(const struct tree *t, int64_t a, int64_t b)
{
	return a ? a : b ? b : t->mount_time;
}

/* A listing past dir_ttl: the next reader makes it fresh. */
static int node_expired(const struct tree *t, const struct node *n)
{
	return node_is_dir_container(n) && n->prov && (n->listed || n->partial) &&
	       tree_now(t) >= n->list_expires;
}

/* The kernel keeps every directory it read and reads one again only when its mtime moved,
 * so a directory's mtime nanoseconds carry the generation of its entries. A listing past
 * dir_ttl already shows the generation its refresh will install: the kernel then asks,
 * and keeps the fresh listing. */
static void stat_dir(const struct tree *t, const struct node *n, struct tree_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->is_dir = 1;
	st->mtime = tree_time(t, n->rec.mtime, n->rec.ctime);
	st->mtime_ns = (long)((n->gen + (node_expired(t, n) ? 1 : 0)) % 1000000000);
	st->ctime = tree_time(t, n->rec.ctime, n->rec.mtime);
}

static void stat_file(const struct tree *t, const struct node *n, size_t len, struct tree_stat *st)
{
	stat_dir(t, n, st);
	st->is_dir = 0;
	st->mtime_ns = 0;
	st->size = len;
}

struct tree *tree_new(struct provider **provs, size_t n, const struct tree_opts *opts)
{
	struct tree *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->o = *opts;
	t->mount_time = time(NULL);
	if (getrandom(&t->ino_key, sizeof(t->ino_key), GRND_NONBLOCK) != sizeof(t->ino_key))
		t->ino_key = 0; /* inode numbers still work; they merely show addresses */
	t->ino_key = (t->ino_key & (TREE_INO_HIGH - 1) & ~(uint64_t)TREE_FILE_MASK) | TREE_INO_HIGH;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->root = node_new(t, "/", NULL);
	if (!t->root)
		goto fail;
	t->root->listed = 1;
	t->root->list_expires = INT64_MAX;
	t->root->order = calloc(n ? n : 1, sizeof(*t->root->order));
	if (!t->root->order)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct node *c = node_new(t, provs[i]->name, provs[i]);

		if (!c)
			goto fail;
		c->prov_root = 1;
		c->rec.container = 1;
		HASH_ADD_KEYPTR(hh, t->root->children, c->name, strlen(c->name), c);
		t->root->order[t->root->norder++] = c;
	}
	return t;
fail:
	tree_free(t);
	return NULL;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	/* Nodes the kernel still held at unmount may be nobody's child: free them all from the
	 * list, after every table that links them (reached through its members) is gone. */
	for (struct node *n = t->all; n; n = n->all_next)
		HASH_CLEAR(hh, n->children);
	while (t->all) {
		struct node *n = t->all;

		t->all = n->all_next;
		node_free(n);
	}
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

/* Wait until nobody is fetching n, then claim it. Called and returns with the lock held. */
static void node_claim(struct tree *t, struct node *n)
{
	while (n->loading)
		pthread_cond_wait(&t->cond, &t->lock);
	n->loading = 1;
}

static void node_release(struct tree *t, struct node *n)
{
	n->loading = 0;
	pthread_cond_broadcast(&t->cond);
}

/* Fill in what a listing left out of n's record (Codeup repositories), once. */
static int node_complete(struct tree *t, struct node *n)
{
	struct prov_record copy = {0};
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (!n->rec.incomplete || !n->prov->ops->complete)
		goto out;
	node_claim(t, n);
	if (!n->rec.incomplete)
		goto release;
	r = prov_record_copy(&copy, &n->rec);
	if (r < 0)
		goto release;
	pthread_mutex_unlock(&t->lock);
	r = prov_errno(n->prov->ops->complete(n->prov, &copy));
	pthread_mutex_lock(&t->lock);
	if (r == 0)
		node_set_record(n, &copy);
release:
	node_release(t, n);
out:
	pthread_mutex_unlock(&t->lock);
	prov_record_free(&copy);
	return r;
}

/* ---- fetching a whole listing ------------------------------------------------------ */

struct pager {
	struct provider *prov;
	const struct prov_record *dir;
	pthread_mutex_t lock;
	long next, npages;
	struct prov_page *pages; /* pages[k - 1] is page k */
	int err;
};

static void *pager_run(void *arg)
{
	struct pager *pg = arg;

	for (;;) {
		long k;
		int r;

		pthread_mutex_lock(&pg->lock);
		k = pg->err ? pg->npages + 1 : pg->next++;
		pthread_mutex_unlock(&pg->lock);
		if (k > pg->npages)
			return NULL;
		r = pg->prov->ops->list_page(pg->prov, pg->dir, k, &pg->pages[k - 1]);
		if (r < 0) {
			pthread_mutex_lock(&pg->lock);
			if (!pg->err)
				pg->err = r;
			pthread_mutex_unlock(&pg->lock);
		}
	}
}

static int tree_parallel(const struct tree *t)
{
	return t->o.parallel < 1 ? 1 : t->o.parallel > 64 ? 64 : t->o.parallel;
}

/* Pages first..npages with up to `parallel` requests in flight. */
static int fetch_pages(struct tree *t, struct pager *pg, long first)
{
	pthread_t th[64];
	long want = pg->npages - first + 1;
	int nth = tree_parallel(t);
	int started = 0;

	if (want < nth)
		nth = (int)want;
	pg->next = first;
	for (int i = 0; i < nth; i++)
		if (pthread_create(&th[i], NULL, pager_run, pg) == 0)
			started++;
	if (!started)
		pager_run(pg); /* no thread to be had: do the work here */
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return pg->err;
}

/* Pages from 2 on for a listing that gives no total: fetched ahead in a window that opens
 * at 2 pages and doubles up to `parallel`, until a page says it is the last or comes back
 * empty; what the window fetched past it is dropped. */
static int fetch_rest_window(struct tree *t, struct pager *pg, struct prov_page **pages,
			     long *npages)
{
	for (long first = 2, width = 2; first <= TREE_MAX_PAGES; first += width, width *= 2) {
		struct prov_page *grown;
		long last;
		int r;

		if (width > tree_parallel(t))
			width = tree_parallel(t);
		last = first + width - 1 < TREE_MAX_PAGES ? first + width - 1 : TREE_MAX_PAGES;
		grown = realloc(*pages, last * sizeof(**pages));
		if (!grown)
			return -ENOMEM;
		*pages = grown;
		memset(&grown[first - 1], 0, (last - first + 1) * sizeof(grown[0]));
		*npages = last;
		pg->pages = grown;
		pg->npages = last;
		r = fetch_pages(t, pg, first);
		if (r < 0)
			return r;
		for (long k = first; k <= last; k++) {
			if (!grown[k - 1].last && grown[k - 1].n > 0)
				continue;
			for (long j = k + 1; j <= last; j++)
				prov_page_free(&grown[j - 1]);
			*npages = k;
			return 0;
		}
	}
	log_msg(LOG_WARNING, "%s: stopped paging after %d pages", pg->prov->name, TREE_MAX_PAGES);
	return 0;
}

struct idset {
	const char *id;
	UT_hash_handle hh;
};

/* Move the records of every page into all, first occurrence of an id wins. */
static int merge_pages(struct prov_page *pages, long npages, struct prov_page *all)
{
	struct idset *seen = NULL, *e, *tmp;
	int r = 0;

	for (long k = 0; k < npages && r == 0; k++) {
		for (size_t i = 0; i < pages[k].n; i++) {
			struct prov_record *rec = &pages[k].recs[i];

			if (!rec->id)
				continue;
			HASH_FIND_STR(seen, rec->id, e);
			if (e)
				continue;
			r = prov_page_add(all, rec);
			if (r < 0)
				break;
			memset(rec, 0, sizeof(*rec)); /* all owns it now */
			e = malloc(sizeof(*e));
			if (!e) {
				r = -ENOMEM;
				break;
			}
			e->id = all->recs[all->n - 1].id;
			HASH_ADD_KEYPTR(hh, seen, e->id, strlen(e->id), e);
		}
	}
	HASH_ITER(hh, seen, e, tmp)
	{
		HASH_DEL(seen, e);
		free(e);
	}
	return r;
}

/* A listing is exact when every page saw the same total and the ids add up to it. */
static int listing_consistent(const struct prov_page *pages, long npages, size_t unique)
{
	if (pages[0].total < 0)
		return 1;
	for (long k = 1; k < npages; k++)
		if (pages[k].total != pages[0].total)
			return 0;
	return (long)unique == pages[0].total;
}

static long page_count(const struct prov_page *first)
{
	long size = first->page_size > 0 ? first->page_size : (long)first->n;

	if (first->last || first->total < 0 || size <= 0)
		return 1;
	if ((first->total + size - 1) / size > TREE_MAX_PAGES)
		return TREE_MAX_PAGES;
	return (first->total + size - 1) / size;
}

/* One attempt at the whole listing of dir (NULL: the provider's root) into all. */
static int fetch_once(struct tree *t, struct provider *p, const struct prov_record *dir,
		      struct prov_page **first, struct prov_page *all, int *consistent)
{
	struct pager pg = {.prov = p, .dir = dir};
	struct prov_page *pages = calloc(1, sizeof(*pages));
	long npages = 1;
	int r = 0;

	if (!pages)
		return -ENOMEM;
	pthread_mutex_init(&pg.lock, NULL);
	if (*first) { /* page 1 came with the first readdir: not asked for twice */
		pages[0] = **first;
		free(*first);
		*first = NULL;
	} else {
		r = p->ops->list_page(p, dir, 1, &pages[0]);
	}
	if (r < 0)
		goto out;
	if (!pages[0].last && pages[0].n > 0 && pages[0].total < 0) {
		r = fetch_rest_window(t, &pg, &pages, &npages);
	} else if (page_count(&pages[0]) > 1) {
		struct prov_page *grown;

		npages = page_count(&pages[0]);
		grown = realloc(pages, npages * sizeof(*pages));
		if (!grown) {
			r = -ENOMEM;
			goto out;
		}
		pages = grown;
		memset(&pages[1], 0, (npages - 1) * sizeof(*pages));
		pg.pages = pages;
		pg.npages = npages;
		r = fetch_pages(t, &pg, 2);
	}
	if (r < 0)
		goto out;
	r = merge_pages(pages, npages, all);
	*consistent = listing_consistent(pages, npages, all->n);
out:
	for (long k = 0; k < npages; k++)
		prov_page_free(&pages[k]);
	free(pages);
	pthread_mutex_destroy(&pg.lock);
	return r;
}

/* The whole listing, fetched again while entries moved under the pager (bounded). */
static int fetch_listing(struct tree *t, struct provider *p, const struct prov_record *dir,
			 struct prov_page **first, struct prov_page *all)
{
	for (int attempt = 1;; attempt++) {
		int consistent = 1;
		int r = fetch_once(t, p, dir, first, all, &consistent);

		if (r < 0 || consistent)
			return r;
		if (attempt == TREE_RELIST) {
			log_msg(LOG_WARNING,
				"%s: '%s' kept changing while it was paged; serving it "
				"as last seen",
				p->name, dir ? dir->id : p->name);
			return 0;
		}
		prov_page_free(all);
	}
}

/* ---- installing a listing ------------------------------------------------------------ */

/* File names that n itself serves: its children may not take them. */
static void node_reserved(const struct node *n, const char *out[4])
{
	size_t k = 0;

	if (n->rec.meta)
		out[k++] = "meta.json";
	if (n->rec.url)
		out[k++] = "url";
	if (n->rec.branch)
		out[k++] = "branch";
	out[k] = NULL;
}

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
		const char *now = record_file(rec, tree_files[i], &len, &nl);

		if (!was != !now) {
			watch_entry(t, n, tree_files[i], 1); /* a file came or went */
			changed = 1;
		} else if (was) {
			kept |= 1u << i;
			changed |= strcmp(was, now) != 0;
		}
	}
	if (!changed)
		return;
	watch_inode(t, ino);
	for (unsigned i = 0; tree_files[i]; i++)
		if (kept & (1u << i))
			watch_inode(t, ino | (i + 1));
}

/* A reused child keeps what complete() fetched when the fresh listing lacks it again. */
static void node_take_record(struct tree *t, struct node *n, struct prov_record *rec)
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
			watch_entry(t, dir, c->name, 1); /* renamed: the old name is gone */
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
			order_replace(dir, c, NULL);
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
			watch_entry(t, dir, e->name, 1);
	}
}

/* Replace dir's children by the records of all. Called with the lock held. */
static int install_listing(struct tree *t, struct node *dir, struct prov_page *all, int whole)
{
	struct names_entry *ne = calloc(all->n ? all->n : 1, sizeof(*ne));
	struct node **order = calloc(all->n ? all->n : 1, sizeof(*order));
	struct byid *old = NULL, *b, *tmp;
	const char *reserved[4];
	size_t norder = 0;
	int r = -ENOMEM;

	if (!ne || !order)
		goto out;
	for (size_t i = 0; i < all->n; i++) {
		ne[i].raw = all->recs[i].name ? all->recs[i].name : "";
		ne[i].raw_len = all->recs[i].name ? all->recs[i].name_len : 0;
		ne[i].id = all->recs[i].id;
		ne[i].ctime = all->recs[i].ctime;
	}
	node_reserved(dir, reserved);
	r = names_assign(ne, all->n, reserved);
	if (r < 0)
		goto out;
	keep_first_page_order(dir, whole, 1);
	detach_children(t, dir, &old);
	for (size_t i = 0; i < all->n && r == 0; i++)
		r = install_child(t, dir, &old, &all->recs[i], ne[i].name, order, &norder);
	if (r == 0 && whole && dir->partial)
		dir->dropped = first_page_prefix(order, norder, dir->norder);
	keep_first_page_order(dir, whole, 0);
	free(dir->order);
	dir->order = order;
	dir->norder = norder;
	order = NULL;
	dir->listed = whole;
	dir->partial = !whole;
	dir->gen++;
	dir->list_expires = tree_now(t) + t->o.dir_ttl;
	/* A first page answers look-ups of its names as a name look-up would. */
	for (size_t i = 0; !whole && i < norder; i++)
		dir->order[i]->seed_expires = dir->list_expires;
	if (whole)
		page_drop(&dir->first);
	watch_found(t, dir);
	neg_clear(dir);
	order_check(dir);
out:
	HASH_ITER(hh, old, b, tmp)
	{
		HASH_DEL(old, b);
		if (r == 0 && whole && node_held(b->node))
			watch_entry(t, dir, b->node->name, 1); /* gone from the cloud */
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

/* Make dir's listing fresh. A failed refresh keeps serving the old listing. */
static int tree_load(struct tree *t, struct node *dir)
{
	struct prov_page all = {0}, *first = NULL;
	struct prov_record copy = {0};
	int r = 0;

	pthread_mutex_lock(&t->lock);
	node_claim(t, dir);
	if (dir->listed && tree_now(t) < dir->list_expires)
		goto release;
	r = node_fetch_arg(dir, &copy);
	if (r < 0)
		goto release;
	if (dir->partial && tree_now(t) < dir->list_expires) {
		first = dir->first;
		dir->first = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	r = prov_errno(fetch_listing(t, dir->prov, dir->prov_root ? NULL : &copy, &first, &all));
	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		r = install_listing(t, dir, &all, 1);
		dir->err_logged = 0;
	} else if (dir->listed) {
		if (!dir->err_logged)
			log_msg(LOG_WARNING,
				"%s: refreshing '%s' failed (%s); serving the last "
				"listing",
				dir->prov->name, dir->name, strerror(-r));
		dir->err_logged = 1;
		dir->list_expires = tree_now(t) + t->o.dir_ttl;
		r = 0;
	}
release:
	node_release(t, dir);
	pthread_mutex_unlock(&t->lock);
	prov_page_free(&all);
	page_drop(&first);
	prov_record_free(&copy);
	return r;
}

static int page_copy(struct prov_page **dst, const struct prov_page *src)
{
	struct prov_page *pg = calloc(1, sizeof(*pg));
	int r = pg ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < src->n; i++) {
		struct prov_record rec;

		r = prov_record_copy(&rec, &src->recs[i]);
		if (r == 0 && (r = prov_page_add(pg, &rec)) < 0)
			prov_record_free(&rec);
	}
	if (pg) {
		pg->total = src->total;
		pg->page_size = src->page_size;
		pg->last = src->last;
	}
	*dst = pg;
	if (r < 0)
		page_drop(dst);
	return r;
}

/* Page-through: a never-listed directory read from its start gets its first page only;
 * the rest is fetched when the reader goes past it. */
static int tree_load_first(struct tree *t, struct node *dir)
{
	struct prov_page pg = {0}, uniq = {0}, *keep = NULL;
	struct prov_record copy = {0};
	int r = 0;

	pthread_mutex_lock(&t->lock);
	node_claim(t, dir);
	if ((dir->listed || dir->partial) && tree_now(t) < dir->list_expires)
		goto release;
	r = node_fetch_arg(dir, &copy);
	pthread_mutex_unlock(&t->lock);
	if (r == 0)
		r = prov_errno(
		    dir->prov->ops->list_page(dir->prov, dir->prov_root ? NULL : &copy, 1, &pg));
	if (r == 0 && !pg.last)
		r = page_copy(&keep, &pg);
	/* A first page is a listing too: one entry per id, as merge_pages makes them. */
	if (r == 0)
		r = merge_pages(&pg, 1, &uniq);
	pthread_mutex_lock(&t->lock);
	if (r == 0)
		r = install_listing(t, dir, &uniq, pg.last);
	if (r == 0 && !dir->listed) {
		page_drop(&dir->first);
		dir->first = keep;
		keep = NULL;
	}
release:
	node_release(t, dir);
	pthread_mutex_unlock(&t->lock);
	prov_page_free(&pg);
	prov_page_free(&uniq);
	page_drop(&keep);
	prov_record_free(&copy);
	return r;
}

/* ---- looking up one name ------------------------------------------------------------- */

static int neg_fresh(struct tree *t, struct node *dir, const char *name)
{
	struct neg *e;

	HASH_FIND_STR(dir->neg, name, e);
	return e && tree_now(t) < e->expires;
}

/* Remember that name is missing from dir, until `until` at the latest. */
static void neg_add(struct tree *t, struct node *dir, const char *name, int64_t until)
{
	struct neg *e;

	if (dir->nneg >= TREE_MAX_NEG)
		neg_clear(dir);
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
	e->expires = tree_now(t) + t->o.neg_ttl;
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
	struct node *c;

	struct node *old;

	HASH_FIND_STR(dir->children, name, old);
	c = rec ? node_new(t, name, dir->prov) : NULL;
	if (old) {
		HASH_DEL(dir->children, old);
		order_replace(dir, old, c); /* a first page keeps the name in its place */
		node_unref(t, old);
	}
	if (!rec) {
		neg_add(t, dir, name, INT64_MAX);
		return 0;
	}
	if (!c)
		return -ENOMEM;
	node_take_record(t, c, rec);
	c->seed_expires = tree_now(t) + t->o.attr_ttl;
	HASH_ADD_KEYPTR(hh, dir->children, c->name, strlen(c->name), c);
	order_check(dir);
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
	const char *reserved[4];
	int r;

	pthread_mutex_lock(&t->lock);
	r = prov_record_copy(&copy, &dir->rec);
	node_reserved(dir, reserved);
	pthread_mutex_unlock(&t->lock);
	if (r < 0)
		return r;
	r = prov_errno(dir->prov->ops->lookup(dir->prov, &copy, term, &pg));
	if (r < 0)
		goto out;
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
	int64_t now = tree_now(t);
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
		return neg_fresh(t, dir, name) ? -ENOENT : 0;
	}
	c->refs++;
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
	c->refs++;
	*out = c;
	return 0;
}

static int child_get(struct tree *t, struct node *dir, const char *name, struct node **out)
{
	char term[NAMES_MAX + 1];
	int r;

	pthread_mutex_lock(&t->lock);
	while (dir->loading)
		pthread_cond_wait(&t->cond, &t->lock);
	r = child_cached(t, dir, name, out);
	if (r != 0) {
		pthread_mutex_unlock(&t->lock);
		return r < 0 ? r : 0;
	}
	term[0] = '\0';
	if (!dir->listed && !dir->prov_root && dir->prov->ops->lookup)
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

/* ---- inodes: what the kernel asks ------------------------------------------------ */

/* The node of ino, referenced while a call that may unlock is in flight: node_put it. */
static struct node *node_get(struct tree *t, uint64_t ino, unsigned *file)
{
	struct node *n = ino_node(t, ino, file);

	pthread_mutex_lock(&t->lock);
	n->refs++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static void node_put(struct tree *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	node_unref(t, n);
	pthread_mutex_unlock(&t->lock);
}

/* Does n serve file fname? Completes n's record first when it needs to. */
static int node_has_file(struct tree *t, struct node *n, const char *fname)
{
	size_t len;
	int nl, r, has;

	if (!n->prov || n->prov_root)
		return 0;
	r = node_complete(t, n);
	if (r < 0)
		return r;
	pthread_mutex_lock(&t->lock);
	has = node_file(n, fname, &len, &nl) != NULL;
	pthread_mutex_unlock(&t->lock);
	return has;
}

/* Attributes of file `file` of n (0: n itself), inode number included. -ENOENT when a
 * refresh took the file away. Lock held. */
static int node_stat(const struct tree *t, const struct node *n, unsigned file,
		     struct tree_stat *st)
{
	size_t len;
	int nl;

	if (!file)
		stat_dir(t, n, st);
	else if (node_file(n, tree_files[file - 1], &len, &nl))
		stat_file(t, n, len, st);
	else
		return -ENOENT;
	st->ino = node_ino(t, n) | file;
	return 0;
}

int tree_lookup(struct tree *t, uint64_t dir, const char *name, struct tree_stat *st)
{
	unsigned file, idx = file_index(name);
	struct node *n = node_get(t, dir, &file), *c;
	int r = file ? -ENOTDIR : strlen(name) > NAMES_MAX ? -ENAMETOOLONG : 0;

	if (r == 0 && idx)
		r = node_has_file(t, n, name);
	if (r > 0) {
		pthread_mutex_lock(&t->lock);
		r = node_stat(t, n, idx, st);
		if (r == 0)
			n->refs++; /* the kernel's lookup of the file holds its node */
		pthread_mutex_unlock(&t->lock);
		goto out;
	}
	if (r == 0 && !node_is_dir_container(n))
		r = -ENOENT;
	if (r == 0)
		r = child_get(t, n, name, &c);
	if (r == 0) {
		pthread_mutex_lock(&t->lock);
		node_stat(t, c, 0, st); /* child_get's reference is now the kernel's lookup */
		pthread_mutex_unlock(&t->lock);
	}
out:
	node_put(t, n);
	return r;
}

void tree_forget(struct tree *t, uint64_t ino, uint64_t nlookup)
{
	unsigned file;
	struct node *n;

	if (ino == TREE_ROOT)
		return;
	n = ino_node(t, ino, &file);
	pthread_mutex_lock(&t->lock);
	node_unref_n(t, n, nlookup);
	pthread_mutex_unlock(&t->lock);
}

void tree_hold(struct tree *t, uint64_t ino)
{
	unsigned file;

	node_get(t, ino, &file);
}

int tree_getattr(struct tree *t, uint64_t ino, struct tree_stat *st)
{
	unsigned file;
	struct node *n = ino_node(t, ino, &file);
	int r;

	pthread_mutex_lock(&t->lock);
	r = node_stat(t, n, file, st);
	pthread_mutex_unlock(&t->lock);
	return r;
}

int tree_read(struct tree *t, uint64_t ino, char *buf, size_t size, off_t off)
{
	unsigned file;
	struct node *n = ino_node(t, ino, &file);
	const char *s;
	size_t len, done = 0;
	int nl, r;

	if (!file)
		return -EISDIR;
	pthread_mutex_lock(&t->lock);
	s = node_file(n, tree_files[file - 1], &len, &nl);
	r = s ? 0 : -ENOENT; /* a refresh took the file away */
	if (s && off >= 0 && (size_t)off < len) {
		done = len - off < size ? len - off : size;
		if (nl && (size_t)off + done == len) {
			memcpy(buf, s + off, done - 1);
			buf[done - 1] = '\n';
		} else {
			memcpy(buf, s + off, done);
		}
		r = (int)done;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* Entries for a reader at offset off: a fresh listing, a first page for a reader at the
 * start of a never-listed directory, or the whole listing; stale when a refresh fails. */
static int node_list(struct tree *t, struct node *n, off_t off)
{
	int fresh, never;

	if (!node_is_dir_container(n))
		return node_complete(t, n);
	pthread_mutex_lock(&t->lock);
	fresh = (n->listed || n->partial) && tree_now(t) < n->list_expires;
	never = !n->listed;
	pthread_mutex_unlock(&t->lock);
	if (fresh)
		return 0;
	return never && off == 0 && n->prov ? tree_load_first(t, n) : tree_load(t, n);
}

struct emitter {
	tree_fill_fn fill;
	void *ctx;
	int plus;
};

/* One entry to the reader. With plus, an entry it takes is a lookup of held (NULL for "."
 * and ".."). Non-zero when the reader's buffer is full. Lock held. */
static int emit_one(const struct emitter *em, struct node *held, const char *name,
		    const struct tree_stat *st, off_t next)
{
	if (em->fill(em->ctx, name, st, next))
		return 1;
	if (em->plus && held)
		held->refs++;
	return 0;
}

/* Emit entries from offset off: ".", "..", the node's files, then its children. Returns 1
 * when the caller's buffer filled, 0 when every entry was given; *end is the offset
 * reached. Lock held. */
static int emit_entries(struct tree *t, struct node *n, off_t off, const struct emitter *em,
			off_t *end)
{
	struct tree_stat st;
	off_t idx = 0;
	int full = 1;

	node_stat(t, n, 0, &st);
	if (idx++ >= off && emit_one(em, NULL, ".", &st, idx))
		goto out;
	if (idx++ >= off && emit_one(em, NULL, "..", &st, idx))
		goto out;
	for (unsigned i = 1; n->prov && !n->prov_root && tree_files[i - 1]; i++) {
		if (node_stat(t, n, i, &st) < 0)
			continue;
		if (idx++ >= off && emit_one(em, n, tree_files[i - 1], &st, idx))
			goto out;
	}
	for (size_t i = 0; node_is_dir_container(n) && i < n->norder; i++) {
		node_stat(t, n->order[i], 0, &st);
		if (idx++ >= off && emit_one(em, n->order[i], n->order[i]->name, &st, idx))
			goto out;
	}
	full = 0;
out:
	*end = idx > off ? idx : off;
	return full;
}

int tree_readdir(struct tree *t, uint64_t ino, off_t off, int plus, tree_fill_fn fill, void *ctx)
{
	const struct emitter em = {.fill = fill, .ctx = ctx, .plus = plus};
	unsigned file;
	struct node *n = node_get(t, ino, &file);
	off_t end;
	int full, more, r = file ? -ENOTDIR : 0;

	if (r == 0)
		r = node_list(t, n, off);
	if (r == 0 && node_is_dir_container(n) && n->prov)
		r = node_complete(t, n);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&t->lock);
	full = emit_entries(t, n, off, &em, &end);
	/* A short answer is no end of directory: the reader comes back for more, and only a
	 * reader that does so (nothing given this time) pays for the rest of the listing. */
	more = !full && n->partial && !n->listed && end == off;
	pthread_mutex_unlock(&t->lock);
	if (!more)
		goto out;
	r = tree_load(t, n);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&t->lock);
	/* First-page entries gone meanwhile hold no place any more: continue where this
	 * reader stands in the re-ordered listing. */
	end -= (off_t)n->dropped < end ? (off_t)n->dropped : 0;
	n->dropped = 0;
	emit_entries(t, n, end, &em, &end);
	pthread_mutex_unlock(&t->lock);
out:
	node_put(t, n);
	return r;
}

/* ---- extended attributes ------------------------------------------------------------- */

#define XATTR_PREFIX "user.codesrcfs."

/* Value of attribute key (without prefix) of n, or NULL. Lock held. */
static const char *node_xattr(const struct node *n, const char *key)
{
	if (!n->prov || n->prov_root)
		return NULL;
	if (!strcmp(key, "provider"))
		return n->prov->name;
	if (!strcmp(key, "id"))
		return n->rec.id;
	if (!strcmp(key, "web_url"))
		return n->rec.web_url;
	return NULL;
}

/* Copy len bytes of s to buf under the getxattr(2) size rules. */
static int xattr_copy(const char *s, size_t len, char *buf, size_t size)
{
	if (len > INT_MAX)
		return -E2BIG;
	if (size == 0)
		return (int)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, s, len);
	return (int)len;
}

int tree_getxattr(struct tree *t, uint64_t ino, const char *name, char *buf, size_t size)
{
	unsigned file;
	struct node *n = ino_node(t, ino, &file);
	const char *v = NULL;
	int r;

	/* Only user.* is served. Saying so (rather than "no such attribute") lets ls and cp
	 * stop asking for security.selinux and the ACLs of every file on this mount. */
	if (strncmp(name, "user.", 5))
		return -EOPNOTSUPP;
	pthread_mutex_lock(&t->lock);
	if (!file && !strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		v = node_xattr(n, name + strlen(XATTR_PREFIX));
	r = v ? xattr_copy(v, strlen(v), buf, size) : -ENODATA;
	pthread_mutex_unlock(&t->lock);
	return r;
}

int tree_listxattr(struct tree *t, uint64_t ino, char *buf, size_t size)
{
	static const char *const keys[] = {"provider", "id", "web_url", NULL};
	unsigned file;
	struct node *n = ino_node(t, ino, &file);
	char list[256];
	size_t len = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; !file && keys[i]; i++)
		if (node_xattr(n, keys[i]))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
						XATTR_PREFIX, keys[i]) +
			       1;
	pthread_mutex_unlock(&t->lock);
	return xattr_copy(list, len, buf, size);
}

static void node_expire(struct node *n)
{
	struct node *c, *tmp;

	if (n->prov) /* the root's children are fixed */
		n->list_expires = 0;
	n->seed_expires = 0;
	neg_clear(n);
	HASH_ITER(hh, n->children, c, tmp)
	node_expire(c);
}

/* SIGHUP: whatever the kernel holds of n is to be checked again. Lock held. A listing's
 * inode goes (its kept entries with it) and every entry held expires: the next path walk
 * looks it up again, and its fresh attributes make the kernel drop pages that changed. */
static void watch_flush(const struct tree *t, const struct node *n)
{
	struct node *c, *tmp;
	struct neg *e, *etmp;

	if (node_is_dir_container(n)) {
		if (n->prov)
			watch_inode(t, node_ino(t, n));
		HASH_ITER(hh, n->children, c, tmp)
		if (node_held(c))
			watch_entry(t, n, c->name, 0);
		HASH_ITER(hh, n->neg, e, etmp)
		watch_entry(t, n, e->name, 1);
	} else if (node_held(n)) {
		for (unsigned i = 0; tree_files[i]; i++)
			watch_entry(t, n, tree_files[i], 0);
	}
}

void tree_watch(struct tree *t, const struct tree_watch *w)
{
	pthread_mutex_lock(&t->lock);
	t->watch = w ? *w : (struct tree_watch){0};
	pthread_mutex_unlock(&t->lock);
}

void tree_flush(struct tree *t)
{
	pthread_mutex_lock(&t->lock);
	for (const struct node *n = t->all; n; n = n->all_next)
		watch_flush(t, n);
	node_expire(t->root);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < t->root->norder; i++) {
		struct provider *p = t->root->order[i]->prov;

		if (p->ops->flush)
			p->ops->flush(p);
	}
}
