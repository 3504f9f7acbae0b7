/* What the tree's unit tests share around their own fake providers: a fake clock, a
 * provider that frees nothing, a tree made and freed on that clock, and directories read
 * as the kernel reads them. Each function is static inline: one copy per test program
 * that includes this, and none of them unused is a warning.
 *
 * struct names holds FAKE_NAMES_MAX entries; a test that reads larger directories
 * defines it before including this. */
#ifndef CODESRCFS_TEST_TREE_FAKE_H
#define CODESRCFS_TEST_TREE_FAKE_H

#include <setjmp.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "clock.h"
#include "provider.h"
#include "tree.h"

#ifndef FAKE_NAMES_MAX
#define FAKE_NAMES_MAX 32
#endif

/* The tree's clock while a test runs (the pager's threads read it too). */
static _Atomic int64_t fake_clock;

static inline int64_t fake_now(void)
{
	return atomic_load(&fake_clock);
}

/* A fake provider owns nothing the tree must free. */
static inline void fake_destroy(struct provider *p)
{
	(void)p;
}

/* A tree over the n providers provs, the fake clock at 1000 and in use; NULL on failure. */
static inline struct tree *fake_tree_new(struct provider **provs, size_t n,
					 const struct tree_opts *o)
{
	atomic_store(&fake_clock, 1000);
	clock_set_test(fake_now);
	return tree_new(provs, n, o);
}

/* Free t, and the clock is the system's again. */
static inline void fake_tree_free(struct tree *t)
{
	tree_free(t);
	clock_set_test(NULL);
}

/* A test's fixture: its fake provider p, called "fake", with ops and the lock the fake
 * guards itself with (the pager's threads call it), and *t a tree over it on the fake
 * clock. 0, or -1 when there is no tree. */
static inline int fake_setup(struct provider *p, const struct provider_ops *ops,
			     pthread_mutex_t *lock, const struct tree_opts *o, struct tree **t)
{
	p->ops = ops;
	p->name = "fake";
	pthread_mutex_init(lock, NULL);
	*t = fake_tree_new(&p, 1, o);
	return *t ? 0 : -1;
}

/* The end of a fake_setup fixture: the tree, the fake's lock and the fixture go. */
static inline int fake_teardown(struct tree *t, pthread_mutex_t *lock, void *fixture)
{
	fake_tree_free(t);
	pthread_mutex_destroy(lock);
	free(fixture);
	return 0;
}

/* The inode at path, looked up one component at a time as the kernel does. Unless it is
 * the root, it then holds one lookup: give it back with tree_forget. */
static inline int path_lookup(struct tree *t, const char *path, struct tree_stat *st)
{
	char buf[1024], *save = NULL;
	uint64_t dir = TREE_ROOT;
	int r = tree_getattr(t, TREE_ROOT, st);

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *c = strtok_r(buf, "/", &save); c && r == 0; c = strtok_r(NULL, "/", &save)) {
		r = tree_lookup(t, dir, c, st);
		tree_forget(t, dir, 1); /* the kernel keeps only the last inode here */
		dir = r == 0 ? st->ino : TREE_ROOT;
	}
	return r;
}

static inline int path_readdir(struct tree *t, const char *path, off_t off, tree_fill_fn fill,
			       void *ctx)
{
	struct tree_stat st;
	int r = path_lookup(t, path, &st);

	if (r < 0)
		return r;
	r = tree_readdir(t, st.ino, off, 0, fill, ctx);
	tree_forget(t, st.ino, 1);
	return r;
}

/* The names a reader was given, in readdir's order. */
struct names {
	char list[FAKE_NAMES_MAX][300];
	int n;
	off_t next; /* where the reader resumes, as readdir said */
};

static inline int collect(void *ctx, const char *name, const struct tree_stat *st, off_t next,
			  int holds)
{
	struct names *c = ctx;

	(void)st, (void)holds;
	snprintf(c->list[c->n++], sizeof(c->list[0]), "%s", name);
	c->next = next;
	return 0;
}

/* Read a whole directory as the kernel does: from the offset reached until an empty answer
 * (a short answer is no end of directory). */
static inline int read_dir(struct tree *t, const char *path, struct names *c)
{
	int before, r;

	c->next = 0;
	do {
		before = c->n;
		r = path_readdir(t, path, c->next, collect, c);
	} while (r == 0 && c->n > before);
	return r;
}

#endif
