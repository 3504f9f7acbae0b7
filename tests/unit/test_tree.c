/* Unit tests of the tree: caching, TTLs with a fake clock, paging, look-ups, errors.
 * A fake provider serves an in-memory list and counts what it was asked. */
#define _GNU_SOURCE /* SCHED_BATCH */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "log.h"
#include "provider.h"
#include "tree.h"

#define FAKE_MAX       1000
#define FAKE_NAMES_MAX (FAKE_MAX + 8)
#include "tree_fake.h"

struct fake_entry {
	char id[32];
	char name[64];
	int64_t ctime;
	int branch; /* the record names a branch: the directory serves a branch file */
	int moved;  /* the repository moved: its url changes */
};

/* A workspace of the provider's root, with a display name (a link beside it) or none. */
struct fake_ws {
	char id[32];
	char label[64]; /* "" for none */
	int64_t ctime;
};

struct fake {
	struct provider base;
	pthread_mutex_t lock;
	struct fake_entry e[FAKE_MAX];
	int n;
	struct fake_ws ws[32]; /* the root's workspaces, paged; none: one called "ws" */
	int nws;
	long page_size;
	int list_calls, lookup_calls;
	int fail;     /* list_page answers this error when non-zero */
	int no_total; /* pages say no total: only a short page is the last */
	int delay_us; /* each page takes this long, so requests overlap */
	int inflight, max_inflight;
	int mutate_on_call; /* add an entry when this list call is made (0: never) */
	int stall;	/* list_page waits, as on a stalled network, until cleared or cancelled */
	int stalled;	/* calls that met the stall so far */
	int incomplete; /* listings leave url out; complete() fills it in */
	int complete_calls;
	int nest;	/* every directory below the root holds one more, n<k>, without end */
	int hold;	/* pages from hold_from on wait, as a slow page, until cleared */
	long hold_from; /* raised while they wait, it lets the pages below it go */
	int held;	/* calls that met the hold so far */
	int batch[2];	/* pages of a directory fetched on a batch thread: page 1, the others */
	int other[2];	/* and on a thread of any other policy */
};

/* As http does: wait while the fake network stalls, giving up when the caller does. */
static int fake_stall(struct fake *f)
{
	if (!__atomic_load_n(&f->stall, __ATOMIC_SEQ_CST))
		return 0;
	__atomic_add_fetch(&f->stalled, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&f->stall, __ATOMIC_SEQ_CST))
		if (provider_cancelled())
			return -EINTR;
		else
			usleep(1000);
	return 0;
}

static void fake_record(const struct fake_entry *e, struct prov_record *r)
{
	memset(r, 0, sizeof(*r));
	r->id = strdup(e->id);
	r->name = strdup(e->name);
	r->name_len = strlen(e->name);
	r->url = malloc(strlen(e->id) + 32);
	sprintf(r->url, "https://git.example/%s%s.git", e->moved ? "moved/" : "", e->id);
	r->meta = strdup("{}\n");
	r->branch = e->branch ? strdup("main") : NULL;
	r->ctime = e->ctime;
}

/* As a listing of a provider that leaves the url out gives it (Codeup's, without the
 * paging headers' full records). */
static void fake_listed_record(const struct fake *f, const struct fake_entry *e,
			       struct prov_record *r)
{
	fake_record(e, r);
	if (!f->incomplete)
		return;
	free(r->url);
	r->url = NULL;
	r->incomplete = 1;
}

static void fake_add(struct fake *f, const char *id, const char *name, int64_t ctime)
{
	struct fake_entry *e = &f->e[f->n++];

	snprintf(e->id, sizeof(e->id), "%s", id);
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->ctime = ctime;
}

/* n entries named by their ids, 100 onwards, created in that order. */
static void fake_fill(struct fake *f, int n)
{
	char id[16];

	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%d", 100 + i);
		fake_add(f, id, id, 10 + i);
	}
}

/* Page `page` of the root's workspaces: f->ws, or one called "ws". Lock not held (f->ws is
 * set before). */
static int fake_root(struct fake *f, long page, struct prov_page *out)
{
	static const struct fake_ws one = {"ws", "", 0};
	int n = f->nws ? f->nws : 1;
	long from = (page - 1) * f->page_size,
	     to = page * f->page_size < n ? page * f->page_size : n;

	out->total = n;
	out->page_size = f->page_size;
	out->last = to == n;
	for (long i = from; i < to; i++) {
		const struct fake_ws *w = f->nws ? &f->ws[i] : &one;
		struct prov_record r = {.container = 1, .ctime = w->ctime};

		r.id = strdup(w->id);
		r.name = strdup(w->id);
		r.name_len = strlen(w->id);
		r.web_url = malloc(strlen(w->id) + 32);
		sprintf(r.web_url, "https://console.example/%s", w->id);
		if (w->label[0]) {
			r.label = strdup(w->label);
			r.label_len = strlen(w->label);
		}
		prov_page_add(out, &r);
	}
	return 0;
}

/* With nest, the directory that dir holds besides the entries: n1 in the workspace, n<k+1>
 * in n<k>, a new id at every level (as a server that nests groups without end). */
static void fake_nested(const struct fake *f, const struct prov_record *dir, struct prov_page *out)
{
	struct prov_record r = {.container = 1, .ctime = 1};
	char id[32];
	long k = dir->id[0] == 'n' ? strtol(dir->id + 1, NULL, 10) + 1 : 1;

	if (!f->nest)
		return;
	snprintf(id, sizeof(id), "n%ld", k);
	r.id = strdup(id);
	r.name = strdup(id);
	r.name_len = strlen(id);
	prov_page_add(out, &r);
}

static int fake_list_page(struct provider *p, const struct prov_record *dir, long page,
			  struct prov_page *out)
{
	struct fake *f = (struct fake *)p;
	struct prov_record r;
	int err = fake_stall(f), got = 0;

	if (err)
		return err;
	if (dir && __atomic_load_n(&f->hold, __ATOMIC_SEQ_CST) &&
	    page >= __atomic_load_n(&f->hold_from, __ATOMIC_SEQ_CST)) {
		__atomic_add_fetch(&f->held, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&f->hold, __ATOMIC_SEQ_CST) &&
		       page >= __atomic_load_n(&f->hold_from, __ATOMIC_SEQ_CST))
			usleep(1000);
	}
	pthread_mutex_lock(&f->lock);
	if (dir)
		(sched_getscheduler(0) == SCHED_BATCH ? f->batch : f->other)[page > 1]++;
	f->inflight++;
	f->max_inflight = f->inflight > f->max_inflight ? f->inflight : f->max_inflight;
	pthread_mutex_unlock(&f->lock);
	usleep(f->delay_us);
	pthread_mutex_lock(&f->lock);
	f->inflight--;
	f->list_calls++;
	err = f->fail;
	if (f->mutate_on_call && f->list_calls == f->mutate_on_call)
		fake_add(f, "9999", "latecomer", 99999);
	if (!dir) {
		pthread_mutex_unlock(&f->lock);
		return err ? err : fake_root(f, page, out);
	}
	out->total = f->no_total ? -1 : f->n;
	out->page_size = f->page_size;
	for (long i = (page - 1) * f->page_size; !err && i < page * f->page_size && i < f->n; i++) {
		fake_listed_record(f, &f->e[i], &r);
		prov_page_add(out, &r);
		got++;
	}
	out->last = f->no_total ? got < f->page_size : page * f->page_size >= f->n;
	if (!err && f->nest) { /* one page, the entries and the directory below */
		out->total = out->total < 0 ? -1 : f->n + 1;
		out->last = 1;
		fake_nested(f, dir, out);
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_lookup(struct provider *p, const struct prov_record *dir, const char *term,
		       struct prov_page *out)
{
	struct fake *f = (struct fake *)p;
	struct prov_record r;
	int err = fake_stall(f);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	f->lookup_calls++;
	for (int i = 0; i < f->n; i++) {
		if (!strstr(f->e[i].name, term))
			continue;
		fake_record(&f->e[i], &r);
		prov_page_add(out, &r);
	}
	fake_nested(f, dir, out); /* a superset of what holds term is what a filter gives */
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* The url a listing left out, from the entry of that id as the fake holds it now. */
static int fake_complete(struct provider *p, struct prov_record *rec)
{
	struct fake *f = (struct fake *)p;
	struct prov_record full;
	int r = -ENOENT;

	pthread_mutex_lock(&f->lock);
	f->complete_calls++;
	for (int i = 0; i < f->n && r; i++) {
		if (strcmp(f->e[i].id, rec->id))
			continue;
		fake_record(&f->e[i], &full);
		free(rec->url);
		rec->url = full.url;
		full.url = NULL;
		rec->incomplete = 0;
		prov_record_free(&full);
		r = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

static const struct provider_ops fake_ops = {
    .list_page = fake_list_page,
    .lookup = fake_lookup,
    .complete = fake_complete,
    .destroy = fake_destroy,
};

struct fixture {
	struct fake f;
	struct tree *t;
};

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));
	struct tree_opts o = {.dir_ttl = 60, .attr_ttl = 30, .neg_ttl = 10, .parallel = 4};

	*state = x;
	x->f.page_size = 10;
	return fake_setup(&x->f.base, &fake_ops, &x->f.lock, &o, &x->t);
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	return fake_teardown(x->t, &x->f.lock, x);
}

static int path_stat(struct tree *t, const char *path, struct tree_stat *st)
{
	int r = path_lookup(t, path, st);

	if (r == 0)
		tree_forget(t, st->ino, 1);
	return r;
}

static int path_read(struct tree *t, const char *path, char *buf, size_t size, off_t off)
{
	struct tree_stat st;
	int r = path_lookup(t, path, &st);

	if (r < 0)
		return r;
	r = tree_read(t, st.ino, buf, size, off);
	tree_forget(t, st.ino, 1);
	return r;
}

/* Like read_dir, as readdirplus: an entry the tree says holds a lookup has its inode kept
 * in inos (give them back with forget_all). */
struct plus {
	struct names names;
	uint64_t inos[FAKE_MAX + 8];
	int n;
};

static int collect_plus(void *ctx, const char *name, const struct tree_stat *st, off_t next,
			int holds)
{
	struct plus *p = ctx;

	collect(&p->names, name, st, next, holds);
	if (holds)
		p->inos[p->n++] = st->ino;
	return 0;
}

static int read_dir_plus(struct tree *t, uint64_t ino, struct plus *p)
{
	int before, r;

	p->names.next = 0;
	do {
		before = p->names.n;
		r = tree_readdir(t, ino, p->names.next, 1, collect_plus, p);
	} while (r == 0 && p->names.n > before);
	return r;
}

static void forget_all(struct tree *t, struct plus *p)
{
	for (int i = 0; i < p->n; i++)
		tree_forget(t, p->inos[i], 1);
	p->n = 0;
}

static int has(const struct names *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->list[i], name))
			return 1;
	return 0;
}

static void test_root_lists_providers(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat st;

	assert_int_equal(read_dir(x->t, "/", c), 0);
	assert_int_equal(c->n, 3);
	assert_true(has(c, "fake"));
	assert_int_equal(path_stat(x->t, "/fake", &st), 0);
	assert_true(st.is_dir);
	assert_int_equal(path_stat(x->t, "/nope", &st), -ENOENT);
	assert_int_equal(x->f.list_calls, 0); /* nothing listed for the root */
	free(c);
}

static void test_first_page_only_for_a_reader_that_stops(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));

	fake_fill(&x->f, 35);
	assert_int_equal(path_readdir(x->t, "/fake/ws", 0, collect, c), 0);
	assert_int_equal(c->n, 2 + 10);	      /* ".", "..", page 1 */
	assert_int_equal(x->f.list_calls, 2); /* the root, then one page */
	assert_int_equal(path_readdir(x->t, "/fake/ws", c->next, collect, c), 0);
	assert_int_equal(c->n, 2 + 35);
	assert_int_equal(x->f.list_calls, 5); /* page 1 was not asked for again */
	free(c);
}

/* The pages after the first are fetched and parsed on batch threads, which leave the CPU
 * to the threads that wait on it (tree_pager.c); page 1 on the reader's own thread, which
 * keeps its policy. */
static void test_the_pages_after_the_first_are_fetched_on_batch_threads(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));

	fake_fill(&x->f, 100);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(c->n, 2 + 100);
	free(c);
	assert_int_equal(x->f.batch[1], 9);
	assert_int_equal(x->f.other[1], 0);
	assert_int_equal(x->f.batch[0], 0);
	assert_int_equal(x->f.other[0], 1);
}

/* A first page kept past a second no longer stands for page 1: a record gone from it since
 * moved the first one of page 2 into it, and the rest paged after the kept page lost it
 * (found by tests/unit/test_tree_model.c). Page 1 is asked for again. */
static void test_a_first_page_kept_past_a_second_is_asked_again(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));

	x->f.no_total = 1; /* with a total, the total that moved would tell */
	fake_fill(&x->f, 35);
	assert_int_equal(path_readdir(x->t, "/fake/ws", 0, collect, c), 0);
	assert_int_equal(c->n, 2 + 10); /* ".", "..", page 1: 100..109 */
	fake_clock += 2;		/* well within dir_ttl */
	pthread_mutex_lock(&x->f.lock);
	memmove(&x->f.e[1], &x->f.e[2], (size_t)(x->f.n - 2) * sizeof(x->f.e[0])); /* 101 goes */
	x->f.n--;
	pthread_mutex_unlock(&x->f.lock);
	assert_int_equal(path_readdir(x->t, "/fake/ws", c->next, collect, c), 0);
	assert_true(has(c, "110")); /* now on page 1: it was missing */
	assert_int_equal(c->n, 2 + 35);
	free(c);
}

static void test_full_listing_paged_and_named(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	char id[16], name[32];

	for (int i = 0; i < 35; i++) {
		snprintf(id, sizeof(id), "%d", 100 + i);
		snprintf(name, sizeof(name), i < 3 ? "dup" : "repo-%d", i);
		fake_add(&x->f, id, name, 10 + i);
	}
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(c->n, 2 + 35);
	assert_true(has(c, "dup"));
	assert_true(has(c, "dup~101"));
	assert_true(has(c, "dup~102"));
	assert_true(has(c, "repo-34"));
	/* 1 root listing + 4 pages of 10 */
	assert_int_equal(x->f.list_calls, 5);
	free(c);
}

static void test_ttl_expiry_with_fake_clock(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat st;

	fake_add(&x->f, "1", "alpha", 1);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	int calls = x->f.list_calls;

	fake_clock += 59;
	assert_int_equal(path_stat(x->t, "/fake/ws/alpha/url", &st), 0);
	assert_int_equal(x->f.list_calls, calls); /* still fresh */
	fake_add(&x->f, "2", "beta", 2);
	assert_int_equal(path_stat(x->t, "/fake/ws/beta", &st), -ENOENT);
	fake_clock += 2; /* past dir_ttl */
	assert_int_equal(path_stat(x->t, "/fake/ws/beta", &st), 0);
	assert_true(x->f.list_calls > calls);
	free(c);
}

static void test_lookup_uses_filter_once(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st;
	char buf[128];
	int n;

	fake_add(&x->f, "1", "my_repo", 5);
	fake_add(&x->f, "2", "my/repo", 3); /* older: keeps the sanitised name */
	fake_add(&x->f, "3", "other", 1);
	x->f.list_calls = 0;
	assert_int_equal(path_stat(x->t, "/fake/ws", &st), 0); /* root listing only */
	int base = x->f.list_calls;

	n = path_read(x->t, "/fake/ws/my_repo/url", buf, sizeof(buf), 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "https://git.example/2.git\n");
	assert_int_equal(x->f.lookup_calls, 1);
	assert_int_equal(x->f.list_calls, base); /* no listing of the workspace */
}

static void test_negative_cache(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st;

	fake_add(&x->f, "1", "alpha", 1);
	assert_int_equal(path_stat(x->t, "/fake/ws/missing", &st), -ENOENT);
	assert_int_equal(x->f.lookup_calls, 1);
	assert_int_equal(path_stat(x->t, "/fake/ws/missing", &st), -ENOENT);
	assert_int_equal(x->f.lookup_calls, 1); /* remembered */
	fake_clock += 11;
	assert_int_equal(path_stat(x->t, "/fake/ws/missing", &st), -ENOENT);
	assert_int_equal(x->f.lookup_calls, 2); /* neg_ttl passed */
}

static void test_stale_on_error_and_eio(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));

	fake_add(&x->f, "1", "alpha", 1);
	x->f.fail = -EACCES;
	assert_int_equal(read_dir(x->t, "/fake", c), -EACCES);
	x->f.fail = 0;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	fake_clock += 120;
	x->f.fail = -EIO;
	c->n = 0;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_true(has(c, "alpha")); /* the last good listing */
	free(c);
}

static void test_changing_listing_is_fetched_again(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	char id[16];

	for (int i = 0; i < 30; i++) {
		snprintf(id, sizeof(id), "%d", i + 1);
		fake_add(&x->f, id, id, i + 1);
	}
	x->f.mutate_on_call = 3; /* root, page 1, then an entry appears */
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_true(has(c, "latecomer"));
	assert_true(has(c, "30"));
	assert_int_equal(c->n, 2 + 31);
	free(c);
}

static void test_files_and_read(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat st;
	char buf[8];

	fake_add(&x->f, "7", "seven", 1);
	assert_int_equal(read_dir(x->t, "/fake/ws/seven", c), 0);
	assert_true(has(c, "url"));
	assert_true(has(c, "meta.json"));
	assert_false(has(c, "branch"));
	assert_int_equal(path_stat(x->t, "/fake/ws/seven/url", &st), 0);
	assert_false(st.is_dir);
	assert_int_equal(st.size, strlen("https://git.example/7.git\n"));
	/* a read at the end gives the newline alone */
	assert_int_equal(path_read(x->t, "/fake/ws/seven/url", buf, sizeof(buf), st.size - 1), 1);
	assert_int_equal(buf[0], '\n');
	assert_int_equal(path_read(x->t, "/fake/ws/seven/url", buf, sizeof(buf), st.size), 0);
	assert_int_equal(path_stat(x->t, "/fake/ws/seven/branch", &st), -ENOENT);
	assert_int_equal(path_stat(x->t, "/fake/ws/seven/url/x", &st), -ENOTDIR);
	free(c);
}

static void test_flush_forgets(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));

	fake_add(&x->f, "1", "alpha", 1);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	int calls = x->f.list_calls;

	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(x->f.list_calls, calls);
	tree_flush(x->t);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_true(x->f.list_calls > calls);
	free(c);
}

/* With no total, pages are fetched ahead in a window that opens at 2 pages and doubles up
 * to parallel (4): 95 entries in pages of 10 cost pages 1, 2-3, 4-7 and 8-11, one past
 * the end, with 4 requests in flight at once. */
static void test_no_total_fetches_ahead_in_a_window(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));

	fake_fill(&x->f, 95);
	x->f.no_total = 1;
	x->f.delay_us = 20000;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(c->n, 2 + 95);
	assert_true(has(c, "194"));
	assert_int_equal(x->f.list_calls, 1 + 1 + 2 + 4 + 4); /* the root listing first */
	assert_int_equal(x->f.max_inflight, 4);
	free(c);
}

/* What the kernel holds outlives a refresh that drops it: its inode still answers, and
 * tree_free (under ASan's leak check) frees what was never given back. */
static void test_lookups_outlive_a_refresh(void **state)
{
	struct fixture *x = *state;
	struct plus *p = calloc(1, sizeof(*p));
	struct tree_stat ws, st, url;

	fake_add(&x->f, "1", "alpha", 1);
	fake_add(&x->f, "2", "beta", 2);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(read_dir_plus(x->t, ws.ino, p), 0);
	assert_int_equal(p->n, 2);
	assert_int_equal(tree_lookup(x->t, p->inos[1], "url", &url), 0);
	x->f.n = 1; /* beta is deleted in the cloud */
	fake_clock += 61;
	assert_int_equal(path_stat(x->t, "/fake/ws/beta", &st), -ENOENT);
	assert_int_equal(tree_getattr(x->t, p->inos[1], &st), 0); /* still held */
	assert_true(st.is_dir);
	assert_int_equal(tree_getattr(x->t, url.ino, &st), 0);
	assert_int_equal(tree_read(x->t, url.ino, (char[64]){0}, 64, 0), (int)st.size);
	forget_all(x->t, p); /* alpha stays, beta is freed; url still holds beta */
	assert_int_equal(tree_getattr(x->t, url.ino, &st), 0);
	tree_forget(x->t, url.ino, 1);
	tree_forget(x->t, ws.ino, 1);
	/* Held at "unmount": the kernel sends no forget then. */
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha/meta.json", &st), 0);
	free(p);
}

/* The kernel keeps every directory it read and reads one again when its mtime moved: the
 * nanoseconds move with a directory's entries, and move ahead once its listing expired,
 * to where the refresh then lands. */
static void test_directory_mtime_moves_with_its_entries(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat ws, cs, st;
	long ws_ns, cs_ns;

	fake_add(&x->f, "1", "alpha", 1);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(tree_getattr(x->t, ws.ino, &st), 0);
	ws_ns = st.mtime_ns;
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha", &cs), 0);
	assert_int_equal(read_dir(x->t, "/fake/ws/alpha", c), 0);
	assert_int_equal(tree_getattr(x->t, cs.ino, &st), 0);
	cs_ns = st.mtime_ns;
	assert_int_equal(st.mtime, 1); /* the seconds are the record's */

	fake_clock += 59; /* fresh: the same */
	assert_int_equal(tree_getattr(x->t, ws.ino, &st), 0);
	assert_int_equal(st.mtime_ns, ws_ns);
	fake_clock += 2; /* expired: moved, before anything was fetched */
	int calls = x->f.list_calls;
	assert_int_equal(tree_getattr(x->t, ws.ino, &st), 0);
	assert_int_not_equal(st.mtime_ns, ws_ns);
	assert_int_equal(x->f.list_calls, calls);
	ws_ns = st.mtime_ns;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0); /* the refresh lands there */
	assert_int_equal(tree_getattr(x->t, ws.ino, &st), 0);
	assert_int_equal(st.mtime_ns, ws_ns);
	assert_int_equal(tree_getattr(x->t, cs.ino, &st), 0);
	assert_int_equal(st.mtime_ns, cs_ns); /* alpha's files did not change */

	x->f.e[0].branch = 1; /* alpha gains a branch file */
	fake_clock += 61;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(tree_getattr(x->t, cs.ino, &st), 0);
	assert_int_not_equal(st.mtime_ns, cs_ns);
	c->n = 0;
	assert_int_equal(read_dir(x->t, "/fake/ws/alpha", c), 0);
	assert_true(has(c, "branch"));
	assert_int_equal(tree_getattr(x->t, cs.ino + 2, &st), 0); /* its url file */
	assert_false(st.is_dir);
	assert_int_equal(st.mtime_ns, 0);
	assert_int_equal(tree_readdir(x->t, cs.ino + 2, 0, 0, collect, c), -ENOTDIR);
	tree_forget(x->t, cs.ino, 1);
	tree_forget(x->t, ws.ino, 1);
	free(c);
}

/* What a watch was told, one line each: "entry <dir> <name> gone|check" or "inode <ino>". */
struct told {
	char line[4096][96];
	int n;
};

static void told_entry(void *ctx, uint64_t dir, const char *name, int gone)
{
	struct told *w = ctx;

	snprintf(w->line[w->n++], sizeof(w->line[0]), "entry %llx %s %s", (unsigned long long)dir,
		 name, gone ? "gone" : "check");
}

static void told_inode(void *ctx, uint64_t ino)
{
	struct told *w = ctx;

	snprintf(w->line[w->n++], sizeof(w->line[0]), "inode %llx", (unsigned long long)ino);
}

static struct told *watch(struct tree *t)
{
	struct told *w = calloc(1, sizeof(*w));

	tree_watch(t, &(struct tree_watch){.entry = told_entry, .inode = told_inode, .ctx = w});
	return w;
}

static int was_told(const struct told *w, const char *fmt, ...)
{
	char want[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	for (int i = 0; i < w->n; i++)
		if (!strcmp(w->line[i], want))
			return 1;
	return 0;
}

static unsigned long long ino_of(struct tree *t, const char *path)
{
	struct tree_stat st;

	assert_int_equal(path_stat(t, path, &st), 0);
	return (unsigned long long)st.ino;
}

/* A refresh tells the kernel what it changed of what the kernel holds, and only that: a
 * code source gone, a name that passed to another, a remembered miss now found, a file
 * that came, one whose bytes changed. */
static void test_a_refresh_tells_what_it_changed(void **state)
{
	struct fixture *x = *state;
	struct plus *p = calloc(1, sizeof(*p));
	struct tree_stat ws, st;
	struct told *w = watch(x->t);
	unsigned long long alpha, beta, gamma;

	fake_add(&x->f, "1", "alpha", 1);
	fake_add(&x->f, "2", "beta", 2);
	fake_add(&x->f, "3", "gamma", 3);
	fake_add(&x->f, "4", "delta", 4);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(read_dir_plus(x->t, ws.ino, p), 0); /* the kernel holds all four */
	alpha = ino_of(x->t, "/fake/ws/alpha");
	beta = ino_of(x->t, "/fake/ws/beta");
	gamma = ino_of(x->t, "/fake/ws/gamma");
	assert_int_equal(path_stat(x->t, "/fake/ws/epsilon", &st), -ENOENT); /* a miss */
	assert_int_equal(w->n, 0);

	x->f.e[0].moved = 1;   /* alpha's url changes */
	x->f.e[1] = x->f.e[3]; /* beta is gone; delta moves up */
	snprintf(x->f.e[2].name, sizeof(x->f.e[2].name), "gamma2"); /* gamma renamed */
	x->f.e[2].branch = 1;					    /* and gains a branch */
	snprintf(x->f.e[3].id, sizeof(x->f.e[3].id), "5");
	snprintf(x->f.e[3].name, sizeof(x->f.e[3].name), "epsilon"); /* epsilon is new */
	fake_clock += 61;
	struct names *c = calloc(1, sizeof(*c));
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);

	assert_true(was_told(w, "entry %llx beta gone", (unsigned long long)ws.ino));
	assert_true(was_told(w, "entry %llx gamma gone", (unsigned long long)ws.ino));
	assert_true(was_told(w, "entry %llx epsilon gone", (unsigned long long)ws.ino));
	assert_true(was_told(w, "entry %llx branch gone", gamma));
	assert_true(was_told(w, "inode %llx", gamma));
	assert_true(was_told(w, "inode %llx", alpha | 2));  /* url */
	assert_false(was_told(w, "inode %llx", alpha | 3)); /* alpha has no branch */
	assert_false(was_told(w, "entry %llx delta gone", (unsigned long long)ws.ino));
	(void)beta;

	forget_all(x->t, p);
	w->n = 0;
	fake_clock += 61;
	x->f.n = 1;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(w->n, 0); /* nothing the kernel held went */
	tree_watch(x->t, NULL);
	tree_forget(x->t, ws.ino, 1);
	free(c);
	free(w);
	free(p);
}

/* SIGHUP: every listing, every entry and file the kernel holds, and every miss it may
 * remember, is to be checked again. */
static void test_flush_tells_everything_the_kernel_holds(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat ws, cs, st;
	struct told *w = watch(x->t);

	fake_add(&x->f, "1", "alpha", 1);
	fake_add(&x->f, "2", "beta", 2);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha", &cs), 0);
	assert_int_equal(path_stat(x->t, "/fake/ws/nothing", &st), -ENOENT);
	tree_flush(x->t);
	assert_true(was_told(w, "inode %llx", (unsigned long long)ws.ino));
	assert_true(was_told(w, "entry %llx alpha check", (unsigned long long)ws.ino));
	assert_true(was_told(w, "entry %llx nothing gone", (unsigned long long)ws.ino));
	assert_true(was_told(w, "entry %llx url check", (unsigned long long)cs.ino));
	assert_true(was_told(w, "entry %llx branch check", (unsigned long long)cs.ino));
	for (int i = 0; i < w->n; i++)
		assert_null(strstr(w->line[i], "beta")); /* the kernel does not hold it */
	tree_watch(x->t, NULL);
	tree_forget(x->t, cs.ino, 1);
	tree_forget(x->t, ws.ino, 1);
	free(c);
	free(w);
}

/* A first-page name looked up again once expired is replaced by a fresh node: the first
 * page's order must follow, or the whole listing that comes next writes into the old one
 * (a use-after-free). */
static void test_expired_first_page_name_looked_up_then_listed(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat st;

	fake_fill(&x->f, 35);
	assert_int_equal(path_readdir(x->t, "/fake/ws", 0, collect, c), 0);
	assert_int_equal(c->n, 2 + 10);
	fake_clock += 61; /* the first page expires */
	assert_int_equal(path_stat(x->t, "/fake/ws/100", &st), 0);
	assert_int_equal(x->f.lookup_calls, 1);
	assert_int_equal(path_stat(x->t, "/fake/ws/x~y", &st), -ENOENT); /* lists it all */
	c->n = 0;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(c->n, 2 + 35);
	assert_true(has(c, "100") && has(c, "134"));
	free(c);
}

/* Two records of a first page with one id are one entry, as in a whole listing; the copy
 * dropped when the rest arrives must not stay in the order a reader was given. */
static void test_first_page_with_a_repeated_id(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));

	fake_add(&x->f, "7", "seven", 1);
	fake_add(&x->f, "7", "seven-again", 2);
	fake_fill(&x->f, 30);
	assert_int_equal(path_readdir(x->t, "/fake/ws", 0, collect, c), 0);
	assert_int_equal(c->n, 2 + 9); /* page 1: ten records, nine ids */
	assert_true(has(c, "seven") && !has(c, "seven-again"));
	assert_int_equal(path_readdir(x->t, "/fake/ws", c->next, collect, c), 0);
	assert_int_equal(c->n, 2 + 31);
	free(c);
}

/* Each entry's "holds a lookup" as the tree told it, one line each: "<name> <holds>". */
static int collect_holds(void *ctx, const char *name, const struct tree_stat *st, off_t next,
			 int holds)
{
	struct names *c = ctx;

	(void)st;
	snprintf(c->list[c->n++], sizeof(c->list[0]), "%s %d", name, holds);
	c->next = next;
	return 0;
}

/* Which entries a readdirplus answer makes lookups of is the tree's to say, not its
 * reader's: every child and file, never "." or ".."; nothing without plus. Each one said
 * is one reference, which forget gives back (ASan's leak check sees the rest freed). */
static void test_readdir_says_which_entries_hold_a_lookup(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat ws, cs;

	fake_add(&x->f, "1", "alpha", 1);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(tree_readdir(x->t, ws.ino, 0, 1, collect_holds, c), 0);
	assert_int_equal(c->n, 3);
	assert_string_equal(c->list[0], ". 0");
	assert_string_equal(c->list[1], ".. 0");
	assert_string_equal(c->list[2], "alpha 1");
	assert_int_equal(tree_lookup(x->t, ws.ino, "alpha", &cs), 0);
	tree_forget(x->t, cs.ino, 2); /* the readdirplus entry's and the lookup's */
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha", &cs), 0);
	c->n = 0;
	assert_int_equal(tree_readdir(x->t, cs.ino, 0, 1, collect_holds, c), 0);
	assert_int_equal(c->n, 4);
	assert_string_equal(c->list[2], "meta.json 1");
	assert_string_equal(c->list[3], "url 1");
	tree_forget(x->t, cs.ino, 2);
	c->n = 0;
	assert_int_equal(tree_readdir(x->t, ws.ino, 0, 0, collect_holds, c), 0);
	assert_string_equal(c->list[2], "alpha 0");
	tree_forget(x->t, ws.ino, 1);
	free(c);
}

/* Run fn(t, ino) in a child process; the signal that ended it (0: none) and the start of
 * what it wrote to stderr. */
static int in_child(struct tree *t, uint64_t ino, void (*fn)(struct tree *, uint64_t), char *err,
		    size_t size)
{
	int fd[2], status;
	ssize_t got;
	pid_t pid;

	assert_int_equal(pipe(fd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd[1], 2);
		fn(t, ino);
		_exit(0);
	}
	close(fd[1]);
	got = read(fd[0], err, size - 1);
	err[got > 0 ? got : 0] = '\0';
	close(fd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static void forget_twice(struct tree *t, uint64_t ino)
{
	tree_forget(t, ino, 2);
}

static void forget_once(struct tree *t, uint64_t ino)
{
	tree_forget(t, ino, 1);
}

/* Reference counts cannot lie: giving back more lookups than the kernel held aborts (an
 * assertion, kept in every build) instead of freeing a node still in use. */
static void test_an_over_forget_aborts(void **state)
{
	struct fixture *x = *state;
	struct tree_stat cs, url;
	char err[512];

	fake_add(&x->f, "1", "alpha", 1);
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha", &cs), 0); /* held once */
	assert_int_equal(in_child(x->t, cs.ino, forget_once, err, sizeof(err)), 0);
	assert_int_equal(in_child(x->t, cs.ino, forget_twice, err, sizeof(err)), SIGABRT);
	assert_non_null(strstr(err, "lookups >= nlookup"));
	/* A file's lookup is one on its node: the node itself and its file hold two. */
	assert_int_equal(tree_lookup(x->t, cs.ino, "url", &url), 0);
	assert_int_equal(in_child(x->t, url.ino, forget_twice, err, sizeof(err)), 0);
	tree_forget(x->t, url.ino, 1);
	assert_int_equal(in_child(x->t, url.ino, forget_twice, err, sizeof(err)), SIGABRT);
	assert_non_null(strstr(err, "lookups >= nlookup"));
	tree_forget(x->t, cs.ino, 1);
}

static void test_xattrs_outside_user_are_unsupported(void **state)
{
	struct fixture *x = *state;
	struct tree_stat cs;
	char buf[64];

	fake_add(&x->f, "42", "alpha", 1);
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha", &cs), 0);
	assert_int_equal(tree_getxattr(x->t, cs.ino, "user.codesrcfs.id", buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "42", 2);
	assert_int_equal(tree_getxattr(x->t, cs.ino, "user.other", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(tree_getxattr(x->t, cs.ino, "security.selinux", buf, sizeof(buf)),
			 -EOPNOTSUPP);
	assert_int_equal(tree_getxattr(x->t, cs.ino, "system.posix_acl_access", NULL, 0),
			 -EOPNOTSUPP);
	tree_forget(x->t, cs.ino, 1);
}

/* ---- readers that give up (docs/design.md §3 Interrupts) ------------------------------ */

static int flag_raised(void *ctx)
{
	return __atomic_load_n((int *)ctx, __ATOMIC_SEQ_CST);
}

struct reader {
	struct tree *t;
	uint64_t ino;
	int give_up; /* raised: the reader gives up (its cancel callback says so) */
	int cancellable;
	int r;
	struct names c;
};

static void *reader_run(void *arg)
{
	struct reader *rd = arg;

	if (rd->cancellable)
		tree_thread_cancel(flag_raised, &rd->give_up);
	rd->r = tree_readdir(rd->t, rd->ino, 0, 0, collect, &rd->c);
	tree_thread_cancel(NULL, NULL);
	return NULL;
}

static void wait_until(const int *v, int at_least)
{
	while (__atomic_load_n(v, __ATOMIC_SEQ_CST) < at_least)
		usleep(1000);
}

/* Two readers of a directory that stalls: a, then b waiting for a's fetch. */
static void two_readers(struct fixture *x, struct reader *a, struct reader *b, pthread_t th[2])
{
	struct tree_stat ws;

	fake_fill(&x->f, 5);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	a->t = b->t = x->t;
	a->ino = b->ino = ws.ino;
	x->f.stall = 1;
	assert_int_equal(pthread_create(&th[0], NULL, reader_run, a), 0);
	wait_until(&x->f.stalled, 1); /* a fetches */
	assert_int_equal(pthread_create(&th[1], NULL, reader_run, b), 0);
	usleep(50000); /* b waits for a's fetch */
}

/* A reader that gives up while it waits for another's fetch gets EINTR at once; the fetch
 * goes on and its reader gets the listing. */
static void test_a_waiter_that_gives_up_leaves_the_fetch_alone(void **state)
{
	struct fixture *x = *state;
	struct reader *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	pthread_t th[2];

	b->cancellable = 1;
	two_readers(x, a, b, th);
	__atomic_store_n(&b->give_up, 1, __ATOMIC_SEQ_CST);
	pthread_join(th[1], NULL);
	assert_int_equal(b->r, -EINTR);
	assert_int_equal(__atomic_load_n(&x->f.stall, __ATOMIC_SEQ_CST), 1); /* a still waits */
	__atomic_store_n(&x->f.stall, 0, __ATOMIC_SEQ_CST);
	pthread_join(th[0], NULL);
	assert_int_equal(a->r, 0);
	assert_int_equal(a->c.n, 2 + 5);
	assert_int_equal(x->f.stalled, 1); /* b asked nothing */
	tree_forget(x->t, a->ino, 1);
	free(a);
	free(b);
}

/* The reader that fetches gives up: it gets EINTR, nothing is installed, and the reader
 * that waited for it fetches for itself and gets the whole listing. */
static void test_a_fetcher_that_gives_up_lets_the_waiter_fetch(void **state)
{
	struct fixture *x = *state;
	struct reader *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	pthread_t th[2];

	a->cancellable = 1;
	two_readers(x, a, b, th);
	__atomic_store_n(&a->give_up, 1, __ATOMIC_SEQ_CST);
	pthread_join(th[0], NULL);
	assert_int_equal(a->r, -EINTR);
	wait_until(&x->f.stalled, 2); /* b fetches in turn */
	__atomic_store_n(&x->f.stall, 0, __ATOMIC_SEQ_CST);
	pthread_join(th[1], NULL);
	assert_int_equal(b->r, 0);
	assert_int_equal(b->c.n, 2 + 5);
	tree_forget(x->t, a->ino, 1);
	free(a);
	free(b);
}

/* ---- streaming: the pages of a cold listing reach its reader as they come ------------- */

/* A reader whose call may answer before it ends (as fs.c does): what it took when it
 * answered. */
struct streamer {
	struct tree *t;
	uint64_t ino;
	int answer; /* use tree_readdir_answer */
	off_t off;
	int r;
	int answered; /* entries taken when answered (+1), 0 before */
	int taken;    /* c.n, for another thread to read */
	struct names c;
};

static void streamer_answer(void *ctx)
{
	struct streamer *s = ctx;

	__atomic_store_n(&s->answered, s->c.n + 1, __ATOMIC_SEQ_CST);
}

static int streamer_fill(void *ctx, const char *name, const struct tree_stat *st, off_t next,
			 int holds)
{
	struct streamer *s = ctx;
	int r;

	assert_int_equal(__atomic_load_n(&s->answered, __ATOMIC_SEQ_CST), 0);
	r = collect(&s->c, name, st, next, holds);
	__atomic_store_n(&s->taken, s->c.n, __ATOMIC_SEQ_CST);
	return r;
}

static void *streamer_run(void *arg)
{
	struct streamer *s = arg;

	s->r = tree_readdir_answer(s->t, s->ino, s->off, 0, streamer_fill,
				   s->answer ? streamer_answer : NULL, s);
	if (!s->answered)
		__atomic_store_n(&s->answered, s->c.n + 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* One readdir call from off into s (its names kept); 0 or -errno. */
static int streamer_call(struct streamer *s, off_t off)
{
	s->off = off;
	__atomic_store_n(&s->answered, 0, __ATOMIC_SEQ_CST);
	streamer_run(s);
	return s->r;
}

/* The workspace of 100 entries in pages of 10, its first page read; the last page held. */
static void stream_begin(struct fixture *x, struct streamer *s, struct tree_stat *ws)
{
	if (!x->f.n) /* else the test filled it */
		fake_fill(&x->f, 100);
	assert_int_equal(path_lookup(x->t, "/fake/ws", ws), 0);
	s->t = x->t;
	s->ino = ws->ino;
	assert_int_equal(streamer_call(s, 0), 0);
	assert_int_equal(s->c.n, 2 + 10); /* ".", "..", the first page */
	pthread_mutex_lock(&x->f.lock);
	x->f.list_calls = 0; /* the root's and the first page's so far */
	pthread_mutex_unlock(&x->f.lock);
	x->f.hold_from = 10;
	__atomic_store_n(&x->f.hold, 1, __ATOMIC_SEQ_CST);
}

/* Every one of the fake's n entries once, by its name, after "." and "..". */
static void stream_check_all(const struct streamer *s, int n)
{
	assert_int_equal(s->c.n, 2 + n);
	for (int i = 0; i < n; i++) {
		char id[16];
		int found = 0;

		snprintf(id, sizeof(id), "%d", 100 + i);
		for (int k = 2; k < s->c.n; k++)
			found += !strcmp(s->c.list[k], id);
		assert_int_equal(found, 1);
	}
}

/* stream_begin, then the reader's own call from the end of the first page on thread *th:
 * once it answered with what came first (it goes on fetching the rest). */
static void stream_answered(struct fixture *x, struct streamer *s, struct tree_stat *ws,
			    pthread_t *th)
{
	s->answer = 1;
	stream_begin(x, s, ws);
	s->off = s->c.next;
	s->answered = 0;
	assert_int_equal(pthread_create(th, NULL, streamer_run, s), 0);
	wait_until(&s->answered, 1);
}

/* The reader's own call fetches the rest: it answers with the pages that came while the
 * last one is still held, goes on to install the rest, and the reader's next call gets it:
 * every entry once. */
static void test_a_readers_call_answers_with_the_pages_that_came(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s));
	struct tree_stat ws;
	pthread_t th;
	int got;

	stream_answered(x, s, &ws, &th);
	got = s->answered - 1;
	assert_true(got > 2 + 10);  /* more than the first page */
	assert_true(got < 2 + 100); /* before the last one, held until page 10 waits */
	wait_until(&x->f.held, 1);
	__atomic_store_n(&x->f.hold, 0, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	assert_int_equal(s->r, 0);
	assert_int_equal(s->c.n, got); /* nothing taken after the answer */
	while (streamer_call(s, s->c.next) == 0 && s->c.n > got)
		got = s->c.n;
	assert_int_equal(s->r, 0);
	stream_check_all(s, 100);
	assert_int_equal(x->f.list_calls, 9); /* pages 2..10, once each */
	tree_forget(x->t, ws.ino, 1);
	free(s);
}

/* A reader at the end of the first page while another call fetches the rest goes on in the
 * longer partial listings as they come, not after the last page. */
static void test_a_waiting_reader_gets_the_pages_that_came(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s)), *a = calloc(1, sizeof(*a));
	struct tree_stat ws;
	pthread_t th;

	pthread_t ts;

	stream_begin(x, s, &ws);
	*a = *s; /* another reader at the end of the same first page fetches the rest */
	a->off = s->off = s->c.next;
	a->answered = s->answered = 0;
	__atomic_store_n(&x->f.stall, 1, __ATOMIC_SEQ_CST); /* until s waits too */
	assert_int_equal(pthread_create(&th, NULL, streamer_run, a), 0);
	wait_until(&x->f.stalled, 1);
	assert_int_equal(pthread_create(&ts, NULL, streamer_run, s), 0);
	usleep(50000); /* s waits for a's fetch */
	__atomic_store_n(&x->f.stall, 0, __ATOMIC_SEQ_CST);
	wait_until(&s->answered, 1); /* s's call returns: a partial listing came */
	pthread_join(ts, NULL);
	assert_int_equal(s->r, 0);
	assert_true(s->c.n > 2 + 10);
	assert_true(s->c.n < 2 + 100); /* before the last page, held until page 10 waits */
	wait_until(&x->f.held, 1);
	__atomic_store_n(&x->f.hold, 0, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	assert_int_equal(a->r, 0);
	for (int n = s->c.n; streamer_call(s, s->c.next) == 0 && s->c.n > n;)
		n = s->c.n;
	assert_int_equal(s->r, 0);
	stream_check_all(s, 100);
	assert_int_equal(x->f.list_calls, 9);
	tree_forget(x->t, ws.ino, 1);
	free(a);
	free(s);
}

/* How many of names' entries after "." and ".." are name. */
static int names_count(const struct names *c, const char *name)
{
	int found = 0;

	for (int k = 2; k < c->n; k++)
		found += !strcmp(c->list[k], name);
	return found;
}

/* A reader that reads on from where it stands to the end of the directory. */
static void *streamer_to_end(void *arg)
{
	struct streamer *s = arg;
	int n;

	do {
		n = s->c.n;
		streamer_call(s, s->c.next);
	} while (s->r == 0 && s->c.n > n);
	return NULL;
}

/* The entries s took, once it took want or ms milliseconds went by. */
static int taken_within(struct streamer *s, int want, int ms)
{
	int got;

	while ((got = __atomic_load_n(&s->taken, __ATOMIC_SEQ_CST)) < want && ms-- > 0)
		usleep(1000);
	return got;
}

/* Another reader, next, reads on from where s stands to the end, on thread *th, as the
 * kernel's next calls would. */
static void stream_follow(const struct streamer *s, struct streamer *next, pthread_t *th)
{
	*next = *s;
	assert_int_equal(pthread_create(th, NULL, streamer_to_end, next), 0);
}

/* The held pages let go; s's call and next's read end, each with every entry it wanted. */
static void stream_release(struct fixture *x, struct streamer *s, struct streamer *next,
			   pthread_t th[2])
{
	__atomic_store_n(&x->f.hold, 0, __ATOMIC_SEQ_CST);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	assert_int_equal(s->r, 0);
	assert_int_equal(next->r, 0);
}

/* The generation of directory ino: its mtime's nanoseconds, which move with each listing. */
static long dir_gen(struct fixture *x, uint64_t ino)
{
	struct tree_stat st;

	assert_int_equal(tree_getattr(x->t, ino, &st), 0);
	return st.mtime_ns;
}

/* The page that completes a listing makes it whole as it comes: one listing more, not that
 * page appended and then the whole listing installed again once the pager has merged. */
static void test_the_last_page_makes_a_streamed_listing_whole(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s)), *next = calloc(1, sizeof(*next));
	struct tree_stat ws;
	pthread_t th[2];
	long gen;

	stream_answered(x, s, &ws, &th[0]);
	stream_follow(s, next, &th[1]);
	wait_until(&x->f.held, 1);
	/* Pages 1 to 9 are listed and read: next waits at their end for page 10. */
	assert_int_equal(taken_within(next, 2 + 90, 5000), 2 + 90);
	gen = dir_gen(x, ws.ino);
	stream_release(x, s, next, th);
	stream_check_all(next, 100);
	assert_int_equal(dir_gen(x, ws.ino), gen + 1);
	tree_forget(x->t, ws.ino, 1);
	free(next);
	free(s);
}

/* Once every page was asked for, a reader waiting at the end of what came gets each page
 * that comes, though it adds far less than a quarter of the listing: what is left for it
 * when the last page comes is that page. 400 entries in pages of 10; pages 35 to 40 are
 * held, then let go one by one. */
static void test_a_waiting_reader_gets_each_page_once_all_are_asked_for(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s)), *next = calloc(1, sizeof(*next));
	struct tree_stat ws;
	pthread_t th[2];
	int got[2];

	fake_fill(&x->f, 400);
	s->answer = 1;
	stream_begin(x, s, &ws);
	__atomic_store_n(&x->f.hold_from, 35, __ATOMIC_SEQ_CST);
	s->off = s->c.next;
	s->answered = 0;
	assert_int_equal(pthread_create(&th[0], NULL, streamer_run, s), 0);
	wait_until(&s->answered, 1);
	stream_follow(s, next, &th[1]);
	wait_until(&x->f.held, 6); /* pages 35 to 40: every page was asked for */
	for (int k = 0; k < 2; k++) {
		usleep(50000); /* next waits at the end of what it was given */
		__atomic_store_n(&x->f.hold_from, 36 + k, __ATOMIC_SEQ_CST); /* page 35 + k */
		got[k] = taken_within(next, 2 + 350 + 10 * k, 5000);
	}
	stream_release(x, s, next, th); /* the threads end before a check of got */
	assert_int_equal(got[0], 2 + 350);
	assert_int_equal(got[1], 2 + 360); /* page 36 alone, a fortieth of the listing */
	stream_check_all(next, 400);
	tree_forget(x->t, ws.ino, 1);
	free(next);
	free(s);
}

/* Entry 101 (page 1) and entry 145 (page 5) share the name "dup", 145 created at ctime_145
 * (101 at 11). The reader at the end of the first page reads on while page 10 is held:
 * *streamed, the entries it had once it had pages 1 to 9 or 2 s went by after page 10 was
 * asked for; then the whole directory read afresh into *after. */
static void stream_namesakes(struct fixture *x, int64_t ctime_145, int *streamed,
			     struct names *after)
{
	struct streamer *s = calloc(1, sizeof(*s)), *next = calloc(1, sizeof(*next));
	struct tree_stat ws;
	pthread_t th[2];

	fake_fill(&x->f, 100);
	snprintf(x->f.e[1].name, sizeof(x->f.e[1].name), "dup");
	snprintf(x->f.e[45].name, sizeof(x->f.e[45].name), "dup");
	x->f.e[45].ctime = ctime_145;
	/* Its call answers with what came first and goes on fetching; the next calls come on
	 * another thread, as the kernel's do. */
	stream_answered(x, s, &ws, &th[0]);
	stream_follow(s, next, &th[1]);
	wait_until(&x->f.held, 1); /* every page but the held one was asked for */
	*streamed = taken_within(next, 2 + 90, 2000);
	stream_release(x, s, next, th);
	assert_int_equal(read_dir(x->t, "/fake/ws", after), 0);
	assert_int_equal(after->n, 2 + 100);
	tree_forget(x->t, ws.ino, 1);
	free(next);
	free(s);
}

/* A later page's entry named as one listed before, and younger: the stream goes on past it
 * (the pages come oldest first), and names it as a whole listing would: "dup~<its id>". */
static void test_a_stream_names_a_younger_namesake_as_a_whole_listing_would(void **state)
{
	struct fixture *x = *state;
	struct names *after = calloc(1, sizeof(*after));
	int streamed;

	stream_namesakes(x, 55, &streamed, after);
	assert_int_equal(streamed, 2 + 90); /* pages 1 to 9, while page 10 was held */
	assert_int_equal(names_count(after, "dup"), 1);
	assert_int_equal(names_count(after, "dup~145"), 1);
	assert_int_equal(names_count(after, "dup~101"), 0);
	free(after);
}

/* A later page's entry named as one listed before, and older: a whole listing gives it
 * the name and the one listed before "dup~101". A stream cannot rename what it listed,
 * so it stops there, and the whole listing is installed as any other: the same names. */
static void test_a_stream_stops_at_an_older_namesake(void **state)
{
	struct fixture *x = *state;
	struct names *after = calloc(1, sizeof(*after));
	int streamed;

	stream_namesakes(x, 5, &streamed, after);
	assert_true(streamed < 2 + 50); /* nothing from page 5 on while page 10 was held */
	assert_int_equal(names_count(after, "dup"), 1);
	assert_int_equal(names_count(after, "dup~101"), 1);
	assert_int_equal(names_count(after, "dup~145"), 0);
	free(after);
}

/* A look-up between the first page and the rest finds its entry with the cloud's name
 * filter and seeds the directory with it. When the entry's page is streamed, it is that
 * entry, not a namesake: the reader gets it once, by its own name, as a whole listing
 * names it (the stream once named it "145~145" beside the seeded "145"). */
static void test_a_stream_does_not_rename_an_entry_a_look_up_found(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s)), *a = calloc(1, sizeof(*a));
	struct tree_stat ws, e;
	pthread_t th, ts;
	int ms;

	stream_begin(x, s, &ws);
	x->f.hold_from = 6; /* pages 2 to 5 come, 145's the last of them */
	assert_int_equal(path_lookup(x->t, "/fake/ws/145", &e), 0);
	assert_int_equal(x->f.lookup_calls, 1);
	tree_forget(x->t, e.ino, 1);
	*a = *s; /* another reader at the end of the same first page fetches the rest */
	a->off = s->off = s->c.next;
	a->answered = s->answered = 0;
	__atomic_store_n(&x->f.stall, 1, __ATOMIC_SEQ_CST); /* until s waits too */
	assert_int_equal(pthread_create(&th, NULL, streamer_run, a), 0);
	wait_until(&x->f.stalled, 1);
	assert_int_equal(pthread_create(&ts, NULL, streamer_run, s), 0);
	usleep(50000); /* s waits for a's fetch */
	__atomic_store_n(&x->f.stall, 0, __ATOMIC_SEQ_CST);
	wait_until(&x->f.held, 1);
	for (ms = 0; ms < 1000 && !__atomic_load_n(&s->answered, __ATOMIC_SEQ_CST); ms++)
		usleep(1000);
	if (ms < 1000) { /* streamed: s reads on through what came while the rest is held */
		pthread_join(ts, NULL);
		assert_int_equal(pthread_create(&ts, NULL, streamer_to_end, s), 0);
		taken_within(s, 2 + 50, 1000);
	}
	__atomic_store_n(&x->f.hold, 0, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	pthread_join(ts, NULL);
	streamer_to_end(s);
	assert_int_equal(s->r, 0);
	stream_check_all(s, 100);
	tree_forget(x->t, ws.ino, 1);
	free(a);
	free(s);
}

/* list_page answers err from now on (0: no failure). */
static void fake_fail(struct fixture *x, int err)
{
	pthread_mutex_lock(&x->f.lock);
	x->f.fail = err;
	pthread_mutex_unlock(&x->f.lock);
}

/* stream_answered, then the held last page fails: the reader's call, which answered early,
 * ends with the fetch. */
static void stream_fails(struct fixture *x, struct streamer *s, struct tree_stat *ws)
{
	pthread_t th;

	stream_answered(x, s, ws, &th);
	wait_until(&x->f.held, 1);
	fake_fail(x, -EIO);
	__atomic_store_n(&x->f.hold, 0, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
}

/* The last page fails after the others reached the reader: its next call gets the pages
 * that came, then the error, and the listing is not asked for a second time for it. */
static void test_a_stream_that_fails_gives_its_error_once(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s)), *next = calloc(1, sizeof(*next));
	struct tree_stat ws;

	stream_fails(x, s, &ws);
	*next = *s;
	streamer_to_end(next);
	assert_int_equal(next->r, -EIO);
	assert_true(next->c.n > 2 + 10);
	assert_int_equal(x->f.list_calls, 9); /* pages 2..10, once each */
	tree_forget(x->t, ws.ino, 1);
	free(next);
	free(s);
}

/* The error a stream that failed left for the next reader at its end outlived the listings
 * it grew: after SIGHUP a read from the start got a new first page, then that error at its
 * end. The rest is fetched for the new page now. */
static void test_a_streams_error_goes_with_its_listing(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s));
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat ws;

	stream_fails(x, s, &ws);
	fake_fail(x, 0);
	tree_flush(x->t);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(c->n, 2 + 100);
	tree_forget(x->t, ws.ino, 1);
	free(c);
	free(s);
}

/* The error a failed stream leaves is for the readers of the listings it grew: a reader who
 * comes after it reads the directory afresh, not that error at the end of the first page. */
static void test_a_reader_after_a_failed_stream_starts_afresh(void **state)
{
	struct fixture *x = *state;
	struct streamer *s = calloc(1, sizeof(*s));
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat ws;

	stream_fails(x, s, &ws);
	fake_fail(x, 0);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(c->n, 2 + 100);
	tree_forget(x->t, ws.ino, 1);
	free(c);
	free(s);
}

/* A look-up that gives up while the name filter stalls gets EINTR and remembers no miss. */
static void test_a_lookup_that_gives_up(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st;
	int give_up = 1;

	fake_add(&x->f, "1", "alpha", 1);
	assert_int_equal(path_stat(x->t, "/fake/ws", &st), 0);
	x->f.stall = 1;
	tree_thread_cancel(flag_raised, &give_up);
	assert_int_equal(path_stat(x->t, "/fake/ws/alpha/url", &st), -EINTR);
	tree_thread_cancel(NULL, NULL);
	x->f.stall = 0;
	assert_int_equal(path_stat(x->t, "/fake/ws/alpha/url", &st), 0);
}

/* ---- tree_refresh: one directory again now, and what changed ---------------------------- */

static void test_refresh_lists_now_and_tells_the_changes(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct told *w = watch(x->t);
	struct tree_stat ws;
	char *text;
	size_t len;
	int calls;

	fake_add(&x->f, "1", "alpha", 1);
	fake_add(&x->f, "2", "beta", 2);
	fake_add(&x->f, "3", "gamma", 3);
	fake_add(&x->f, "4", "delta", 4);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	calls = x->f.list_calls;

	x->f.e[0].moved = 1;   /* alpha's url changes */
	x->f.e[1] = x->f.e[3]; /* beta is gone; delta moves up */
	x->f.e[2].branch = 1;  /* gamma gains a branch */
	snprintf(x->f.e[3].id, sizeof(x->f.e[3].id), "5");
	snprintf(x->f.e[3].name, sizeof(x->f.e[3].name), "epsilon"); /* epsilon is new */
	assert_int_equal(tree_refresh(x->t, ws.ino, &text, &len), 0);
	assert_int_equal(x->f.list_calls, calls + 1); /* though the listing was fresh */
	assert_int_equal(len, strlen(text));
	assert_string_equal(text, "- beta\n~ alpha\n~ gamma\n+ epsilon\n");
	assert_true(was_told(w, "inode %llx", (unsigned long long)ws.ino)); /* the kernel's copy */
	free(text);

	c->n = 0;
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_true(has(c, "epsilon"));
	assert_false(has(c, "beta"));
	assert_int_equal(tree_refresh(x->t, ws.ino, &text, &len), 0);
	assert_int_equal(len, 0); /* nothing changed since */
	free(text);
	tree_watch(x->t, NULL);
	tree_forget(x->t, ws.ino, 1);
	free(w);
	free(c);
}

static void test_refresh_of_what_lists_nothing(void **state)
{
	struct fixture *x = *state;
	struct tree_stat ws, cs, url;
	char *text;
	size_t len;

	fake_add(&x->f, "1", "alpha", 1);
	fake_add(&x->f, "2", "beta", 2);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(tree_refresh(x->t, ws.ino, &text, &len), 0);
	assert_string_equal(text, "+ alpha\n+ beta\n"); /* never listed: all is new */
	free(text);
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha", &cs), 0);
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha/url", &url), 0);
	assert_int_equal(tree_refresh(x->t, cs.ino, &text, &len), -ENOTDIR);
	assert_int_equal(tree_refresh(x->t, url.ino, &text, &len), -ENOTDIR);
	assert_int_equal(tree_refresh(x->t, TREE_ROOT, &text, &len), 0); /* fixed */
	assert_int_equal(len, 0);
	free(text);
	x->f.fail = -EIO;
	assert_int_equal(tree_refresh(x->t, ws.ino, &text, &len), -EIO); /* said, not hidden */
	assert_null(text);
	tree_forget(x->t, url.ino, 1);
	tree_forget(x->t, cs.ino, 1);
	tree_forget(x->t, ws.ino, 1);
}

/* The tree anew with dir_ttl ttl (the fake's entries stay). */
static void retree(struct fixture *x, long ttl)
{
	struct provider *p = &x->f.base;
	struct tree_opts o = {.dir_ttl = ttl, .attr_ttl = 30, .neg_ttl = 10, .parallel = 4};

	tree_free(x->t);
	x->t = tree_new(&p, 1, &o);
	assert_non_null(x->t);
}

/* A reader whose buffer holds `room` entries a call, as a getdents buffer does. */
struct chunked {
	struct names *names;
	int room, taken;
};

static int collect_chunk(void *ctx, const char *name, const struct tree_stat *st, off_t next,
			 int holds)
{
	struct chunked *k = ctx;

	if (k->taken == k->room)
		return 1;
	k->taken++;
	assert_true(next > 0 && (uint64_t)next < (UINT64_C(1) << 62)); /* as the kernel keeps it */
	return collect(k->names, name, st, next, holds);
}

/* One call of a chunked reader at the offset it reached; entries it got. */
static int read_chunk(struct tree *t, uint64_t ino, struct names *c, int room)
{
	struct chunked k = {.names = c, .room = room};

	assert_int_equal(tree_readdir(t, ino, c->next, 0, collect_chunk, &k), 0);
	return k.taken;
}

/* The rest of a chunked read, to the empty answer that ends it. */
static void read_to_end(struct tree *t, uint64_t ino, struct names *c, int room)
{
	while (read_chunk(t, ino, c, room) > 0)
		;
}

/* Each name of c once; and n names in all. */
static void assert_once(const struct names *c, int n)
{
	assert_int_equal(c->n, n);
	for (int i = 0; i < c->n; i++)
		for (int j = i + 1; j < c->n; j++)
			assert_string_not_equal(c->list[i], c->list[j]);
}

/* The fake's oldest k entries go and k newer ones come. */
static void fake_churn(struct fake *f, int k, const char *tag)
{
	char id[32];

	memmove(&f->e[0], &f->e[k], (f->n - k) * sizeof(f->e[0]));
	f->n -= k;
	for (int i = 0; i < k; i++) {
		snprintf(id, sizeof(id), "%s%d", tag, i);
		fake_add(f, id, id, 100000 + f->n);
	}
}

/* docs/design.md §3: a read that began before a refresh returns every entry that existed
 * throughout, once. A reader part-way through when the oldest entries go (every offset
 * after them would shift) and the listing expires finishes on the listing it began on,
 * without listing again. */
static void test_a_read_keeps_its_listing_across_refreshes(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c)), *again = calloc(1, sizeof(*again));
	struct tree_stat ws;
	int calls;

	fake_fill(&x->f, 35);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	read_to_end(x->t, ws.ino, again, 1000);
	fake_clock += 61;
	assert_int_equal(read_chunk(x->t, ws.ino, c, 12), 12); /* refreshes: it expired */
	calls = x->f.list_calls;
	fake_churn(&x->f, 5, "new");
	fake_clock += 61;
	read_to_end(x->t, ws.ino, c, 7);
	assert_int_equal(x->f.list_calls, calls); /* no listing in the middle of a read */
	assert_once(c, 2 + 35);
	assert_true(has(c, "100") && has(c, "104") && has(c, "134") && !has(c, "new0"));
	again->n = 0;
	again->next = 0;
	read_to_end(x->t, ws.ino, again, 1000); /* a read that begins now sees the change */
	assert_once(again, 2 + 35);
	assert_true(has(again, "new4") && !has(again, "104"));
	tree_forget(x->t, ws.ino, 1);
	free(again);
	free(c);
}

/* dir_ttl=0 trusts no listing, yet one read costs one listing: a reader part-way keeps
 * the listing it began with, and a reader at the end of a first page gets the rest with
 * that page, not asked for again. */
static void test_one_read_costs_one_listing_at_dir_ttl_0(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat ws;
	int calls;

	retree(x, 0);
	fake_fill(&x->f, 35);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	for (int round = 0; round < 2; round++) {
		c->n = 0;
		c->next = 0;
		calls = x->f.list_calls;
		read_to_end(x->t, ws.ino, c, 3);
		assert_once(c, 2 + 35);
		assert_int_equal(x->f.list_calls - calls, 4); /* pages of 10 */
	}
	tree_forget(x->t, ws.ino, 1);
	free(c);
}

/* A reader that keeps reading keeps its listing however many refreshes others make; one
 * unread for TREE_LISTING_IDLE (30 s) is let go, and its reader goes on in the current
 * listing, as before listings were kept. */
static void test_a_reader_keeps_its_listing_while_others_refresh(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c)), *other = calloc(1, sizeof(*other));
	struct tree_stat ws;
	char tag[16];

	retree(x, 10);
	fake_fill(&x->f, 35);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(read_chunk(x->t, ws.ino, c, 2), 2);
	read_to_end(x->t, ws.ino, other, 1000); /* whole now */
	for (int i = 0; i < 10; i++) {
		snprintf(tag, sizeof(tag), "g%d-", i);
		fake_churn(&x->f, 1, tag);
		fake_clock += 11;
		other->n = 0;
		other->next = 0;
		read_to_end(x->t, ws.ino, other, 1000);
		assert_true(has(other, "g0-0"));
		assert_true(read_chunk(x->t, ws.ino, c, 3) > 0); /* short at page 1's end */
	}
	read_to_end(x->t, ws.ino, c, 3);
	assert_once(c, 2 + 35);
	assert_true(has(c, "100") && !has(c, "g0-0")); /* page 1 as it was, then the rest */

	c->n = 0;
	c->next = 0;
	assert_int_equal(read_chunk(x->t, ws.ino, c, 4), 4);
	fake_churn(&x->f, 3, "late");
	fake_clock += 31;
	other->n = 0;
	other->next = 0;
	read_to_end(x->t, ws.ino, other, 1000);
	read_to_end(x->t, ws.ino, c, 3);
	assert_true(has(c, "late0")); /* its listing went; the current one served */
	tree_forget(x->t, ws.ino, 1);
	free(other);
	free(c);
}

/* A reader part-way through a first page stops for longer than a superseded listing is kept
 * unread (30 s); meanwhile an entry it was given goes and a look-up makes the listing whole,
 * keeping the page's survivors in front. The page stays while that whole listing continues
 * it: the reader goes on after the survivors it had, not at the same position of the whole
 * listing, which would step over the first one it had not been given. */
static void test_a_first_page_stays_while_the_whole_listing_continues_it(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat ws, st;
	char name[16];

	fake_fill(&x->f, 35);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(read_chunk(x->t, ws.ino, c, 4), 4); /* ".", "..", "100", "101" */
	fake_churn(&x->f, 1, "new");			     /* "100" goes */
	fake_clock += 31;
	assert_int_equal(path_stat(x->t, "/fake/ws/x~y", &st), -ENOENT); /* lists it all */
	read_to_end(x->t, ws.ino, c, 3);
	for (int i = 100; i < 135; i++) {
		snprintf(name, sizeof(name), "%d", i);
		assert_int_equal(names_count(c, name), 1);
	}
	tree_forget(x->t, ws.ino, 1);
	free(c);
}

/* An entry of an older listing that is no longer its directory's child under that name
 * (gone, renamed) is given without a lookup: the kernel would keep a dentry a refresh had
 * just dropped. The rest hold one as before, and every lookup given is forgotten. */
static void test_an_older_listing_gives_lookups_of_current_children_only(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c)), *held = calloc(1, sizeof(*held));
	struct plus *q = calloc(1, sizeof(*q));
	struct tree_stat ws;

	retree(x, 10); /* a listing unread for 30 s is let go: expire before that */
	fake_add(&x->f, "1", "alpha", 1);
	fake_add(&x->f, "2", "beta", 2);
	fake_add(&x->f, "3", "gamma", 3);
	fake_add(&x->f, "4", "delta", 4);
	assert_int_equal(path_lookup(x->t, "/fake/ws", &ws), 0);
	assert_int_equal(read_dir_plus(x->t, ws.ino, q), 0); /* whole, and the kernel holds all */
	assert_int_equal(read_chunk(x->t, ws.ino, c, 3), 3); /* ".", "..", "alpha" */
	x->f.e[1] = x->f.e[3];				     /* beta is gone, delta moves up */
	x->f.n = 3;
	snprintf(x->f.e[2].name, sizeof(x->f.e[2].name), "gamma2");
	fake_clock += 11;
	forget_all(x->t, q);
	q->names.n = 0;
	assert_int_equal(read_dir_plus(x->t, ws.ino, q), 0); /* refreshed */
	assert_true(has(&q->names, "gamma2") && !has(&q->names, "beta"));
	forget_all(x->t, q);
	assert_int_equal(tree_readdir(x->t, ws.ino, c->next, 1, collect_holds, held), 0);
	assert_int_equal(held->n, 3);
	assert_string_equal(held->list[0], "beta 0");
	assert_string_equal(held->list[1], "gamma 0");
	assert_string_equal(held->list[2], "delta 1");
	tree_forget(x->t, ino_of(x->t, "/fake/ws/delta"), 1);
	tree_forget(x->t, ws.ino, 1);
	free(q);
	free(held);
	free(c);
}

/* A record complete() filled in is kept, whole, through refreshes whose listings lack
 * what it filled in, though each refresh frees the memory of the listing before (ASan
 * sees every read of it). */
static void test_a_completed_record_outlives_its_listing(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	char buf[64];

	x->f.incomplete = 1;
	fake_add(&x->f, "1", "alpha", 1);
	fake_add(&x->f, "2", "beta", 2);
	assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	assert_int_equal(path_read(x->t, "/fake/ws/alpha/url", buf, sizeof(buf), 0), 26);
	for (int i = 0; i < 3; i++) {
		fake_clock += 61;
		c->n = 0;
		assert_int_equal(read_dir(x->t, "/fake/ws", c), 0);
	}
	assert_int_equal(path_read(x->t, "/fake/ws/alpha/url", buf, sizeof(buf), 0), 26);
	assert_memory_equal(buf, "https://git.example/1.git\n", 26);
	assert_int_equal(x->f.complete_calls, 1);
	free(c);
}

static void fake_ws_add(struct fake *f, const char *id, const char *label, int64_t ctime)
{
	struct fake_ws *w = &f->ws[f->nws++];

	snprintf(w->id, sizeof(w->id), "%s", id);
	snprintf(w->label, sizeof(w->label), "%s", label);
	w->ctime = ctime;
}

/* docs/design.md §1: a workspace with a display name has a symbolic link of that name
 * beside its directory, named by the rules of names.c with every id directory's name
 * taken: an id directory keeps its name whatever the links are called. */
static void test_names_beside_ids(void **state)
{
	static const char *const want[] = {".",	   "..",	"1001", "team", "1002", "team~1002",
					   "1003", "1001~1003", "1004", "1005", "a_b"};
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat st, dir;
	char buf[300];

	fake_ws_add(&x->f, "1001", "team", 1);
	fake_ws_add(&x->f, "1002", "team", 2); /* younger: not the name's */
	fake_ws_add(&x->f, "1003", "1001", 3); /* an id's name: the directory keeps it */
	fake_ws_add(&x->f, "1004", "", 4);     /* no display name, no link */
	fake_ws_add(&x->f, "1005", "a/b", 5);  /* made safe */
	assert_int_equal(read_dir(x->t, "/fake", c), 0);
	assert_int_equal(c->n, sizeof(want) / sizeof(*want));
	for (int i = 0; i < c->n; i++) /* each link right after its directory */
		assert_string_equal(c->list[i], want[i]);
	assert_int_equal(path_lookup(x->t, "/fake/team~1002", &st), 0);
	assert_true(st.is_link);
	assert_false(st.is_dir);
	assert_int_equal(st.size, 4);
	assert_int_equal(tree_readlink(x->t, st.ino, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "1002");
	assert_int_equal(tree_readlink(x->t, st.ino, buf, 4), -ENAMETOOLONG);
	assert_int_equal(tree_getxattr(x->t, st.ino, "user.codesrcfs.id", buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "1002", 4);
	assert_int_equal(tree_getxattr(x->t, st.ino, "user.codesrcfs.provider", buf, 4), 4);
	assert_memory_equal(buf, "fake", 4);
	assert_int_equal(tree_getxattr(x->t, st.ino, "user.codesrcfs.web_url", NULL, 0),
			 (int)strlen("https://console.example/1002"));
	assert_int_equal(tree_lookup(x->t, st.ino, "meta.json", &dir), -ENOENT);
	assert_int_equal(tree_lookup(x->t, st.ino, "x", &dir), -ENOENT);
	tree_forget(x->t, st.ino, 1);
	assert_int_equal(path_lookup(x->t, "/fake/1002", &dir), 0);
	assert_true(dir.is_dir);
	assert_false(dir.is_link);
	assert_int_equal(tree_readlink(x->t, dir.ino, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(tree_listxattr(x->t, dir.ino, NULL, 0),
			 tree_listxattr(x->t, st.ino, NULL, 0));
	tree_forget(x->t, dir.ino, 1);
	assert_int_equal(x->f.list_calls, 1);
	free(c);
	/* .index.jsonl lists the directories alone: no link is one. */
	char *index = calloc(1, 4096);
	int len = path_read(x->t, "/fake/.index.jsonl", index, 4095, 0);
	int lines = 0;

	assert_true(len > 0);
	for (int i = 0; i < len; i++)
		lines += index[i] == '\n';
	assert_int_equal(lines, 5);
	assert_non_null(strstr(index, "\"name\":\"1005\""));
	assert_null(strstr(index, "team"));
	assert_null(strstr(index, "a_b"));
	free(index);
}

/* A renamed workspace's link follows at the next refresh, the same node under its new name;
 * the old name the kernel held is dropped, and a name that passes to another workspace's
 * link is dropped too. Links a readdirplus gave hold lookups like any entry. */
static void test_a_renamed_name_follows(void **state)
{
	struct fixture *x = *state;
	struct plus *p = calloc(1, sizeof(*p));
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat root, link, again;
	struct told *w = watch(x->t);
	char buf[64];

	fake_ws_add(&x->f, "1001", "team", 1);
	fake_ws_add(&x->f, "1002", "ops", 2);
	assert_int_equal(path_lookup(x->t, "/fake", &root), 0);
	assert_int_equal(read_dir_plus(x->t, root.ino, p), 0);
	assert_int_equal(p->n, 4); /* two directories, two links */
	assert_int_equal(path_lookup(x->t, "/fake/team", &link), 0);
	snprintf(x->f.ws[0].label, sizeof(x->f.ws[0].label), "renamed");
	fake_clock += 61;
	assert_int_equal(read_dir(x->t, "/fake", c), 0);
	assert_true(has(c, "renamed"));
	assert_false(has(c, "team"));
	assert_true(was_told(w, "entry %llx team gone", (unsigned long long)root.ino));
	assert_int_equal(path_stat(x->t, "/fake/renamed", &again), 0);
	assert_int_equal(again.ino, link.ino);
	assert_int_equal(tree_readlink(x->t, link.ino, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "1001");

	x->f.ws[0].label[0] = '\0'; /* 1001 loses its name, which 1002 takes */
	snprintf(x->f.ws[1].label, sizeof(x->f.ws[1].label), "renamed");
	fake_clock += 61;
	c->n = 0;
	assert_int_equal(read_dir(x->t, "/fake", c), 0);
	assert_true(was_told(w, "entry %llx renamed gone", (unsigned long long)root.ino));
	assert_int_equal(path_lookup(x->t, "/fake/renamed", &again), 0);
	assert_int_not_equal(again.ino, link.ino);
	assert_int_equal(tree_readlink(x->t, again.ino, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "1002");
	assert_false(has(c, "ops"));
	tree_forget(x->t, again.ino, 1);
	tree_forget(x->t, link.ino, 1); /* the old link, gone from the listing, still held */
	forget_all(x->t, p);
	tree_watch(x->t, NULL);
	tree_forget(x->t, root.ino, 1);
	free(w);
	free(c);
	free(p);
}

/* A reader part-way through the first page of a root with names beside its ids goes on
 * in the whole listing with each entry once: a link keeps its place in front as its
 * directory does, though they share an id. */
static void test_first_page_keeps_its_links_in_place(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	struct tree_stat root;
	char id[16], label[32];

	for (int i = 0; i < 25; i++) {
		snprintf(id, sizeof(id), "%d", 2000 + i);
		snprintf(label, sizeof(label), "team-%02d", i);
		fake_ws_add(&x->f, id, label, i + 1);
	}
	assert_int_equal(path_lookup(x->t, "/fake", &root), 0);
	assert_int_equal(read_chunk(x->t, root.ino, c, 7), 7); /* into the first page */
	assert_int_equal(x->f.list_calls, 1);
	read_to_end(x->t, root.ino, c, 7);
	assert_once(c, 2 + 2 * 25);
	assert_int_equal(x->f.list_calls, 3);
	tree_forget(x->t, root.ino, 1);
	free(c);
}

/* The lines of file path that hold needle. */
static int lines_with(const char *path, const char *needle)
{
	char line[2048];
	FILE *f = fopen(path, "r");
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* A server that nests directories without end (a new id at every level, so no cycle to
 * refuse) made an endless tree, and `find` over it never ended (docs/design.md §4). */
static void test_depth_is_bounded(void **state)
{
	struct fixture *x = *state;
	struct names *c = calloc(1, sizeof(*c));
	char logpath[] = "/tmp/codesrcfs-depth-XXXXXX", path[900], deepest[1024];
	const char *said = "is 64 levels deep, the most docs/design.md §4 allows";
	struct tree_stat st;
	size_t len = (size_t)snprintf(path, sizeof(path), "/fake/ws");
	int fd = mkstemp(logpath), n;
	char index[4096];

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(log_set_file(logpath), 0);
	fake_add(&x->f, "100", "plain", 10);
	x->f.nest = 1;
	/* Levels 2 to 64 below the provider's directory, found by name (the filter). */
	for (int k = 1; k <= 63; k++)
		len += (size_t)snprintf(path + len, sizeof(path) - len, "/n%d", k);
	assert_int_equal(path_stat(x->t, path, &st), 0);
	assert_true(st.is_dir);
	snprintf(deepest, sizeof(deepest), "%s/n64", path);
	assert_int_equal(path_stat(x->t, deepest, &st), -ENOENT);
	assert_int_equal(lines_with(logpath, said), 1);

	/* Listed, the deepest lists its entries but no directory, here and in its index. */
	assert_int_equal(read_dir(x->t, path, c), 0);
	assert_int_equal(c->n, 3);
	assert_true(has(c, "plain"));
	assert_false(has(c, "n64"));
	snprintf(deepest, sizeof(deepest), "%s/.index.jsonl", path);
	n = path_read(x->t, deepest, index, sizeof(index) - 1, 0);
	assert_true(n > 0);
	index[n] = '\0';
	assert_non_null(strstr(index, "\"plain\""));
	assert_null(strstr(index, "n64"));
	assert_ptr_equal(strchr(index, '\n'), index + n - 1); /* one line */
	/* The level above still lists its directory. */
	c->n = 0;
	path[len - strlen("/n63")] = '\0';
	assert_int_equal(read_dir(x->t, path, c), 0);
	assert_true(has(c, "n63"));
	path[len - strlen("/n63")] = '/';

	/* Read again, and again once the listing expired: said once, not on every read. */
	c->n = 0;
	assert_int_equal(read_dir(x->t, path, c), 0);
	fake_clock += 61;
	c->n = 0;
	assert_int_equal(read_dir(x->t, path, c), 0);
	assert_int_equal(c->n, 3);
	assert_int_equal(lines_with(logpath, said), 1);
	assert_int_equal(lines_with(logpath, "n63"), 1);
	assert_int_equal(log_set_file("/dev/null"), 0);
	unlink(logpath);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_root_lists_providers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_waiter_that_gives_up_leaves_the_fetch_alone,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_fetcher_that_gives_up_lets_the_waiter_fetch,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_lookup_that_gives_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refresh_lists_now_and_tells_the_changes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_refresh_of_what_lists_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_listing_paged_and_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_first_page_kept_past_a_second_is_asked_again,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_first_page_only_for_a_reader_that_stops, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_ttl_expiry_with_fake_clock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_uses_filter_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_negative_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_on_error_and_eio, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changing_listing_is_fetched_again, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_files_and_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_forgets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookups_outlive_a_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_total_fetches_ahead_in_a_window, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_directory_mtime_moves_with_its_entries, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_refresh_tells_what_it_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_tells_everything_the_kernel_holds, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_expired_first_page_name_looked_up_then_listed,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_first_page_with_a_repeated_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readdir_says_which_entries_hold_a_lookup, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_an_over_forget_aborts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_names_beside_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_renamed_name_follows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_first_page_keeps_its_links_in_place, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_xattrs_outside_user_are_unsupported, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_read_keeps_its_listing_across_refreshes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_one_read_costs_one_listing_at_dir_ttl_0, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_reader_keeps_its_listing_while_others_refresh,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_a_first_page_stays_while_the_whole_listing_continues_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_an_older_listing_gives_lookups_of_current_children_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_depth_is_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_completed_record_outlives_its_listing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_readers_call_answers_with_the_pages_that_came,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_a_stream_names_a_younger_namesake_as_a_whole_listing_would, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_stream_stops_at_an_older_namesake, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_stream_does_not_rename_an_entry_a_look_up_found,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_reader_after_a_failed_stream_starts_afresh,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_stream_that_fails_gives_its_error_once, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_streams_error_goes_with_its_listing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_the_pages_after_the_first_are_fetched_on_batch_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_the_last_page_makes_a_streamed_listing_whole,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_a_waiting_reader_gets_each_page_once_all_are_asked_for, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_waiting_reader_gets_the_pages_that_came, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
