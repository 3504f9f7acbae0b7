/* tree: the calls the kernel makes, over nodes filled from the providers on demand.
 *
 * The tree's files and their lock rules are described in tree_i.h. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "clock.h"
#include "names.h"
#include "tree_i.h"

#define TREE_MMAP_THRESHOLD (128 << 10) /* glibc's default, kept from moving */

/* 1 + the index of name in tree_files, or 0 when it names none of them. */
static unsigned file_index(const char *name)
{
	for (unsigned i = 0; tree_files[i]; i++)
		if (!strcmp(name, tree_files[i]))
			return i + 1;
	return 0;
}

struct tree *tree_new(struct provider **provs, size_t n, const struct tree_opts *opts)
{
	struct tree *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;
	struct listing *l;
	size_t size = 0;

	if (!t)
		return NULL;
	/* A refresh allocates a listing's memory while the last one's lives, then frees the
	 * old; the pager's threads parse pages in arenas of their own. glibc raises its mmap
	 * and trim thresholds each time a large mapped chunk is freed: the next listing's
	 * blocks then land in arena heaps, and an arena keeps a top below the raised trim
	 * threshold resident. Fixed at glibc's own starting value, every large block stays a
	 * mapping, given back whole when freed. And a small chunk freed into a fastbin neither
	 * coalesces nor trims: the last ones below a thread arena's top kept megabytes above
	 * them resident (malloc_trim merges them but never trims such a top). Without
	 * fastbins, the free that reaches the top trims it. */
	mallopt(M_MMAP_THRESHOLD, TREE_MMAP_THRESHOLD);
	mallopt(M_MXFAST, 0);
	t->o = *opts;
	t->mount_time = time(NULL);
	if (getrandom(&t->ino_key, sizeof(t->ino_key), GRND_NONBLOCK) != sizeof(t->ino_key))
		t->ino_key = 0; /* inode numbers still work; they merely show addresses */
	t->ino_key = (t->ino_key & (TREE_INO_HIGH - 1) & ~(uint64_t)TREE_FILE_MASK) | TREE_INO_HIGH;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* node_wait's time-outs */
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	t->root = node_new(t, "/", NULL);
	if (!t->root)
		goto fail;
	t->root->listed = 1;
	t->root->list_expires = INT64_MAX;
	for (size_t i = 0; i < n; i++)
		size += strlen(provs[i]->name) + 1;
	l = listing_new(n, size);
	if (!l)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct node *c = node_new(t, provs[i]->name, provs[i]);

		if (!c) {
			listing_free(l);
			goto fail;
		}
		c->prov_root = 1;
		c->rec.container = 1;
		HASH_ADD_KEYPTR(hh, t->root->children, c->name, strlen(c->name), c);
		listing_add(l, c, c->name);
	}
	listing_push(t, t->root, l, t->root->gen);
	return t;
fail:
	tree_free(t);
	return NULL;
}

void tree_free(struct tree *t)
{
	struct said *said, *tmp;

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
	HASH_ITER(hh, t->depth_said, said, tmp) {
		HASH_DEL(t->depth_said, said);
		free(said->key);
		free(said);
	}
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

/* node_is_dir_container for a caller without the lock: a node's record is rewritten
 * under it (node_rec_own, complete()), and its flags share a word with `incomplete`. */
static int is_container(struct tree *t, const struct node *n)
{
	int r;

	pthread_mutex_lock(&t->lock);
	r = node_is_dir_container(n);
	pthread_mutex_unlock(&t->lock);
	return r;
}

int tree_lookup(struct tree *t, uint64_t dir, const char *name, struct tree_stat *st)
{
	unsigned file, idx = file_index(name);
	struct node *n = node_get(t, dir, &file), *c;
	int r = file ? -ENOTDIR : strlen(name) > NAMES_MAX ? -ENAMETOOLONG : 0;

	if (r == 0 && index_is(t, n, name)) {
		r = index_lookup(t, n, st);
		goto out;
	}
	if (r == 0 && idx)
		r = node_has_file(t, n, name);
	if (r > 0) {
		pthread_mutex_lock(&t->lock);
		r = node_stat(t, n, idx, st);
		if (r == 0)
			node_ref_kernel(n); /* the kernel's lookup of the file holds its node */
		pthread_mutex_unlock(&t->lock);
		goto out;
	}
	if (r == 0 && !is_container(t, n))
		r = -ENOENT;
	if (r == 0)
		r = tree_child_get(t, n, name, &c);
	if (r == 0) {
		pthread_mutex_lock(&t->lock);
		node_stat(t, c, 0, st);
		c->lookups++; /* child_get's reference is now the kernel's lookup */
		pthread_mutex_unlock(&t->lock);
	}
out:
	node_put(t, n);
	return r;
}

void tree_thread_cancel(int (*cancelled)(void *ctx), void *ctx)
{
	provider_set_cancel(&(struct prov_cancel){.cancelled = cancelled, .ctx = ctx});
}

void tree_forget(struct tree *t, uint64_t ino, uint64_t nlookup)
{
	unsigned file;
	struct node *n;

	if (ino == TREE_ROOT)
		return;
	n = node_of_ino(t, ino, &file);
	pthread_mutex_lock(&t->lock);
	assert(n->lookups >= nlookup); /* no more than the kernel was given */
	n->lookups -= nlookup;
	node_unref_n(t, n, nlookup);
	pthread_mutex_unlock(&t->lock);
}

void tree_hold(struct tree *t, uint64_t ino)
{
	unsigned file;
	struct node *n = node_of_ino(t, ino, &file);

	pthread_mutex_lock(&t->lock);
	node_ref_kernel(n);
	pthread_mutex_unlock(&t->lock);
}

int tree_getattr(struct tree *t, uint64_t ino, struct tree_stat *st)
{
	unsigned file;
	struct node *n = node_of_ino(t, ino, &file);
	int r;

	pthread_mutex_lock(&t->lock);
	if (file == TREE_INDEX) {
		node_ref(n); /* the lock is released while the index is built */
		r = index_stat(t, n, st);
		node_unref(t, n);
	} else {
		r = node_stat(t, n, file, st);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

int tree_read(struct tree *t, uint64_t ino, char *buf, size_t size, off_t off)
{
	unsigned file;
	struct node *n = node_of_ino(t, ino, &file);
	const char *s;
	size_t len, done = 0;
	int nl, r;

	if (!file)
		return -EISDIR;
	pthread_mutex_lock(&t->lock);
	if (file == TREE_INDEX) {
		r = index_read(n, buf, size, off);
		pthread_mutex_unlock(&t->lock);
		return r;
	}
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

int tree_readlink(struct tree *t, uint64_t ino, char *buf, size_t size)
{
	unsigned file;
	struct node *n = node_of_ino(t, ino, &file);
	size_t len;
	int r = -EINVAL;

	pthread_mutex_lock(&t->lock);
	len = n->link ? strlen(n->link) : 0;
	if (!file && n->link)
		r = len < size ? (int)len : -ENAMETOOLONG;
	if (r >= 0)
		memcpy(buf, n->link, len + 1);
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* Entries for a reader at the start: a fresh listing, a first page for a reader of a
 * never-listed directory, or the whole listing; stale when a refresh fails. */
static int node_list(struct tree *t, struct node *n)
{
	int fresh, never;

	pthread_mutex_lock(&t->lock);
	fresh = (n->listed || n->partial) && clock_now() < n->list_expires;
	never = !n->listed;
	pthread_mutex_unlock(&t->lock);
	if (fresh)
		return 0;
	return never ? tree_load_first(t, n) : tree_load(t, n);
}

/* What a reader at offset off of directory n reads from: the listing the offset carries,
 * which it keeps to the end of its read whatever dir_ttl says (one read, one listing, every
 * entry that stood throughout given once). A reader at the start, or on a listing no longer
 * kept, gets the current one, fresh. */
static int reader_prepare(struct tree *t, struct node *n, off_t off)
{
	int kept;

	if (!n->prov)
		return 0; /* the root lists its providers for good */
	pthread_mutex_lock(&t->lock);
	kept = off != 0 && listing_find(t, n, listing_off_gen(off));
	listing_prune(t, n);
	pthread_mutex_unlock(&t->lock);
	if (kept)
		return 0;
	return node_list(t, n);
}

struct emitter {
	tree_fill_fn fill;
	tree_answer_fn answer; /* NULL: the answer goes when tree_readdir returns */
	void *ctx;
	int plus;
	int answered; /* answer was called: fill is not any more */
	size_t given; /* entries the reader took */
};

/* One entry to the reader. With plus, an entry it takes is a lookup of held; "." and "..",
 * and an entry of an older listing no longer its directory's child under that name, hold
 * none (held NULL): the one place that rule lives, passed to fill. Non-zero when the
 * reader's buffer is full. Lock held. */
static int emit_one(struct emitter *em, struct node *held, const char *name,
		    const struct tree_stat *st, off_t next)
{
	int holds = em->plus && held;

	if (em->fill(em->ctx, name, st, next, holds))
		return 1;
	if (holds)
		node_ref_kernel(held);
	em->given++;
	return 0;
}

/* The entry at position pos of n as listing l gives it: ".", "..", the node's three files
 * (each one's place kept whether it serves it or not, so a file that comes or goes moves
 * no other entry), then l's entries. Non-zero when the reader's buffer is full. Lock
 * held. */
static int emit_slot(struct tree *t, struct node *n, const struct listing *l, size_t pos,
		     struct emitter *em)
{
	off_t next = listing_off(l ? l->gen : 0, pos + 1);
	const struct lentry *e;
	struct tree_stat st;
	struct node *c;

	if (pos < 2) {
		node_stat(t, n, 0, &st);
		return emit_one(em, NULL, pos ? ".." : ".", &st, next);
	}
	if (pos < LISTING_SLOT_CHILDREN) {
		unsigned file = (unsigned)(pos - 1);

		if (!n->prov || n->prov_root || node_stat(t, n, file, &st) < 0)
			return 0;
		return emit_one(em, n, tree_files[file - 1], &st, next);
	}
	e = &l->e[pos - LISTING_SLOT_CHILDREN];
	HASH_FIND_STR(n->children, e->name, c);
	node_stat(t, e->node, 0, &st);
	return emit_one(em, c == e->node ? c : NULL, e->name, &st, next);
}

/* Emit n's entries from position pos as listing l (NULL: none) gives them. Returns 1 when
 * the caller's buffer filled, 0 when every entry was given; *end is the position
 * reached. Lock held. */
static int emit_entries(struct tree *t, struct node *n, const struct listing *l, size_t pos,
			struct emitter *em, size_t *end)
{
	size_t stop = LISTING_SLOT_CHILDREN + (l && node_is_dir_container(n) ? l->n : 0);

	for (*end = pos; *end < stop; ++*end)
		if (emit_slot(t, n, l, *end, em))
			return 1;
	return 0;
}

/* A reader at the end of partial listing *gen (position *end) goes on in the listings that
 * continue it, each keeping the survivors of the last in front, so the reader goes on after
 * them. Where none continues that listing (it was refreshed meanwhile), the current
 * listing from the same place is the best there is. 1 when it stopped at the end of a
 * partial listing nothing continues yet (*gen, *end: there), else 0. Lock held. */
static int emit_chain(struct tree *t, struct node *n, uint64_t *gen, size_t *end,
		      struct emitter *em)
{
	const struct listing *l = listing_from(n, *gen), *c;

	if (!l) {
		emit_entries(t, n, n->listings, *end, em, end);
		return 0;
	}
	for (;; l = c) {
		*end -= l->dropped;
		if (emit_entries(t, n, l, *end, em, end) || !l->partial)
			return 0;
		c = listing_from(n, listing_off_gen(listing_off(l->gen, 0)));
		if (!c) {
			*gen = listing_off_gen(listing_off(l->gen, 0));
			return 1;
		}
	}
}

/* Where a reader at the end of a partial listing stands. */
struct rest {
	struct tree *t;
	struct node *n;
	uint64_t gen;
	size_t end;
	struct emitter *em;
};

/* tree_grown: the reader's own call fetches the rest, and a longer partial listing came:
 * what it adds is the answer at once, while the other pages are still fetched. */
static void rest_grown(void *ctx)
{
	struct rest *rs = ctx;
	uint64_t gen = rs->gen;
	size_t end = rs->end;

	if (rs->em->answered)
		return;
	pthread_mutex_lock(&rs->t->lock);
	emit_chain(rs->t, rs->n, &gen, &end, rs->em);
	pthread_mutex_unlock(&rs->t->lock);
	if (rs->em->given) {
		rs->em->answered = 1;
		rs->em->answer(rs->em->ctx);
	}
}

/* A reader at the end of a partial listing (its gen) that got nothing more: it goes on in
 * the listings that continue it, waiting for them while they are fetched. */
static int read_rest(struct tree *t, struct node *n, uint64_t gen, size_t end, struct emitter *em)
{
	struct rest rs = {.t = t, .n = n, .gen = gen, .end = end, .em = em};
	struct tree_grown grown = {.fn = rest_grown, .ctx = &rs};
	int r, at_end;

	do {
		r = tree_load_rest(t, n, rs.gen, em->answer ? &grown : NULL);
		if (em->answered)
			return 0; /* whatever came of the rest, the reader has its answer */
		if (r < 0)
			return r;
		pthread_mutex_lock(&t->lock);
		at_end = emit_chain(t, n, &rs.gen, &rs.end, em);
		pthread_mutex_unlock(&t->lock);
	} while (at_end && em->given == 0); /* nothing given would be the end of directory */
	return 0;
}

int tree_readdir(struct tree *t, uint64_t ino, off_t off, int plus, tree_fill_fn fill, void *ctx)
{
	return tree_readdir_answer(t, ino, off, plus, fill, NULL, ctx);
}

int tree_readdir_answer(struct tree *t, uint64_t ino, off_t off, int plus, tree_fill_fn fill,
			tree_answer_fn answer, void *ctx)
{
	struct emitter em = {.fill = fill, .answer = answer, .ctx = ctx, .plus = plus};
	size_t pos = listing_off_pos(off), end;
	const struct listing *l = NULL;
	unsigned file;
	struct node *n = node_get(t, ino, &file);
	uint64_t gen = 0;
	int full, more, r = file ? -ENOTDIR : 0;

	if (r == 0 && is_container(t, n))
		r = reader_prepare(t, n, off);
	/* A code source is read as a directory of its files, which a record may complete. */
	if (r == 0 && n->prov)
		r = node_complete(t, n);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&t->lock);
	if (node_is_dir_container(n)) {
		l = listing_find(t, n, listing_off_gen(off));
		l = l ? l : n->listings;
	}
	full = emit_entries(t, n, l, pos, &em, &end);
	/* A short answer is no end of directory: the reader comes back for more, and only a
	 * reader that does so (nothing given this time) pays for the rest of the listing. */
	more = !full && l && l->partial && em.given == 0;
	gen = l ? l->gen : 0;
	pthread_mutex_unlock(&t->lock);
	if (more)
		r = read_rest(t, n, listing_off_gen(listing_off(gen, 0)), end, &em);
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
	struct node *n = node_of_ino(t, ino, &file);
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
	struct node *n = node_of_ino(t, ino, &file);
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

/* SIGHUP: nothing n holds is trusted any more. Lock held. */
static void node_expire(struct node *n)
{
	if (n->prov) /* the root's children are fixed */
		n->list_expires = 0;
	n->seed_expires = 0;
	node_neg_clear(n);
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
			tree_watch_inode(t, node_ino(t, n));
		index_flush(t, n);
		HASH_ITER(hh, n->children, c, tmp)
			if (node_held(c))
				tree_watch_entry(t, n, c->name, 0);
		HASH_ITER(hh, n->neg, e, etmp)
			tree_watch_entry(t, n, e->name, 1);
	} else if (node_held(n) && !n->link) {
		for (unsigned i = 0; tree_files[i]; i++)
			tree_watch_entry(t, n, tree_files[i], 0);
	}
}

void tree_watch(struct tree *t, const struct tree_watch *w)
{
	pthread_mutex_lock(&t->lock);
	t->watch = w ? *w : (struct tree_watch){0};
	pthread_mutex_unlock(&t->lock);
}

void tree_quit(struct tree *t)
{
	atomic_store(&t->quit, 1);
}

void tree_flush(struct tree *t)
{
	pthread_mutex_lock(&t->lock);
	/* Every node, not only those the root reaches: one a refresh replaced that the
	 * kernel still holds lists its children too, and the kernel is told to read it. */
	for (struct node *n = t->all; n; n = n->all_next) {
		watch_flush(t, n);
		node_expire(n);
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < t->root->listings->n; i++)
		pager_flush(t->root->listings->e[i].node->prov);
}
