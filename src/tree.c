/* tree: the calls the kernel makes, over nodes filled from the providers on demand.
 *
 * The tree's files and their lock rules are described in tree_i.h. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "clock.h"
#include "names.h"
#include "tree_i.h"

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
			node_ref_kernel(n); /* the kernel's lookup of the file holds its node */
		pthread_mutex_unlock(&t->lock);
		goto out;
	}
	if (r == 0 && !node_is_dir_container(n))
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
	r = node_stat(t, n, file, st);
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
	fresh = (n->listed || n->partial) && clock_now() < n->list_expires;
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

/* One entry to the reader. With plus, an entry it takes is a lookup of held; "." and ".."
 * (held NULL) take none, as the kernel counts none for them: the one place that rule
 * lives, passed to fill. Non-zero when the reader's buffer is full. Lock held. */
static int emit_one(const struct emitter *em, struct node *held, const char *name,
		    const struct tree_stat *st, off_t next)
{
	int holds = em->plus && held;

	if (em->fill(em->ctx, name, st, next, holds))
		return 1;
	if (holds)
		node_ref_kernel(held);
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

static void node_expire(struct node *n)
{
	struct node *c, *tmp;

	if (n->prov) /* the root's children are fixed */
		n->list_expires = 0;
	n->seed_expires = 0;
	node_neg_clear(n);
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
			tree_watch_inode(t, node_ino(t, n));
		HASH_ITER(hh, n->children, c, tmp)
		if (node_held(c))
			tree_watch_entry(t, n, c->name, 0);
		HASH_ITER(hh, n->neg, e, etmp)
		tree_watch_entry(t, n, e->name, 1);
	} else if (node_held(n)) {
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

void tree_flush(struct tree *t)
{
	pthread_mutex_lock(&t->lock);
	for (const struct node *n = t->all; n; n = n->all_next)
		watch_flush(t, n);
	node_expire(t->root);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < t->root->norder; i++)
		pager_flush(t->root->order[i]->prov);
}
