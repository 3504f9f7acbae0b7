/* tree_node: a node's lifetime, references and inode numbers, its attributes and files.
 *
 * Inode numbers: the root is TREE_ROOT; any other is a node's address mixed with a key
 * drawn at start (so no heap address reaches user space), with the low two bits naming
 * one of the node's files (1 + index in tree_files) or the node itself (0). Every lookup
 * the kernel holds is one reference on the node. Lock rules: tree_i.h. */
#define _GNU_SOURCE /* asprintf */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "tree_i.h"

const char *const tree_files[] = {"meta.json", "url", "branch", NULL};

struct node *node_new(struct tree *t, const char *name, struct provider *prov)
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
	n->magic = NODE_MAGIC;
	n->refs = 1;
	n->gen = 1;
	n->all_next = t->all;
	if (t->all)
		t->all->all_prev = n;
	t->all = n;
	return n;
}

struct node *node_new_child(struct tree *t, const struct node *dir, const char *name)
{
	struct node *c = node_new(t, name, dir->prov);

	if (c)
		c->depth = dir->depth + 1;
	return c;
}

/* Has the log named dir already? Remembered by provider and id, not by node: a look-up
 * by name makes a new node for the same directory. The memory is bounded; once full, it
 * starts again. Lock held. */
static int depth_said(struct tree *t, const struct node *dir)
{
	struct said *e, *tmp;
	char *key;

	if (asprintf(&key, "%s/%s", dir->prov->name, dir->rec.id ? dir->rec.id : dir->name) < 0)
		return 0;
	HASH_FIND_STR(t->depth_said, key, e);
	if (e) {
		free(key);
		return 1;
	}
	if (t->ndepth_said >= TREE_MAX_SAID) {
		HASH_ITER(hh, t->depth_said, e, tmp) {
			HASH_DEL(t->depth_said, e);
			free(e->key);
			free(e);
		}
		t->ndepth_said = 0;
	}
	e = malloc(sizeof(*e));
	if (!e) {
		free(key);
		return 0;
	}
	e->key = key;
	HASH_ADD_KEYPTR(hh, t->depth_said, e->key, strlen(e->key), e);
	t->ndepth_said++;
	return 0;
}

/* A server may nest groups without end (each a new id, so no cycle shows): the tree stops
 * at a depth no real cloud reaches, and says so once a directory, not once a read. */
void node_depth_trim(struct tree *t, const struct node *dir, struct prov_page *pg,
		     struct recblock **of)
{
	size_t kept = 0, cut;

	if (dir->depth < TREE_MAX_DEPTH)
		return;
	for (size_t i = 0; i < pg->n; i++) {
		if (!pg->recs[i].container) {
			if (of)
				of[kept] = of[i];
			pg->recs[kept++] = pg->recs[i];
		} else if (!of || !of[i]) {
			prov_record_free(&pg->recs[i]); /* a block's strings go with the block */
		}
	}
	cut = pg->n - kept;
	pg->n = kept;
	if (!cut || depth_said(t, dir))
		return;
	log_msg(LOG_WARNING,
		"%s: '%s' (id %s) is %u levels deep, the most docs/design.md §4 allows: its "
		"sub-directories are left out (%zu here)",
		dir->prov->name, dir->rec.path ? dir->rec.path : dir->name,
		dir->rec.id ? dir->rec.id : "-", dir->depth, cut);
}

void node_neg_clear(struct node *n)
{
	struct neg *e, *tmp;

	HASH_ITER(hh, n->neg, e, tmp) {
		HASH_DEL(n->neg, e);
		free(e->name);
		free(e);
	}
	n->nneg = 0;
}

/* Let go of n's record: its strings, or its share of their block. */
static void node_rec_release(struct node *n)
{
	if (n->block) {
		recblock_unref(n->block);
		n->block = NULL;
		memset(&n->rec, 0, sizeof(n->rec));
	} else {
		prov_record_free(&n->rec);
	}
}

void node_free(struct node *n)
{
	assert(n->magic == NODE_MAGIC); /* not freed twice */
	n->magic = NODE_FREED;
	node_neg_clear(n);
	while (n->listings) {
		struct listing *l = n->listings;

		n->listings = l->next;
		listing_free(l);
	}
	free(n->index);
	pager_page_drop(&n->first);
	node_rec_release(n);
	free(n->link);
	free(n->name);
	free(n);
}

void node_unref_n(struct tree *t, struct node *n, uint64_t count)
{
	struct node *c, *tmp;

	if (!n)
		return;
	assert(n->magic == NODE_MAGIC);
	assert(n->refs >= count); /* given back no more than was held */
	if (n->refs > count) {
		n->refs -= count;
		return;
	}
	assert(n->in_listings == 0 && n->lookups == 0); /* those hold references */
	listing_drop_all(t, n);
	HASH_ITER(hh, n->children, c, tmp) {
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

void node_unref(struct tree *t, struct node *n)
{
	node_unref_n(t, n, 1);
}

void node_ref(struct node *n)
{
	assert(n->magic == NODE_MAGIC);
	n->refs++;
}

void node_ref_kernel(struct node *n)
{
	node_ref(n);
	n->lookups++;
}

void node_orphan(struct tree *t, struct node *n)
{
	/* A node that lives on (the kernel or an older listing holds it) keeps its record,
	 * but not the block of a listing that is going. */
	if (n->refs > 1)
		node_rec_own(n);
	node_unref(t, n);
}

uint64_t node_ino(const struct tree *t, const struct node *n)
{
	return n == t->root ? TREE_ROOT : (uint64_t)(uintptr_t)n ^ t->ino_key;
}

struct node *node_of_ino(const struct tree *t, uint64_t ino, unsigned *file)
{
	struct node *n;

	*file = 0;
	if (ino == TREE_ROOT)
		return t->root;
	*file = (unsigned)(ino & TREE_FILE_MASK);
	n = (struct node *)(uintptr_t)((ino & ~(uint64_t)TREE_FILE_MASK) ^ t->ino_key);
	assert(n->magic == NODE_MAGIC); /* an inode the kernel still holds */
	return n;
}

struct node *node_get(struct tree *t, uint64_t ino, unsigned *file)
{
	struct node *n = node_of_ino(t, ino, file);

	pthread_mutex_lock(&t->lock);
	node_ref(n);
	pthread_mutex_unlock(&t->lock);
	return n;
}

void node_put(struct tree *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	node_unref(t, n);
	pthread_mutex_unlock(&t->lock);
}

void tree_watch_entry(const struct tree *t, const struct node *dir, const char *name, int gone)
{
	if (t->watch.entry)
		t->watch.entry(t->watch.ctx, node_ino(t, dir), name, gone);
}

void tree_watch_inode(const struct tree *t, uint64_t ino)
{
	if (t->watch.inode)
		t->watch.inode(t->watch.ctx, ino);
}

int node_held(const struct node *n)
{
	return n->refs - n->in_listings > 1;
}

int node_is_dir_container(const struct node *n)
{
	return n->rec.container || n->prov_root || !n->prov;
}

const char *node_record_file(const struct prov_record *rec, const char *fname, size_t *len, int *nl)
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

const char *node_file(const struct node *n, const char *fname, size_t *len, int *nl)
{
	return node_record_file(&n->rec, fname, len, nl);
}

/* Every directory that lists children serves its index; one that serves files of its own
 * (a Codeup group) may serve any of them, whichever its record holds now (docs/design.md
 * §1), so a name never has to move when a file comes. */
void node_reserved(const struct node *n, const char *out[NODE_RESERVED_MAX])
{
	size_t k = 0;

	if (n->prov && node_is_dir_container(n))
		out[k++] = TREE_INDEX_NAME;
	for (unsigned i = 0; (n->rec.meta || n->rec.url || n->rec.branch) && tree_files[i]; i++)
		out[k++] = tree_files[i];
	out[k] = NULL;
}

/* Which of tree_files n serves, one bit each: a directory's entries besides its children. */
static unsigned node_file_set(const struct node *n)
{
	return (n->rec.meta ? 1u : 0) | (n->rec.url ? 2u : 0) | (n->rec.branch ? 4u : 0);
}

void node_set_record(struct node *n, struct prov_record *rec, struct recblock *block)
{
	unsigned before = node_file_set(n);

	node_rec_release(n);
	n->rec = *rec;
	memset(rec, 0, sizeof(*rec));
	n->block = block;
	if (block)
		recblock_ref(block);
	if (node_file_set(n) != before)
		n->gen++;
}

int node_set_link(struct tree *t, struct node *l, const struct node *target)
{
	const struct prov_record *tr = &target->rec;
	struct prov_record rec = {.ctime = tr->ctime, .mtime = tr->mtime};
	char *to = strdup(target->name);

	rec.id = tr->id ? strdup(tr->id) : NULL;
	rec.web_url = tr->web_url ? strdup(tr->web_url) : NULL;
	if (!to || (tr->id && !rec.id) || (tr->web_url && !rec.web_url)) {
		free(to);
		prov_record_free(&rec);
		return -ENOMEM;
	}
	if (node_held(l) && l->link && strcmp(l->link, to))
		tree_watch_inode(t, node_ino(t, l)); /* its size and the target it keeps */
	free(l->link);
	l->link = to;
	node_rec_release(l);
	l->rec = rec;
	return 0;
}

int node_rec_own(struct node *n)
{
	struct prov_record copy;

	if (!n->block)
		return 0;
	if (prov_record_copy(&copy, &n->rec) < 0)
		return -ENOMEM; /* it stays in the block, which then lives on with it */
	recblock_unref(n->block);
	n->block = NULL;
	n->rec = copy;
	return 0;
}

static int64_t tree_time(const struct tree *t, int64_t a, int64_t b)
{
	return a ? a : b ? b : t->mount_time;
}

/* A listing past dir_ttl: the next reader makes it fresh. */
static int node_expired(const struct node *n)
{
	return node_is_dir_container(n) && n->prov && (n->listed || n->partial) &&
	       clock_now() >= n->list_expires;
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
	st->mtime_ns = (long)((n->gen + (node_expired(n) ? 1 : 0)) % 1000000000);
	st->ctime = tree_time(t, n->rec.ctime, n->rec.mtime);
}

static void stat_file(const struct tree *t, const struct node *n, size_t len, struct tree_stat *st)
{
	stat_dir(t, n, st);
	st->is_dir = 0;
	st->mtime_ns = 0;
	st->size = len;
}

/* A symbolic link: its size is its target's length; its times, its target's. */
static void stat_link(const struct tree *t, const struct node *n, struct tree_stat *st)
{
	stat_file(t, n, strlen(n->link), st);
	st->is_link = 1;
}

int node_stat(const struct tree *t, const struct node *n, unsigned file, struct tree_stat *st)
{
	size_t len;
	int nl;

	if (n->link && file)
		return -ENOENT;
	if (n->link)
		stat_link(t, n, st);
	else if (!file)
		stat_dir(t, n, st);
	else if (node_file(n, tree_files[file - 1], &len, &nl))
		stat_file(t, n, len, st);
	else
		return -ENOENT;
	st->ino = node_ino(t, n) | file;
	return 0;
}

int node_wait(struct tree *t)
{
	struct timespec ts;

	if (!provider_get_cancel().cancelled) {
		pthread_cond_wait(&t->cond, &t->lock);
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += TREE_POLL_MS * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	return provider_cancelled() ? -EINTR : 0;
}

int node_claim(struct tree *t, struct node *n)
{
	while (n->loading)
		if (node_wait(t) < 0)
			return -EINTR;
	n->loading = 1;
	return 0;
}

void node_release(struct tree *t, struct node *n)
{
	n->loading = 0;
	pthread_cond_broadcast(&t->cond);
}

int node_complete(struct tree *t, struct node *n)
{
	struct prov_record copy = {0};
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (!n->rec.incomplete || !pager_can_complete(n->prov))
		goto out;
	r = node_claim(t, n);
	if (r < 0)
		goto out;
	if (!n->rec.incomplete)
		goto release;
	r = prov_record_copy(&copy, &n->rec);
	if (r < 0)
		goto release;
	pthread_mutex_unlock(&t->lock);
	r = pager_complete(n->prov, &copy);
	pthread_mutex_lock(&t->lock);
	if (r == 0) {
		node_set_record(n, &copy, NULL);
		t->completed++; /* its directory's index shows it */
	}
release:
	node_release(t, n);
out:
	pthread_mutex_unlock(&t->lock);
	prov_record_free(&copy);
	return r;
}

int node_has_file(struct tree *t, struct node *n, const char *fname)
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
