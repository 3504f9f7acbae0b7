/* Model-based stress test of the tree, through include/tree.h only.
 *
 * A fake provider keeps two providers' worth of workspaces and code sources in memory and
 * changes them at random: entries come, go, are renamed (to names that collide or are
 * sanitised), change url and branch, are served twice in a row (as offset paging does),
 * change while a listing is paged, calls fail; pages are small, so that first-page
 * listings happen, and some directories give no total. Every record carries the version
 * of its directory's data in its mtime, so a reader can tell whether what it was given is
 * one snapshot. A driver does what the kernel does: look-ups it holds and forgets exactly, readdir
 * and readdirplus from the start or from an offset it kept, readers that stop early and come back,
 * reads of files; between them the clock jumps past every TTL and the cache is flushed as SIGHUP
 * does. After every step what the tree answered is checked against the model.
 *
 * A failure prints its seed, its step and the steps before it; it replays with
 *   CODESRCFS_MODEL_SEED=<seed> CODESRCFS_MODEL_STEPS=<steps> build/tests/test_tree_model
 * (CODESRCFS_MODEL_TRACE=1 traces every entry a reader is given; -DTRACE_LINES=<n> keeps
 * more steps), and `make model-long` runs many more steps under ASan and UBSan.
 *
 * Bugs the model found in the tree are replayed as fixed stories at the end of this file.
 * No check is narrowed for a known bug; the one thing left out is the pager's own gap
 * (pager_gap, docs/reliability.md), counted and printed.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "clock.h"
#include "log.h"
#include "names.h"
#include "provider.h"
#include "tree.h"
#include "tree_fake.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#include <sanitizer/common_interface_defs.h>
#define MODEL_SANITIZED 1
#endif

#define NPROV	      2
#define NWS	      4	 /* workspaces a provider can list: "w1".."w4" */
#define MAX_ENT	      24 /* code sources in one workspace at most */
#define NAME_CAP      32 /* a raw name of the fake */
#define ID_CAP	      16
#define MAX_READERS   10
#define MTIME_BASE    1600000000
#define DEFAULT_SEED  20261125ULL
#define DEFAULT_STEPS 3000
#define FILE_MAX      16384 /* an index of MAX_ENT entries fits */
#ifndef TRACE_LINES
#define TRACE_LINES 48 /* the steps a failure prints */
#endif
#define RECENT 16 /* names readers were given lately, to look up again */
/* Seconds a first page the tree kept stands for page 1 of a whole listing (src/tree_merge.c,
 * docs/reliability.md): a move within them is the pager's own gap. */
#define MODEL_FIRST_REUSE 1

/* ---- a seeded generator -------------------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *g)
{
	uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned below(struct rng *g, unsigned n)
{
	return n ? (unsigned)(rng_next(g) % n) : 0;
}

static int chance(struct rng *g, unsigned pct)
{
	return below(g, 100) < pct;
}

/* ---- the fake provider and its data ------------------------------------------------ */

struct ment {
	char id[ID_CAP];
	char name[NAME_CAP];
	size_t name_len;
	int64_t ctime; /* the listing's order: oldest first, as the contract asks */
	int urlver;
	int branchver; /* 0: no branch file */
	int dup;       /* served twice in a row */
	long born;     /* the model's tick when it appeared */
};

struct mdir {
	struct ment e[MAX_ENT];
	int n;
	long page_size;
	int no_total;
	long ver;	       /* bumped by every change: the records' mtime carries it */
	long change_at_page;   /* serving this page (2 on) first changes the data; 0: never */
	long first_pages;      /* page 1 served */
	long first_failures;   /* failures() when page 1 was last served */
	long inserts, removes; /* records that moved the ones after them on the pages */
	struct move {
		int64_t at; /* the model's clock */
		int ins;    /* an insert, else a remove */
	} * moves;	    /* each of them */
	long nmoves, capmoves;
	long pages;	/* pages served */
	int first_last; /* the last page 1 served was the last page */
	long hold_page; /* held until the page after it came (mdir_hold); 0: none */
	long hold_asked, after_asked;
};

struct mprov {
	struct provider base;
	char name[4];
	struct mdir dir[1 + NWS]; /* 0: the provider's root, whose entries are workspaces */
	int fail_pct;		  /* chance that a call fails with EIO */
	int flushes;
	int ws_files; /* its workspaces serve meta.json and url, as a Codeup group does */
};

struct model {
	struct mprov prov[NPROV];
	pthread_mutex_t lock; /* the data: the tree's pager threads read it too */
	struct rng g;	      /* the provider's own draws: failures, changes while paging */
	long next_id;
	int64_t next_ctime;
	long tick;		 /* changes made */
	int *urlmax, *branchmax; /* by id - 100: the highest version it ever had */
	long idcap;
	atomic_long failures, paging_changes;
};

static struct model *M;

/* A record came (ins) or went before others of d's pages, now. */
static void mdir_moved(struct mdir *d, int ins)
{
	if (d->nmoves == d->capmoves) {
		d->capmoves = d->capmoves ? 2 * d->capmoves : 64;
		d->moves = realloc(d->moves, (size_t)d->capmoves * sizeof(*d->moves));
		if (!d->moves)
			abort();
	}
	d->moves[d->nmoves++] = (struct move){.at = fake_now(), .ins = ins};
	if (ins)
		d->inserts++;
	else
		d->removes++;
}

static const struct {
	const char *s;
	size_t len;
} name_pool[] = {
    {"alpha", 5},     {"beta", 4},   {"Alpha", 5},
    {"a/b", 3},	      {"a_b", 3},    {"a b", 3},
    {"", 0},	      {".", 1},	     {"..", 2},
    {"meta.json", 9}, {"url", 3},    {"branch", 6},
    {"x~101", 5},     {"dup", 3},    {"tab\there", 8},
    {"nul\0byte", 8}, {"_", 1},	     {"\xc3\xa9t\xc3\xa9", 6},
    {"gamma/", 6},    {"alpha ", 6},
};

static void ment_name(struct ment *e, struct rng *g, long id)
{
	unsigned k = below(g, 2 * (unsigned)(sizeof(name_pool) / sizeof(name_pool[0])));

	if (k < sizeof(name_pool) / sizeof(name_pool[0])) {
		memcpy(e->name, name_pool[k].s, name_pool[k].len);
		e->name_len = name_pool[k].len;
	} else {
		e->name_len = (size_t)snprintf(e->name, sizeof(e->name), "repo-%ld", id);
	}
}

static void model_grow_ids(struct model *m, long id)
{
	long need = id - 100 + 1;

	if (need <= m->idcap)
		return;
	long cap = m->idcap ? m->idcap * 2 : 256;
	while (cap < need)
		cap *= 2;
	m->urlmax = realloc(m->urlmax, cap * sizeof(int));
	m->branchmax = realloc(m->branchmax, cap * sizeof(int));
	assert_non_null(m->urlmax);
	assert_non_null(m->branchmax);
	memset(m->urlmax + m->idcap, 0, (cap - m->idcap) * sizeof(int));
	memset(m->branchmax + m->idcap, 0, (cap - m->idcap) * sizeof(int));
	m->idcap = cap;
}

/* Insert e at its place by ctime. */
static void mdir_insert(struct mdir *d, const struct ment *e)
{
	mdir_moved(d, 1);
	int k = d->n;

	while (k > 0 && d->e[k - 1].ctime > e->ctime)
		k--;
	memmove(&d->e[k + 1], &d->e[k], (d->n - k) * sizeof(d->e[0]));
	d->e[k] = *e;
	d->n++;
}

/* A new code source: created now (last in the listing), or now and then one that shows up
 * among the older ones (made visible to us, restored). */
static void mdir_add(struct model *m, struct mdir *d, struct rng *g)
{
	struct ment e = {0};
	long id = m->next_id++;

	if (d->n >= MAX_ENT)
		return;
	model_grow_ids(m, id);
	snprintf(e.id, sizeof(e.id), "%ld", id);
	ment_name(&e, g, id);
	e.urlver = m->urlmax[id - 100] = 1;
	e.born = m->tick;
	e.dup = chance(g, 8);
	m->next_ctime += 1000;
	e.ctime = m->next_ctime;
	if (d->n >= 2 && chance(g, 20)) {
		int k = 1 + (int)below(g, (unsigned)d->n - 1);

		e.ctime = (d->e[k - 1].ctime + d->e[k].ctime) / 2;
		if (e.ctime == d->e[k - 1].ctime)
			e.ctime = m->next_ctime;
	}
	if (chance(g, 30))
		e.branchver = m->branchmax[id - 100] = 1;
	mdir_insert(d, &e);
}

static void mdir_remove(struct mdir *d, int k)
{
	mdir_moved(d, 0);
	memmove(&d->e[k], &d->e[k + 1], (d->n - k - 1) * sizeof(d->e[0]));
	d->n--;
}

static int ws_index(const char *id)
{
	if (id && id[0] == 'w' && id[1] >= '1' && id[1] <= '0' + NWS && !id[2])
		return id[1] - '0';
	return 0;
}

static int ws_present(const struct mprov *p, int w)
{
	for (int i = 0; i < p->dir[0].n; i++)
		if (ws_index(p->dir[0].e[i].id) == w)
			return 1;
	return 0;
}

/* A record served twice from now on, or once again. */
static void dup_toggle(struct mdir *d, struct ment *e)
{
	e->dup ^= 1;
	mdir_moved(d, e->dup);
}

/* Workspace w (back) in p's root, created now. */
static void root_add(struct model *m, struct mprov *p, int w)
{
	struct ment e = {0};

	if (ws_present(p, w))
		return;
	snprintf(e.id, sizeof(e.id), "w%d", w);
	e.name_len = (size_t)snprintf(e.name, sizeof(e.name), "w%d", w);
	m->next_ctime += 1000;
	e.ctime = m->next_ctime;
	e.born = m->tick;
	mdir_insert(&p->dir[0], &e);
}

/* A change to the provider's root: a workspace goes or comes back, one is served twice,
 * the paging changes. */
static void root_change(struct model *m, struct mprov *p, struct rng *g)
{
	struct mdir *d = &p->dir[0];
	int w = 1 + (int)below(g, NWS);

	switch (below(g, 4)) {
	case 0:
		for (int i = 0; i < d->n && d->n > 1; i++)
			if (ws_index(d->e[i].id) == w)
				mdir_remove(d, i);
		break;
	case 1:
		root_add(m, p, w);
		break;
	case 2:
		if (d->n)
			dup_toggle(d, &d->e[below(g, (unsigned)d->n)]);
		break;
	default:
		d->change_at_page = 2 + below(g, 2);
	}
}

static void ws_change(struct model *m, struct mdir *d, struct rng *g)
{
	struct ment *e = d->n ? &d->e[below(g, (unsigned)d->n)] : NULL;
	long idx = e ? strtol(e->id, NULL, 10) - 100 : 0;
	unsigned what = below(g, 11);

	if (!e && what < 9)
		what = 0;
	switch (what) {
	case 0:
	case 1:
	case 7:
		mdir_add(m, d, g);
		break;
	case 2:
	case 8:
		mdir_remove(d, (int)(e - d->e));
		break;
	case 3:
		ment_name(e, g, idx + 100);
		break;
	case 4:
		e->urlver = ++m->urlmax[idx];
		break;
	case 5:
		e->branchver = e->branchver && chance(g, 50) ? 0 : ++m->branchmax[idx];
		break;
	case 6:
		dup_toggle(d, e);
		break;
	default:
		d->change_at_page = 2 + below(g, 3);
	}
}

/* One change to directory w of p (0: its root). Lock held. */
static void mdir_change(struct model *m, struct mprov *p, int w, struct rng *g)
{
	if (w == 0)
		root_change(m, p, g);
	else
		ws_change(m, &p->dir[w], g);
	p->dir[w].ver++;
	m->tick++;
}

__attribute__((format(printf, 1, 2))) static char *xprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void make_record(const struct mprov *p, const struct mdir *d, const struct ment *e,
			struct prov_record *r)
{
	int root = d == p->dir;

	memset(r, 0, sizeof(*r));
	r->id = strdup(e->id);
	r->name = malloc(e->name_len + 1);
	assert_non_null(r->name);
	memcpy(r->name, e->name, e->name_len);
	r->name[e->name_len] = '\0';
	r->name_len = e->name_len;
	r->ctime = e->ctime;
	r->mtime = MTIME_BASE + d->ver;
	if (root) {
		r->container = 1;
		r->web_url = xprintf("https://console.example/%s", e->id);
		if (p->ws_files) {
			r->meta = strdup("{}\n");
			r->url = xprintf("https://console.example/%s", e->id);
		}
		return;
	}
	r->url = xprintf("https://git.example/%s/v%d.git", e->id, e->urlver);
	r->meta = xprintf("{\"id\": \"%s\"}\n", e->id);
	r->branch = e->branchver ? xprintf("b%d", e->branchver) : NULL;
	r->web_url = xprintf("https://console.example/%s", e->id);
}

/* Record i of what d serves, the second copy of a duplicate counted. */
static const struct ment *served(const struct mdir *d, long i)
{
	for (int k = 0; k < d->n; k++) {
		long c = d->e[k].dup ? 2 : 1;

		if (i < c)
			return &d->e[k];
		i -= c;
	}
	return NULL;
}

static long served_count(const struct mdir *d)
{
	long c = 0;

	for (int k = 0; k < d->n; k++)
		c += d->e[k].dup ? 2 : 1;
	return c;
}

/* The directory a call is about, or NULL (with *err) when it is gone or the call fails. */
static struct mdir *call_dir(struct mprov *p, const struct prov_record *dir, int *err)
{
	int w = dir ? ws_index(dir->id) : 0;

	*err = 0;
	if (dir && (!w || !ws_present(p, w)))
		*err = -ENOENT;
	else if (chance(&M->g, (unsigned)p->fail_pct))
		*err = -EIO;
	if (*err == -EIO)
		atomic_fetch_add(&M->failures, 1);
	return *err ? NULL : &p->dir[w];
}

/* Page `page` of d is asked for. The n-th request of the held page waits, the lock released
 * as a slow answer would let others be served meanwhile, until the page two after it was
 * asked for n times: a page thread asks for its next page once the one it fetched is in, so
 * the page after the held one comes first. Lock held. */
static void mdir_hold(struct mdir *d, long page)
{
	long asked = page == d->hold_page ? ++d->hold_asked : 0;

	d->after_asked += d->hold_page && page == d->hold_page + 2;
	while (d->after_asked < asked) {
		pthread_mutex_unlock(&M->lock);
		usleep(1000);
		pthread_mutex_lock(&M->lock);
	}
}

static int mprov_list_page(struct provider *base, const struct prov_record *dir, long page,
			   struct prov_page *out)
{
	struct mprov *p = (struct mprov *)base;
	struct prov_record r;
	struct mdir *d;
	long total, got = 0;
	int err;
	long f0 = atomic_load(&M->failures);

	pthread_mutex_lock(&M->lock);
	d = call_dir(p, dir, &err);
	if (!d)
		goto out;
	mdir_hold(d, page);
	if (page >= 2 && page == d->change_at_page) {
		d->change_at_page = 0;
		mdir_change(M, p, (int)(d - p->dir), &M->g);
		atomic_fetch_add(&M->paging_changes, 1);
	}
	total = served_count(d);
	out->total = d->no_total ? -1 : total;
	out->page_size = d->page_size;
	for (long i = (page - 1) * d->page_size; i < page * d->page_size && i < total; i++) {
		make_record(p, d, served(d, i), &r);
		assert_int_equal(prov_page_add(out, &r), 0);
		got++;
	}
	out->last = d->no_total ? got < d->page_size : page * d->page_size >= total;
	d->first_pages += page == 1;
	if (page == 1)
		d->first_failures = f0;
	d->pages++;
	if (page == 1)
		d->first_last = out->last;
out:
	pthread_mutex_unlock(&M->lock);
	return err;
}

/* The API's name filter: every record whose raw name holds term. */
static int mprov_lookup(struct provider *base, const struct prov_record *dir, const char *term,
			struct prov_page *out)
{
	struct mprov *p = (struct mprov *)base;
	struct prov_record r;
	struct mdir *d;
	int err;

	pthread_mutex_lock(&M->lock);
	d = dir ? call_dir(p, dir, &err) : NULL;
	for (int k = 0; d && k < d->n; k++) {
		if (!memmem(d->e[k].name, d->e[k].name_len, term, strlen(term)))
			continue;
		make_record(p, d, &d->e[k], &r);
		assert_int_equal(prov_page_add(out, &r), 0);
	}
	if (d) {
		out->total = (long)out->n;
		out->last = 1;
	}
	pthread_mutex_unlock(&M->lock);
	return d ? 0 : dir ? err : -EINVAL;
}

static void mprov_flush(struct provider *base)
{
	struct mprov *p = (struct mprov *)base;

	pthread_mutex_lock(&M->lock);
	p->flushes++;
	pthread_mutex_unlock(&M->lock);
}

static const struct provider_ops mprov_ops = {
    .list_page = mprov_list_page,
    .lookup = mprov_lookup,
    .flush = mprov_flush,
    .destroy = fake_destroy,
};

static void model_init(struct model *m, uint64_t seed)
{
	struct rng g = {seed};

	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->g.s = seed ^ 0x5eedf00dULL;
	m->next_id = 100;
	for (int pi = 0; pi < NPROV; pi++) {
		struct mprov *p = &m->prov[pi];

		p->base.ops = &mprov_ops;
		snprintf(p->name, sizeof(p->name), "f%c", 'a' + pi);
		p->base.name = p->name;
		p->ws_files = pi == 1;
		/* A page that brings no new id ends a listing, total or not (docs/design.md
		 * §4): a record served twice must not fill a page alone, so pages hold two
		 * records at least. */
		p->dir[0].page_size = 2 + below(&g, 2);
		p->dir[0].no_total = chance(&g, 30);
		for (int w = 1; w <= NWS; w++) {
			if (w == 1 || chance(&g, 80))
				root_add(m, p, w);
			p->dir[w].page_size = 2 + below(&g, 4);
			p->dir[w].no_total = chance(&g, 30);
			for (int n = (int)below(&g, MAX_ENT * 2 / 3); n > 0; n--)
				mdir_add(m, &p->dir[w], &g);
		}
	}
}

static void model_free(struct model *m)
{
	for (int pi = 0; pi < NPROV; pi++)
		for (int w = 0; w <= NWS; w++)
			free(m->prov[pi].dir[w].moves);
	free(m->urlmax);
	free(m->branchmax);
	pthread_mutex_destroy(&m->lock);
}

/* ---- what the model expects ------------------------------------------------------------ */

/* A listing's names and ids. Room for twice a directory's entries: one paged while records
 * came and went holds some of both. */
#define EXPECT_CAP (2 * MAX_ENT)

struct expect {
	int n;
	char name[EXPECT_CAP][NAMES_MAX + 1];
	char id[EXPECT_CAP][ID_CAP];
};

/* The names a whole listing of directory w of p gives now, as names.c makes them. Lock
 * held. */
static void expect_dir(const struct mprov *p, int w, struct expect *x)
{
	/* docs/design.md §1: .index.jsonl is taken in every directory that lists children,
	 * and a directory that serves files takes all three of their names. */
	static const char *const plain[] = {".index.jsonl", NULL};
	static const char *const with_files[] = {".index.jsonl", "meta.json", "url", "branch",
						 NULL};
	const struct mdir *d = &p->dir[w];
	struct names_entry ne[MAX_ENT];

	memset(ne, 0, sizeof(ne));
	for (int i = 0; i < d->n; i++) {
		ne[i].raw = d->e[i].name;
		ne[i].raw_len = d->e[i].name_len;
		ne[i].id = d->e[i].id;
		ne[i].ctime = d->e[i].ctime;
	}
	assert_int_equal(names_assign(ne, (size_t)d->n, w && p->ws_files ? with_files : plain), 0);
	x->n = d->n;
	for (int i = 0; i < d->n; i++) {
		snprintf(x->name[i], sizeof(x->name[i]), "%s", ne[i].name);
		snprintf(x->id[i], sizeof(x->id[i]), "%s", d->e[i].id);
		free(ne[i].name);
	}
}

static const char *expect_id(const struct expect *x, const char *name)
{
	for (int i = 0; i < x->n; i++)
		if (!strcmp(x->name[i], name))
			return x->id[i];
	return NULL;
}

/* ---- the driver: what the kernel holds and reads ----------------------------------- */

enum kind { K_ROOT, K_PROV, K_WS, K_CS, K_FILE };

struct where {
	int kind;
	int prov, ws;
	char id[ID_CAP]; /* K_WS, K_CS, K_FILE: the id of the record (the file's owner) */
	int file;	 /* K_FILE: 0 meta.json, 1 url, 2 branch, 3 .index.jsonl */
};

struct held {
	uint64_t ino;
	uint64_t n;
	struct where w;
	uint64_t names; /* a directory: its entries when last read whole and exact (0: never) */
	long mtime_ns;	/* and its mtime's nanoseconds then */
	long reads;	/* readdir calls on it: a workspace never read may still page through */
};

struct seen {
	char name[NAMES_MAX + 1];
	char id[ID_CAP]; /* readdirplus: the record's id, asked at once */
	uint64_t ino;
	int64_t mtime;
	off_t next;
	int holds; /* readdirplus: the entry holds a lookup of ino */
};

struct reader {
	int used, plus, from0;
	long opened; /* the step */
	long tick;   /* the model's when it opened */
	long paging; /* changes while paging, then */
	int fetched; /* its first call had page 1 fetched: it saw no older listing */
	int partial; /* and that page only, with more to come */
	long gen0;   /* the directory's mtime nanoseconds after the first call, and now */
	long gen;
	int moved;	       /* the listing expired or changed between two of its calls */
	long inserts, removes; /* its directory's, after the first call */
	long ver0;	       /* and its version then */
	long moves0;	       /* and its moves */
	int64_t first_clock;   /* the model's clock at the first call */
	long failures0;	       /* failures() when its first call began, or when page 1 of the
				* listing it may have read then was served, if earlier */
	uint64_t dir;	       /* held by the reader, as an open directory holds its inode */
	struct where w;
	off_t off;
	int budget;
	struct seen *e;
	int n, cap;
};

struct driver {
	struct rng g;
	struct tree *t;
	struct held *held;
	int nheld, capheld;
	struct reader rd[MAX_READERS];
	off_t kept_off[8]; /* offsets a reader was given, for seekdir */
	uint64_t last_dir; /* where the last step worked */
	struct recent {
		uint64_t dir;
		char name[NAMES_MAX + 1];
	} recent[RECENT]; /* names readers were given lately */
	int nrecent;
	int threaded; /* others change the world meanwhile: no exact checks */
	long step;
	uint64_t seed;
	long n_done, n_mixed, n_exact, n_fresh_lookups, n_found, n_lookups, n_kept;
	struct tree_opts o;
	char trace[TRACE_LINES][200];
	int ntrace;
};

static const char *const file_names[] = {"meta.json", "url", "branch", ".index.jsonl"};
#define INDEX_FILE 3
static atomic_long watched;
static long gaps;	       /* readers not checked for loss: the pager's own gap (pager_gap) */
static struct driver *current; /* the single-threaded run, for a sanitizer's report */

static void trace(struct driver *dv, const char *fmt, ...)
{
	va_list ap;
	char *line = dv->trace[dv->ntrace++ % TRACE_LINES];
	int n = snprintf(line, 200, "step %ld: ", dv->step);

	va_start(ap, fmt);
	vsnprintf(line + n, 200 - (size_t)n, fmt, ap);
	va_end(ap);
}

static void trace_dump(const struct driver *dv)
{
	int first = dv->ntrace > TRACE_LINES ? dv->ntrace - TRACE_LINES : 0;

	fprintf(stderr, "model: seed %llu, failed at step %ld; the last steps:\n",
		(unsigned long long)dv->seed, dv->step);
	for (int i = first; i < dv->ntrace; i++)
		fprintf(stderr, "  %s\n", dv->trace[i % TRACE_LINES]);
	fprintf(stderr,
		"model: replay with CODESRCFS_MODEL_SEED=%llu CODESRCFS_MODEL_STEPS=%ld%s\n",
		(unsigned long long)dv->seed, dv->step + 1,
		dv->threaded ? " (threads: the interleaving will differ)"
			     : " (a few times: the pager's page threads decide the steps of a "
			       "stream, so a run may take other steps)");
}

#ifdef MODEL_SANITIZED
static void on_sanitizer_death(void)
{
	if (current)
		trace_dump(current);
}
#endif

#define CHECK(dv, cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			model_fail(dv, __LINE__, #cond, __VA_ARGS__);                              \
	} while (0)

static void model_fail(struct driver *dv, int line, const char *cond, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trace_dump(dv);
	fprintf(stderr, "model: line %d: %s: %s\n", line, cond, msg);
	if (dv->threaded)
		abort(); /* no longjmp out of another thread */
	fail_msg("model check failed (seed %llu, step %ld)", (unsigned long long)dv->seed,
		 dv->step);
}

static long failures(void)
{
	return atomic_load(&M->failures);
}

static long paging_changes(void)
{
	return atomic_load(&M->paging_changes);
}

static struct held *held_find(struct driver *dv, uint64_t ino)
{
	for (int i = 0; i < dv->nheld; i++)
		if (dv->held[i].ino == ino)
			return &dv->held[i];
	return NULL;
}

/* The kernel took one more lookup of ino, which is w. A node's identity never changes
 * while it is held. */
static void held_add(struct driver *dv, uint64_t ino, const struct where *w)
{
	struct held *h = held_find(dv, ino);

	CHECK(dv, ino != TREE_ROOT && ino != 0, "inode %llx", (unsigned long long)ino);
	if (h) {
		CHECK(dv, h->w.kind == w->kind && !strcmp(h->w.id, w->id) && h->w.file == w->file,
		      "inode %llx held as kind %d id %s file %d, now kind %d id %s file %d",
		      (unsigned long long)ino, h->w.kind, h->w.id, h->w.file, w->kind, w->id,
		      w->file);
		h->n++;
		return;
	}
	if (dv->nheld == dv->capheld) {
		dv->capheld = dv->capheld ? 2 * dv->capheld : 64;
		dv->held = realloc(dv->held, (size_t)dv->capheld * sizeof(*dv->held));
		assert_non_null(dv->held);
	}
	dv->held[dv->nheld++] = (struct held){.ino = ino, .n = 1, .w = *w};
}

static void held_forget(struct driver *dv, int i, uint64_t n)
{
	tree_forget(dv->t, dv->held[i].ino, n);
	dv->held[i].n -= n;
	if (dv->held[i].n == 0)
		dv->held[i] = dv->held[--dv->nheld];
}

static int file_index(const char *name)
{
	for (int i = 0; i <= INDEX_FILE; i++)
		if (!strcmp(name, file_names[i]))
			return i;
	return -1;
}

/* Is file f one that directory w serves (or may serve: a code source's branch comes and
 * goes)? A code source serves all three; a workspace of a provider with ws_files
 * meta.json and url; every directory that lists children its .index.jsonl. */
static int is_file_of(const struct where *w, int f)
{
	if (f == INDEX_FILE)
		return w->kind == K_PROV || w->kind == K_WS;
	if (w->kind == K_WS)
		return M->prov[w->prov].ws_files && f >= 0 && f < 2;
	return w->kind == K_CS && f >= 0;
}

/* What entry name of directory parent is, given the inode the tree answered. 0, or -1
 * when the tree's answer cannot be told (a node without an id). */
static int where_child(struct driver *dv, const struct where *parent, const char *name,
		       uint64_t ino, struct where *w)
{
	char id[64];
	int f = file_index(name), r;

	memset(w, 0, sizeof(*w));
	w->prov = parent->prov;
	w->ws = parent->ws;
	w->file = -1;
	if (parent->kind == K_ROOT) {
		w->kind = K_PROV;
		w->prov = name[1] - 'a';
		return 0;
	}
	if (f >= 0 && is_file_of(parent, f)) {
		w->kind = K_FILE;
		w->file = f;
		snprintf(w->id, sizeof(w->id), "%s", parent->id);
		return 0;
	}
	w->kind = parent->kind == K_PROV ? K_WS : K_CS;
	r = tree_getxattr(dv->t, ino, "user.codesrcfs.id", id, sizeof(id) - 1);
	CHECK(dv, r > 0 && r < ID_CAP, "id of %s: %d", name, r);
	id[r] = '\0';
	snprintf(w->id, sizeof(w->id), "%.*s", ID_CAP - 1, id);
	if (w->kind == K_WS) {
		w->ws = ws_index(id);
		CHECK(dv, w->ws > 0 && !strcmp(name, id), "workspace %s named %s", id, name);
	}
	return 0;
}

/* A directory to work in: the root, or one the kernel holds. */
static void pick_dir(struct driver *dv, int near, uint64_t *ino, struct where *w)
{
	int cand[128], n = 0, i;

	for (i = 0; i < dv->nheld && n < 126; i++) {
		int k = dv->held[i].w.kind;

		if (k == K_PROV || k == K_WS || (k == K_CS && chance(&dv->g, 30)))
			cand[n++] = i;
		if (k == K_WS) /* where most can go wrong: twice as likely */
			cand[n++] = i;
	}
	/* Mostly where the last step was: what goes wrong takes a few steps in one place. */
	if (near && dv->last_dir != TREE_ROOT && chance(&dv->g, 75) &&
	    held_find(dv, dv->last_dir)) {
		*ino = dv->last_dir;
		*w = held_find(dv, dv->last_dir)->w;
		return;
	}
	if (n == 0 || chance(&dv->g, 8)) {
		*ino = TREE_ROOT;
		memset(w, 0, sizeof(*w));
		w->kind = K_ROOT;
		w->file = -1;
		return;
	}
	i = cand[below(&dv->g, (unsigned)n)];
	*ino = dv->held[i].ino;
	*w = dv->held[i].w;
	if (near)
		dv->last_dir = *ino;
}

/* ---- look-ups --------------------------------------------------------------------------- */

/* A name a reader of directory ino was given lately (a first page's, maybe), or NULL. */
static const char *reader_name(struct driver *dv, uint64_t ino)
{
	for (int i = 0, k = (int)below(&dv->g, RECENT); i < RECENT; i++) {
		const struct recent *r = &dv->recent[(k + i) % RECENT];

		if (r->dir == ino && r->name[0])
			return r->name;
	}
	return NULL;
}

/* A name to look up in w: one the model lists, one a reader was given (maybe stale), a
 * missing one, one with "~<id>", the directory's files, one too long. */
static void pick_name(struct driver *dv, uint64_t ino, const struct where *w, char *name,
		      size_t cap)
{
	struct expect x;
	unsigned k = below(&dv->g, 10);
	const char *seen = k >= 1 && k <= 5 ? reader_name(dv, ino) : NULL;

	if (w->kind == K_ROOT) {
		snprintf(name, cap, "f%c", "abc"[below(&dv->g, 3)]);
	} else if (w->kind == K_PROV) {
		if (k == 9)
			snprintf(name, cap, "%s", file_names[INDEX_FILE]);
		else
			snprintf(name, cap, "w%u", below(&dv->g, NWS + 2));
	} else if (w->kind == K_CS) {
		snprintf(name, cap, "%s", k < 9 ? file_names[k % 3] : "nope");
	} else if (seen) {
		snprintf(name, cap, "%s", seen);
	} else if (k < 6) {
		pthread_mutex_lock(&M->lock);
		expect_dir(&M->prov[w->prov], w->ws, &x);
		pthread_mutex_unlock(&M->lock);
		snprintf(name, cap, "%s", x.n ? x.name[below(&dv->g, (unsigned)x.n)] : "none");
	} else if (k == 6) {
		pthread_mutex_lock(&M->lock);
		long ids = M->next_id - 99;
		pthread_mutex_unlock(&M->lock);
		snprintf(name, cap, "%s~%ld", chance(&dv->g, 50) ? "alpha" : "a_b",
			 100 + (long)below(&dv->g, (unsigned)ids));
	} else if (k == 7) {
		snprintf(name, cap, "%s", file_names[below(&dv->g, INDEX_FILE + 1)]);
	} else if (k == 8) {
		size_t len = NAMES_MAX + 1 + below(&dv->g, 40);

		memset(name, 'n', len);
		name[len] = '\0';
	} else {
		snprintf(name, cap, "%s", chance(&dv->g, 50) ? "missing" : "a_missing_b");
	}
}

/* What a look-up of name in w must answer when nothing the tree kept can be trusted any
 * more: 1 found (id into id), 0 missing, -1 unknown. Lock held. */
static int lookup_expected(const struct where *w, const char *name, char *id)
{
	struct expect x;
	const char *e;

	id[0] = '\0';
	if (strlen(name) > NAMES_MAX)
		return 0;
	if (w->kind == K_ROOT)
		return !strcmp(name, "fa") || !strcmp(name, "fb");
	if (w->kind == K_PROV && !strcmp(name, file_names[INDEX_FILE]))
		return 1;
	if (w->kind == K_PROV) {
		snprintf(id, ID_CAP, "%.*s", ID_CAP - 1, name);
		return ws_index(name) && ws_present(&M->prov[w->prov], ws_index(name));
	}
	if (w->kind != K_WS || !ws_present(&M->prov[w->prov], w->ws))
		return -1;
	if (file_index(name) >= 0 && is_file_of(w, file_index(name)))
		return 1;
	expect_dir(&M->prov[w->prov], w->ws, &x);
	e = expect_id(&x, name);
	if (e)
		snprintf(id, ID_CAP, "%s", e);
	return e != NULL;
}

static void set_fail(int pct, int *saved)
{
	pthread_mutex_lock(&M->lock);
	for (int i = 0; i < NPROV; i++) {
		if (saved)
			saved[i] = M->prov[i].fail_pct;
		M->prov[i].fail_pct = pct;
	}
	pthread_mutex_unlock(&M->lock);
}

static void restore_fail(const int *saved)
{
	pthread_mutex_lock(&M->lock);
	for (int i = 0; i < NPROV; i++)
		M->prov[i].fail_pct = saved[i];
	pthread_mutex_unlock(&M->lock);
}

static long max_ttl(const struct tree_opts *o)
{
	long m = o->dir_ttl > o->attr_ttl ? o->dir_ttl : o->attr_ttl;

	return (m > o->neg_ttl ? m : o->neg_ttl) + 1;
}

/* Look up name in dir; with fresh, once every TTL has passed and with no failures, when
 * the answer must be the model's. The lookup is then held. */
static void lookup_in(struct driver *dv, uint64_t dir, struct where w, const char *name, int fresh)
{
	struct where cw;
	struct tree_stat st;
	char want_id[ID_CAP];
	long f0, c0;
	int saved[NPROV], r, want = -1;

	trace(dv, "lookup%s dir %d/%d/%d/%s '%.40s'", fresh ? " fresh" : "", w.kind, w.prov, w.ws,
	      w.id, name);
	if (fresh) {
		atomic_fetch_add(&fake_clock, max_ttl(&dv->o));
		set_fail(0, saved);
	}
	f0 = failures();
	c0 = paging_changes();
	r = tree_lookup(dv->t, dir, name, &st);
	if (fresh && !dv->threaded && paging_changes() == c0) {
		pthread_mutex_lock(&M->lock);
		want = lookup_expected(&w, name, want_id);
		pthread_mutex_unlock(&M->lock);
	}
	if (fresh)
		restore_fail(saved);
	CHECK(dv, r == 0 || r == -ENOENT || r == -EIO || r == -ENAMETOOLONG, "lookup: %d", r);
	CHECK(dv, r != -EIO || failures() > f0, "EIO with no failure");
	CHECK(dv, (r == -ENAMETOOLONG) == (strlen(name) > NAMES_MAX), "long name: %d", r);
	dv->n_lookups++;
	dv->n_found += r == 0;
	dv->n_fresh_lookups += want >= 0;
	CHECK(dv, want < 0 || (r == 0) == (want == 1), "lookup '%s' gave %d, the model %s", name, r,
	      want ? want_id : "missing");
	if (r < 0)
		return;
	where_child(dv, &w, name, st.ino, &cw);
	CHECK(dv, st.is_dir == (cw.kind != K_FILE), "is_dir %d for kind %d", st.is_dir, cw.kind);
	CHECK(dv, want != 1 || !want_id[0] || !strcmp(want_id, cw.id), "'%s' is %s, the model %s",
	      name, cw.id, want_id);
	held_add(dv, st.ino, &cw);
}

static void op_lookup(struct driver *dv, int fresh)
{
	struct where w;
	uint64_t dir;
	char name[300];

	pick_dir(dv, 1, &dir, &w);
	pick_name(dv, dir, &w, name, sizeof(name));
	lookup_in(dv, dir, w, name, fresh);
}

/* ---- readers ---------------------------------------------------------------------------- */

/* The fake's directory a listing of w comes from, or NULL (the root, a code source). */
static struct mdir *where_dir(const struct where *w)
{
	if (w->kind == K_PROV)
		return &M->prov[w->prov].dir[0];
	if (w->kind == K_WS)
		return &M->prov[w->prov].dir[w->ws];
	return NULL;
}

static int reader_fill(void *ctx, const char *name, const struct tree_stat *st, off_t next,
		       int holds)
{
	struct reader *rd = ctx;

	if (rd->budget == 0)
		return 1;
	rd->budget--;
	if (rd->n == rd->cap) {
		rd->cap = rd->cap ? 2 * rd->cap : 32;
		rd->e = realloc(rd->e, (size_t)rd->cap * sizeof(*rd->e));
		if (!rd->e)
			abort();
	}
	struct seen *s = &rd->e[rd->n++];

	snprintf(s->name, sizeof(s->name), "%s", name);
	s->ino = st->ino;
	s->mtime = st->mtime;
	s->next = next;
	s->holds = holds;
	rd->off = next;
	return 0;
}

static int is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

/* Is entry i of a listing of w one of the directory's own files? */
static int own_file(const struct where *w, const char *name)
{
	int f = file_index(name);

	return f >= 0 && f != INDEX_FILE && is_file_of(w, f);
}

static void reader_close(struct driver *dv, struct reader *rd)
{
	if (rd->dir != TREE_ROOT)
		tree_forget(dv->t, rd->dir, 1);
	free(rd->e);
	memset(rd, 0, sizeof(*rd));
}

/* Entries [from, n) a call gave: well formed; with plus, each one is a lookup. */
static void reader_took(struct driver *dv, struct reader *rd, int from, off_t off)
{
	for (int i = from; i < rd->n; i++) {
		const struct seen *s = &rd->e[i];
		size_t len = strlen(s->name);
		struct where cw;

		CHECK(dv, len >= 1 && len <= NAMES_MAX && !strchr(s->name, '/'), "name '%s'",
		      s->name);
		/* Rising within one answer. From one answer to the next they may step back
		 * by the first-page entries the whole listing no longer has: the first page
		 * keeps its place, and the reader goes on where it stands in it. */
		CHECK(dv, s->next > (i > from ? rd->e[i - 1].next : 0), "offset %lld after %lld",
		      (long long)s->next, (long long)(i > from ? rd->e[i - 1].next : 0));
		if (off == 0 && i < 2)
			CHECK(dv, !strcmp(s->name, i ? ".." : "."), "entry %d is '%s'", i, s->name);
		else
			CHECK(dv, !is_dot(s->name) || i < 2, "'%s' at %d", s->name, i);
		if (!is_dot(s->name) && !own_file(&rd->w, s->name)) {
			struct recent *r = &dv->recent[dv->nrecent++ % RECENT];

			r->dir = rd->dir;
			snprintf(r->name, sizeof(r->name), "%s", s->name);
		}
		CHECK(dv, !s->holds || (rd->plus && !is_dot(s->name)), "'%s' holds a lookup",
		      s->name);
		if (!rd->plus || is_dot(s->name))
			continue;
		/* An entry that holds no lookup (one of an older listing, no longer its
		 * directory's child) lives while that listing does: only until another
		 * thread's readdir prunes it. */
		if (!s->holds && dv->threaded)
			continue;
		where_child(dv, &rd->w, s->name, s->ino, &cw);
		snprintf(rd->e[i].id, sizeof(rd->e[i].id), "%s", cw.id);
		if (s->holds)
			held_add(dv, s->ino, &cw);
	}
}

/* One readdir call taking at most budget entries. The number taken, or -errno. */
static int reader_call(struct driver *dv, struct reader *rd, int budget)
{
	struct mdir *d = where_dir(&rd->w);
	int before = rd->n, r;
	long f0 = failures(), first = 0, pages = 0, first_f = f0;
	off_t off = rd->off;
	struct tree_stat st;

	rd->budget = budget;
	if (d && before == 0) {
		pthread_mutex_lock(&M->lock);
		first = d->first_pages;
		pages = d->pages;
		first_f = d->first_pages ? d->first_failures : f0;
		pthread_mutex_unlock(&M->lock);
	}
	if (before > 0 && tree_getattr(dv->t, rd->dir, &st) == 0 && st.mtime_ns != rd->gen)
		rd->moved = 1;
	/* A fetch may fail with a page served before the reader began, and give its error to
	 * the reader, who began on the pages it streamed: a failure since that fetch's page 1
	 * counts too. */
	if (before == 0)
		rd->failures0 = first_f < f0 ? first_f : f0;
	r = tree_readdir(dv->t, rd->dir, rd->off, rd->plus, reader_fill, rd);
	if (held_find(dv, rd->dir))
		held_find(dv, rd->dir)->reads++;
	if (d && before == 0 && off == 0) {
		pthread_mutex_lock(&M->lock);
		rd->fetched = d->first_pages == first + 1 && failures() == f0;
		rd->inserts = d->inserts;
		rd->removes = d->removes;
		rd->ver0 = d->ver;
		rd->moves0 = d->nmoves;
		rd->first_clock = fake_now();
		rd->partial = rd->fetched && d->pages == pages + 1 && !d->first_last;
		pthread_mutex_unlock(&M->lock);
	}
	if (r == 0 && tree_getattr(dv->t, rd->dir, &st) == 0) {
		rd->gen = st.mtime_ns;
		if (before == 0)
			rd->gen0 = st.mtime_ns;
	}
	trace(dv, "  readdir%s off %lld: %d, %d taken", rd->plus ? "plus" : "", (long long)off, r,
	      rd->n - before);
	CHECK(dv, r == 0 || r == -EIO || r == -ENOENT, "readdir: %d", r);
	/* A fetch that streamed pages to the reader and then failed gives its error to the
	 * reader's next call (docs/architecture.md, Listings): a failure since it began. */
	CHECK(dv, r != -EIO || failures() > rd->failures0, "EIO with no failure since it began");
	if (r < 0) {
		/* As fs.c does: the answer is an error, so no entry reached the kernel. */
		for (int i = before; i < rd->n; i++)
			if (rd->e[i].holds)
				tree_forget(dv->t, rd->e[i].ino, 1);
		rd->n = before;
		rd->off = off;
		return r;
	}
	reader_took(dv, rd, before, off);
	if (getenv("CODESRCFS_MODEL_TRACE")) /* every entry into the trace, too */
		for (int i = before; i < rd->n; i++)
			trace(dv, "    '%s' %llx v%lld next %lld", rd->e[i].name,
			      (unsigned long long)rd->e[i].ino,
			      (long long)rd->e[i].mtime - MTIME_BASE, (long long)rd->e[i].next);
	return rd->n - before;
}

static void reader_open_at(struct driver *dv, struct reader *rd, uint64_t dir,
			   const struct where *w, off_t off)
{
	memset(rd, 0, sizeof(*rd));
	rd->dir = dir;
	rd->w = *w;
	rd->used = 1;
	rd->opened = dv->step;
	rd->plus = chance(&dv->g, 40);
	rd->off = off;
	rd->from0 = off == 0;
	pthread_mutex_lock(&M->lock);
	rd->tick = M->tick;
	pthread_mutex_unlock(&M->lock);
	rd->paging = paging_changes();
	if (rd->dir != TREE_ROOT)
		tree_hold(dv->t, rd->dir);
}

static void reader_open(struct driver *dv, struct reader *rd, int near, off_t off)
{
	uint64_t dir;
	struct where w;

	pick_dir(dv, near, &dir, &w);
	reader_open_at(dv, rd, dir, &w, off);
}

/* The child entries of a finished reader: one snapshot (all of one version) or not. */
static int reader_version(const struct reader *rd, int64_t *ver, int *nchild)
{
	int single = 1;

	*ver = -1;
	*nchild = 0;
	for (int i = 0; i < rd->n; i++) {
		if (is_dot(rd->e[i].name) || own_file(&rd->w, rd->e[i].name))
			continue;
		(*nchild)++;
		if (*ver < 0)
			*ver = rd->e[i].mtime;
		else if (rd->e[i].mtime != *ver)
			single = 0;
	}
	return single;
}

/* Names are unique in one snapshot; so are the inodes of a readdirplus read in one go (one
 * given back meanwhile may be a new node's later, as after any forget). */
static void reader_unique(struct driver *dv, const struct reader *rd)
{
	int inos = rd->plus && rd->opened == dv->step;

	for (int i = 0; i < rd->n; i++)
		for (int j = i + 1; j < rd->n; j++) {
			CHECK(dv, strcmp(rd->e[i].name, rd->e[j].name), "'%s' twice (%d, %d)",
			      rd->e[i].name, i, j);
			CHECK(dv, !inos || is_dot(rd->e[i].name) || rd->e[i].ino != rd->e[j].ino,
			      "inode of '%s' and '%s'", rd->e[i].name, rd->e[j].name);
		}
}

static int reader_has(const struct reader *rd, const char *name)
{
	for (int i = 0; i < rd->n; i++)
		if (!strcmp(rd->e[i].name, name))
			return i;
	return -1;
}

/* The directory's own entries are all there: ".", "..", and its files; never its
 * .index.jsonl (docs/design.md §1). */
static void reader_files(struct driver *dv, const struct reader *rd)
{
	CHECK(dv, rd->n >= 2, "%d entries", rd->n);
	CHECK(dv, reader_has(rd, file_names[INDEX_FILE]) < 0, "readdir gave .index.jsonl");
	if (rd->w.kind == K_CS) {
		CHECK(dv, reader_has(rd, "url") >= 0 && reader_has(rd, "meta.json") >= 0,
		      "a code source without url or meta.json");
		for (int i = 2; i < rd->n; i++)
			CHECK(dv, own_file(&rd->w, rd->e[i].name), "'%s' in a code source",
			      rd->e[i].name);
	} else if (rd->w.kind == K_WS) {
		if (M->prov[rd->w.prov].ws_files)
			CHECK(dv, reader_has(rd, "meta.json") == 2 && reader_has(rd, "url") == 3,
			      "meta.json and url of a workspace");
	} else if (rd->w.kind == K_ROOT) {
		CHECK(dv, rd->n == 4 && reader_has(rd, "fa") > 0 && reader_has(rd, "fb") > 0,
		      "the root has %d entries", rd->n);
	}
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The kernel reads a directory again only when its mtime moved: entries that changed
 * since its last whole read must come with other nanoseconds. */
static void dir_moved(struct driver *dv, const struct reader *rd)
{
	struct held *h = held_find(dv, rd->dir);
	struct tree_stat st;
	uint64_t names = 1;

	if (!h)
		return;
	for (int i = 0; i < rd->n; i++)
		names += name_hash(rd->e[i].name);
	CHECK(dv, tree_getattr(dv->t, rd->dir, &st) == 0, "getattr of a directory read");
	CHECK(dv, !h->names || h->names == names || st.mtime_ns != h->mtime_ns,
	      "the entries changed, the mtime (ns %ld) did not", st.mtime_ns);
	h->names = names;
	h->mtime_ns = st.mtime_ns;
}

static void index_parse(struct driver *dv, const char *buf, size_t len, struct expect *x);

/* The index of a directory just read fresh lists what the model does, name for name. */
static void index_exact(struct driver *dv, const struct reader *rd, const struct expect *x)
{
	static char buf[FILE_MAX];
	struct expect got;
	struct tree_stat st;
	int r = tree_lookup(dv->t, rd->dir, file_names[INDEX_FILE], &st), len;

	CHECK(dv, r == 0 && !st.is_dir, "look-up of a fresh listing's index: %d", r);
	len = tree_read(dv->t, st.ino, buf, sizeof(buf), 0);
	CHECK(dv, len >= 0 && (size_t)len == st.size, "index: %d bytes read, %zu told", len,
	      st.size);
	index_parse(dv, buf, (size_t)len, &got);
	tree_forget(dv->t, st.ino, 1);
	CHECK(dv, got.n == x->n, "index of %d entries, the model %d", got.n, x->n);
	for (int i = 0; i < got.n; i++)
		CHECK(dv,
		      expect_id(x, got.name[i]) && !strcmp(expect_id(x, got.name[i]), got.id[i]),
		      "index: '%s' is %s", got.name[i], got.id[i]);
}

/* A snapshot that is the model's current one holds exactly the model's names and ids, and
 * every name in it can be looked up at once. */
static void reader_exact(struct driver *dv, const struct reader *rd, int64_t ver, int must)
{
	struct expect x;
	int w = rd->w.kind == K_PROV ? 0 : rd->w.ws, present, nchild = 0;
	long cur;

	pthread_mutex_lock(&M->lock);
	present = w == 0 || ws_present(&M->prov[rd->w.prov], w);
	cur = MTIME_BASE + M->prov[rd->w.prov].dir[w].ver;
	expect_dir(&M->prov[rd->w.prov], w, &x);
	pthread_mutex_unlock(&M->lock);
	if (!present)
		return;
	CHECK(dv, !must || ver == cur || (ver < 0 && x.n == 0),
	      "a fresh listing of version %lld, the model's %ld", (long long)ver, cur);
	if (ver != cur)
		return;
	for (int i = 0; i < rd->n; i++) {
		const struct seen *s = &rd->e[i];
		const char *id;
		struct tree_stat st;
		struct where cw;
		int r;

		if (is_dot(s->name) || own_file(&rd->w, s->name))
			continue;
		nchild++;
		id = expect_id(&x, s->name);
		CHECK(dv, id != NULL, "'%s' is not in the model's listing", s->name);
		if (!chance(&dv->g, 25) && !rd->plus)
			continue;
		r = tree_lookup(dv->t, rd->dir, s->name, &st);
		CHECK(dv, r == 0, "'%s' of a fresh listing: %d", s->name, r);
		/* The inode may differ: a name look-up after expiry makes a new node. */
		where_child(dv, &rd->w, s->name, st.ino, &cw);
		CHECK(dv, !strcmp(cw.id, id), "'%s' is %s, the model %s", s->name, cw.id, id);
		held_add(dv, st.ino, &cw);
	}
	for (int i = 0; i < x.n; i++)
		CHECK(dv, reader_has(rd, x.name[i]) >= 0,
		      "'%s' (%s) of the model's listing not given", x.name[i], x.id[i]);
	CHECK(dv, nchild == x.n, "%d entries, the model %d", nchild, x.n);
	if (must)
		index_exact(dv, rd, &x);
	dv->n_exact++;
	dir_moved(dv, rd);
}

/* Did records move before others on d's pages while the first page the reader took could
 * still stand for page 1 of the whole listing (MODEL_FIRST_REUSE)? The rest is then paged
 * as the cloud pages now, as if nothing moved: a page fetched in parallel with the others
 * is no better. That is the pager's own gap (docs/reliability.md): without a total any
 * move can shift an entry past the pages; with one, only an insert and a remove that
 * cancel go unseen. Lock held. */
static int pager_gap(const struct mdir *d, const struct reader *rd)
{
	long ins = 0, rem = 0;

	for (long k = rd->moves0; k < d->nmoves; k++) {
		if (d->moves[k].at > rd->first_clock + MODEL_FIRST_REUSE)
			break;
		ins += d->moves[k].ins;
		rem += !d->moves[k].ins;
	}
	return d->no_total ? ins + rem > 0 : ins > 0 && rem > 0;
}

/* Whatever changed while a reader read on, an entry there all along is given once: the
 * first page it was given keeps its place when the rest comes. For a reader of one view
 * whose first answer came from the provider (a listing kept from before may be older than
 * the reader), none changed under the pager. */
static void reader_kept_all(struct driver *dv, const struct reader *rd)
{
	struct mdir *d = where_dir(&rd->w);
	char want[MAX_ENT][ID_CAP];
	int nwant = 0, present;

	if (!d || !rd->plus || !rd->fetched || paging_changes() != rd->paging)
		return;
	pthread_mutex_lock(&M->lock);
	if (rd->partial && pager_gap(d, rd)) {
		pthread_mutex_unlock(&M->lock);
		gaps++;
		return;
	}
	present = rd->w.kind == K_PROV || ws_present(&M->prov[rd->w.prov], rd->w.ws);
	for (int i = 0; i < d->n; i++)
		if (d->e[i].born < rd->tick)
			snprintf(want[nwant++], ID_CAP, "%s", d->e[i].id);
	pthread_mutex_unlock(&M->lock);
	for (int i = 0; present && i < nwant; i++) {
		int found = 0;

		for (int k = 0; k < rd->n; k++)
			found += !is_dot(rd->e[k].name) && !own_file(&rd->w, rd->e[k].name) &&
				 !strcmp(rd->e[k].id, want[i]);
		CHECK(dv, found == 1, "%s, there all along, given %d times", want[i], found);
	}
	dv->n_kept++;
}

/* Did the reader see one view of its directory: one listing, or a first page and the
 * whole that came when it asked for more? A refresh of a whole listing under a reader
 * moves its offsets (nothing is promised then), even one that changed nothing: a listing
 * kept in its first page's order gets the provider's order back. */
static int reader_one_view(const struct reader *rd)
{
	if (!where_dir(&rd->w) || rd->gen == rd->gen0)
		return 1;
	return rd->gen == rd->gen0 + 1 && rd->partial;
}

/* Did the reader's names come from one state of its directory? A reader that went on from
 * a first page into the whole listing that continues it has the page's names as they
 * were: a rename since would look like a wrong name, and the entries' times, which are
 * their nodes' current ones, cannot tell. */
static int reader_one_state(const struct reader *rd)
{
	struct mdir *d = where_dir(&rd->w);
	int same;

	if (!d || rd->gen == rd->gen0)
		return 1;
	pthread_mutex_lock(&M->lock);
	same = d->ver == rd->ver0;
	pthread_mutex_unlock(&M->lock);
	return same;
}

/* A reader that came to the end: what it was given, checked. Others change the tree
 * between the calls of a threaded reader: only the shape of its answers is checked. */
static void reader_done(struct driver *dv, struct reader *rd, int must_be_fresh)
{
	int64_t ver;
	int nchild, single, one;

	if (!rd->from0)
		return;
	reader_files(dv, rd);
	dv->n_done++;
	if (dv->threaded)
		return;
	one = reader_one_view(rd);
	if (one)
		reader_kept_all(dv, rd);
	single = reader_version(rd, &ver, &nchild) && reader_one_state(rd);
	trace(dv, "  done: %d entries, %d children, %s, %s", rd->n, nchild,
	      single ? "one version" : "mixed", one ? "one view" : "moved");
	CHECK(dv, !must_be_fresh || one, "a fresh read saw its listing change");
	if (!single || !one) {
		dv->n_mixed++;
		CHECK(dv, !must_be_fresh, "a fresh listing of mixed versions");
		return;
	}
	reader_unique(dv, rd);
	if (rd->w.kind == K_PROV || rd->w.kind == K_WS)
		reader_exact(dv, rd, ver, must_be_fresh);
}

/* Read on until the end (or an error). */
static void reader_finish(struct driver *dv, struct reader *rd, int must_be_fresh)
{
	int r;

	do
		r = reader_call(dv, rd, 1 + (int)below(&dv->g, 40));
	while (r > 0);
	if (r == 0)
		reader_done(dv, rd, must_be_fresh);
	reader_close(dv, rd);
}

static struct reader *free_reader(struct driver *dv)
{
	for (int i = 0; i < MAX_READERS; i++)
		if (!dv->rd[i].used)
			return &dv->rd[i];
	struct reader *rd = &dv->rd[below(&dv->g, MAX_READERS)];

	reader_close(dv, rd);
	return rd;
}

/* A new reader from the start, or from an offset an earlier one was given (seekdir): it
 * stops after a few entries (and is kept for later) or reads to the end. */
static void op_readdir(struct driver *dv, int seek)
{
	struct reader *rd = free_reader(dv);
	off_t off = seek ? dv->kept_off[below(&dv->g, 8)] : 0;
	int r;

	reader_open(dv, rd, 1, off);
	trace(dv, "readdir%s dir %d/%d/%d/%s from %lld", rd->plus ? "plus" : "", rd->w.kind,
	      rd->w.prov, rd->w.ws, rd->w.id, (long long)off);
	if (chance(&dv->g, 35)) {
		reader_finish(dv, rd, 0);
		return;
	}
	r = reader_call(dv, rd, 1 + (int)below(&dv->g, 6));
	dv->kept_off[below(&dv->g, 8)] = rd->off;
	if (r < 0)
		reader_close(dv, rd);
}

/* A reader that stopped comes back: one more call, or on to the end. */
static void op_readdir_more(struct driver *dv)
{
	struct reader *rd = &dv->rd[below(&dv->g, MAX_READERS)];
	int r;

	for (int i = 0, near = chance(&dv->g, 70); near && i < MAX_READERS; i++)
		if (dv->rd[i].used && dv->rd[i].dir == dv->last_dir) {
			rd = &dv->rd[i];
			break;
		}
	if (!rd->used) {
		op_readdir(dv, 0);
		return;
	}
	trace(dv, "readdir again dir %d/%d/%d/%s at %lld", rd->w.kind, rd->w.prov, rd->w.ws,
	      rd->w.id, (long long)rd->off);
	if (chance(&dv->g, 40)) {
		reader_finish(dv, rd, 0);
		return;
	}
	r = reader_call(dv, rd, 1 + (int)below(&dv->g, 6));
	if (r == 0)
		reader_done(dv, rd, 0);
	if (r <= 0)
		reader_close(dv, rd);
}

/* A workspace the kernel holds, or 0 when it holds none. */
static int pick_ws(struct driver *dv, uint64_t *ino, struct where *w)
{
	int cand[64], n = 0, unread = 0;

	for (int i = 0; i < dv->nheld; i++)
		unread |= dv->held[i].w.kind == K_WS && dv->held[i].reads == 0;
	for (int i = 0; i < dv->nheld && n < 64; i++)
		if (dv->held[i].w.kind == K_WS && (!unread || dv->held[i].reads == 0))
			cand[n++] = i;
	if (n == 0)
		return 0;
	n = cand[below(&dv->g, (unsigned)n)];
	*ino = dv->last_dir = dv->held[n].ino;
	*w = dv->held[n].w;
	return 1;
}

/* A workspace that went and came back: a new node, never listed (the kernel may hold the
 * old one). 0 when it could not be had (a failure on the way). */
static int fresh_ws(struct driver *dv, uint64_t *ino, struct where *w)
{
	int pi = (int)below(&dv->g, NPROV), ws = 1 + (int)below(&dv->g, NWS);
	struct mprov *p = &M->prov[pi];
	struct tree_stat prov, st;
	char name[4];
	int r;

	snprintf(name, sizeof(name), "f%c", 'a' + pi);
	assert_int_equal(tree_lookup(dv->t, TREE_ROOT, name, &prov), 0);
	snprintf(name, sizeof(name), "w%c", '0' + ws);
	trace(dv, "  %s/%s goes and comes back", p->name, name);
	for (int back = 0; back < 2; back++) {
		pthread_mutex_lock(&M->lock);
		for (int i = 0; i < p->dir[0].n; i++)
			if (!back && ws_index(p->dir[0].e[i].id) == ws)
				mdir_remove(&p->dir[0], i);
		if (back)
			root_add(M, p, ws);
		p->dir[0].ver++;
		M->tick++;
		pthread_mutex_unlock(&M->lock);
		atomic_fetch_add(&fake_clock, dv->o.dir_ttl + 1);
		r = tree_lookup(dv->t, prov.ino, name, &st);
		if (r == 0 && !back)
			tree_forget(dv->t, st.ino, 1);
	}
	tree_forget(dv->t, prov.ino, 1);
	if (r < 0)
		return 0;
	memset(w, 0, sizeof(*w));
	w->kind = K_WS;
	w->prov = pi;
	w->ws = ws;
	w->file = -1;
	snprintf(w->id, sizeof(w->id), "%s", name);
	held_add(dv, st.ino, w);
	*ino = dv->last_dir = st.ino;
	return 1;
}

/* One thing that happens to a workspace while a reader stands in its first page. */
static void story_event(struct driver *dv, struct reader *rd)
{
	struct mprov *p = &M->prov[rd->w.prov];
	char name[NAMES_MAX + 16];
	int k = rd->n > 0 ? (int)below(&dv->g, (unsigned)rd->n) : 0;
	long by;

	switch (below(&dv->g, 8)) {
	case 0:
	case 1:
	case 2:
		trace(dv, "  change %s/%d", p->name, rd->w.ws);
		pthread_mutex_lock(&M->lock);
		mdir_change(M, p, rd->w.ws, &dv->g);
		pthread_mutex_unlock(&M->lock);
		break;
	case 3: /* past the first page's use as page 1, or past dir_ttl */
		by = chance(&dv->g, 50) ? MODEL_FIRST_REUSE + 1 : dv->o.dir_ttl + 1;
		atomic_fetch_add(&fake_clock, by);
		trace(dv, "  clock +%ld", by);
		break;
	case 4:
		trace(dv, "  flush");
		tree_flush(dv->t);
		break;
	case 5: /* the reader goes on a little */
		reader_call(dv, rd, 1 + (int)below(&dv->g, 3));
		break;
	case 6: /* a name of the first page, looked up again */
		if (rd->n > 0 && !is_dot(rd->e[k].name) && !own_file(&rd->w, rd->e[k].name))
			lookup_in(dv, rd->dir, rd->w, rd->e[k].name, 0);
		break;
	default: /* one only a whole listing answers */
		snprintf(name, sizeof(name), "%.*s~%u", NAMES_MAX, rd->n ? rd->e[k].name : "x",
			 below(&dv->g, 300));
		lookup_in(dv, rd->dir, rd->w, name, 0);
	}
}

/* What was behind the use-after-free of a first page, as a story: a reader takes the first
 * entries of a workspace and stops; the workspace changes, its first page expires or is
 * flushed, names of that page are looked up again, or one only a whole listing answers;
 * then the reader goes on to the end. */
static void op_story(struct driver *dv)
{
	struct reader *rd = free_reader(dv);
	struct where w;
	uint64_t ino;

	if (!(chance(&dv->g, 50) ? fresh_ws(dv, &ino, &w) : pick_ws(dv, &ino, &w))) {
		op_lookup(dv, 0);
		return;
	}
	reader_open_at(dv, rd, ino, &w, 0);
	rd->plus = chance(&dv->g, 60);
	trace(dv, "story%s dir %d/%d/%d/%s", rd->plus ? " plus" : "", w.kind, w.prov, w.ws, w.id);
	if (reader_call(dv, rd, 1 + (int)below(&dv->g, 6)) < 0) {
		reader_close(dv, rd);
		return;
	}
	for (int n = 1 + (int)below(&dv->g, 4); n > 0; n--)
		story_event(dv, rd);
	reader_finish(dv, rd, 0);
}

/* Every TTL passed, or a flush (SIGHUP), and no failures: a whole read from the start is
 * the model's listing (unless the data changed while it was paged, or the workspace is
 * gone). */
static void op_full_check(struct driver *dv)
{
	struct reader *rd = free_reader(dv);
	int saved[NPROV], r, present = 1, flush = chance(&dv->g, 30);
	long c0;

	if (flush)
		tree_flush(dv->t);
	else
		atomic_fetch_add(&fake_clock, max_ttl(&dv->o));
	set_fail(0, saved);
	reader_open(dv, rd, 0, 0);
	trace(dv, "full check%s after a %s, dir %d/%d/%d/%s", rd->plus ? " plus" : "",
	      flush ? "flush" : "clock jump", rd->w.kind, rd->w.prov, rd->w.ws, rd->w.id);
	if (rd->w.kind == K_WS) {
		pthread_mutex_lock(&M->lock);
		present &= ws_present(&M->prov[rd->w.prov], rd->w.ws);
		pthread_mutex_unlock(&M->lock);
	}
	c0 = paging_changes();
	do
		r = reader_call(dv, rd, 1 + (int)below(&dv->g, 40));
	while (r > 0);
	CHECK(dv, r == 0 || (r == -ENOENT && !present), "a full read failed: %d", r);
	if (r == 0)
		reader_done(dv, rd, present && paging_changes() == c0);
	reader_close(dv, rd);
	restore_fail(saved);
}

/* ---- files, attributes, references ------------------------------------------------------ */

/* A directory's .index.jsonl: one JSON object a line, each with a name and an id, no name
 * nor id twice; into *x. */
static void index_parse(struct driver *dv, const char *buf, size_t len, struct expect *x)
{
	const char *p = buf, *end = buf + len;

	x->n = 0;
	CHECK(dv, len == 0 || buf[len - 1] == '\n', "an index not ended by a newline");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char *line = strndup(p, (size_t)(nl - p));
		struct json_object *o = json_tokener_parse(line), *name, *id;

		CHECK(dv, x->n < EXPECT_CAP, "an index of more than %d lines", EXPECT_CAP);
		CHECK(dv,
		      o && json_object_object_get_ex(o, "name", &name) &&
			  json_object_object_get_ex(o, "id", &id),
		      "index line '%s'", line);
		snprintf(x->name[x->n], sizeof(x->name[0]), "%s", json_object_get_string(name));
		snprintf(x->id[x->n], sizeof(x->id[0]), "%s", json_object_get_string(id));
		for (int i = 0; i < x->n; i++)
			CHECK(dv,
			      strcmp(x->name[i], x->name[x->n]) && strcmp(x->id[i], x->id[x->n]),
			      "index line '%.80s' twice", line);
		x->n++;
		json_object_put(o);
		free(line);
		p = nl + 1;
	}
}

/* The bytes of a file a held inode may show: some version the model gave that record. */
static void check_file_bytes(struct driver *dv, const struct held *h, const char *buf, int len)
{
	char want[FILE_MAX];
	long idx = strtol(h->w.id, NULL, 10) - 100;
	int v = 0, n = 0;
	struct expect x;

	if (h->w.file == INDEX_FILE) {
		index_parse(dv, buf, (size_t)len, &x);
		return;
	}
	CHECK(dv, len > 0 && buf[len - 1] == '\n', "file %d of %s: %d bytes", h->w.file, h->w.id,
	      len);
	if (h->w.file == 1 && ws_index(h->w.id)) {
		snprintf(want, sizeof(want), "https://console.example/%s\n", h->w.id);
		CHECK(dv, len == (int)strlen(want) && !memcmp(buf, want, (size_t)len),
		      "url of %s: '%.*s'", h->w.id, len, buf);
		return;
	}
	if (h->w.file == 0) {
		if (ws_index(h->w.id))
			snprintf(want, sizeof(want), "{}\n");
		else
			snprintf(want, sizeof(want), "{\"id\": \"%s\"}\n", h->w.id);
		CHECK(dv, len == (int)strlen(want) && !memcmp(buf, want, (size_t)len),
		      "meta.json of %s: '%.*s'", h->w.id, len, buf);
		return;
	}
	if (h->w.file == 1) {
		snprintf(want, sizeof(want), "https://git.example/%s/v%%d.git\n%%n", h->w.id);
		sscanf(buf, want, &v, &n);
	} else {
		sscanf(buf, "b%d\n%n", &v, &n);
	}
	pthread_mutex_lock(&M->lock);
	int max = h->w.file == 1 ? M->urlmax[idx] : M->branchmax[idx];
	pthread_mutex_unlock(&M->lock);
	CHECK(dv, n == len && v >= 1 && v <= max, "file %d of %s: '%.*s' (version %d of %d)",
	      h->w.file, h->w.id, len, buf, v, max);
}

static void check_file(struct driver *dv, const struct held *h)
{
	struct tree_stat st;
	char buf[FILE_MAX], part[FILE_MAX];
	int r = tree_getattr(dv->t, h->ino, &st), len, off, size;

	CHECK(dv, r == 0 || (r == -ENOENT && h->w.file == 2), "getattr of file %d of %s: %d",
	      h->w.file, h->w.id, r);
	len = tree_read(dv->t, h->ino, buf, sizeof(buf) - 1, 0);
	buf[len > 0 ? len : 0] = '\0';
	if (r < 0 || (dv->threaded && len == -ENOENT)) {
		CHECK(dv, len == -ENOENT || dv->threaded, "read of a file gone: %d", len);
		return;
	}
	CHECK(dv, dv->threaded || (size_t)len == st.size, "read %d bytes of %zu", len, st.size);
	check_file_bytes(dv, h, buf, len);
	off = (int)below(&dv->g, (unsigned)len + 2);
	size = (int)below(&dv->g, 12);
	r = tree_read(dv->t, h->ino, part, (size_t)size, off);
	if (!dv->threaded)
		CHECK(dv,
		      r == (off >= len	       ? 0
			    : off + size > len ? len - off
					       : size) &&
			  !memcmp(part, buf + off, r > 0 ? (size_t)r : 0),
		      "read %d at %d: %d", size, off, r);
	CHECK(dv, tree_readdir(dv->t, h->ino, 0, 0, reader_fill, &(struct reader){0}) == -ENOTDIR,
	      "readdir of a file");
	CHECK(dv, tree_lookup(dv->t, h->ino, "x", &st) == -ENOTDIR, "lookup in a file");
}

/* Attributes, extended attributes and bytes of something held. */
static void op_inspect(struct driver *dv)
{
	struct held *h;
	struct tree_stat st;
	char id[64], list[256];
	int r;

	if (!dv->nheld)
		return;
	h = &dv->held[below(&dv->g, (unsigned)dv->nheld)];
	trace(dv, "inspect %llx kind %d id %s file %d", (unsigned long long)h->ino, h->w.kind,
	      h->w.id, h->w.file);
	if (h->w.kind == K_FILE) {
		check_file(dv, h);
		return;
	}
	r = tree_getattr(dv->t, h->ino, &st);
	CHECK(dv, r == 0 && st.is_dir && st.ino == h->ino, "getattr of a held directory: %d", r);
	r = tree_getxattr(dv->t, h->ino, "user.codesrcfs.id", id, sizeof(id) - 1);
	if (h->w.kind == K_PROV) {
		CHECK(dv, r == -ENODATA, "a provider's id: %d", r);
		return;
	}
	CHECK(dv, r > 0 && (size_t)r == strlen(h->w.id) && !memcmp(id, h->w.id, (size_t)r),
	      "the id of %s changed: %d", h->w.id, r);
	CHECK(dv, tree_read(dv->t, h->ino, id, sizeof(id), 0) == -EISDIR, "read of a directory");
	r = tree_listxattr(dv->t, h->ino, NULL, 0);
	CHECK(dv, r > 0 && r < (int)sizeof(list), "listxattr: %d", r);
	CHECK(dv, tree_listxattr(dv->t, h->ino, list, sizeof(list)) == r, "listxattr twice");
}

/* The kernel lets go of some lookups of something held, or all of them. */
static void op_forget(struct driver *dv)
{
	int i;
	uint64_t n;

	if (!dv->nheld)
		return;
	i = (int)below(&dv->g, (unsigned)dv->nheld);
	n = chance(&dv->g, 50) ? dv->held[i].n : 1 + below(&dv->g, (unsigned)dv->held[i].n);
	trace(dv, "forget %llx kind %d id %s: %llu of %llu", (unsigned long long)dv->held[i].ino,
	      dv->held[i].w.kind, dv->held[i].w.id, (unsigned long long)n,
	      (unsigned long long)dv->held[i].n);
	held_forget(dv, i, n);
}

/* A reference such as a queued notification takes (tree_hold), given back later. */
static void op_hold(struct driver *dv)
{
	struct held *h;

	if (!dv->nheld)
		return;
	h = &dv->held[below(&dv->g, (unsigned)dv->nheld)];
	trace(dv, "hold %llx", (unsigned long long)h->ino);
	tree_hold(dv->t, h->ino);
	h->n++;
}

/* ---- the world moves ---------------------------------------------------------------- */

static void op_clock(struct driver *dv)
{
	static const unsigned pct[] = {40, 15, 10, 35};
	long by[] = {below(&dv->g, 4), dv->o.attr_ttl + 1, dv->o.neg_ttl + 1, dv->o.dir_ttl + 1};
	unsigned k = below(&dv->g, 100), i = 0;

	while (k >= pct[i])
		k -= pct[i++];
	atomic_fetch_add(&fake_clock, by[i]);
	trace(dv, "clock +%ld", by[i]);
}

static void op_change(struct driver *dv)
{
	int p = (int)below(&dv->g, NPROV), w = chance(&dv->g, 15) ? 0 : 1 + (int)below(&dv->g, NWS);
	int n = 1 + (int)below(&dv->g, 3);

	trace(dv, "change %s/%d x%d", M->prov[p].name, w, n);
	pthread_mutex_lock(&M->lock);
	while (n--)
		mdir_change(M, &M->prov[p], w, &dv->g);
	pthread_mutex_unlock(&M->lock);
}

static void op_fail(struct driver *dv)
{
	static const int pct[] = {0, 0, 0, 10, 20, 40};
	int p = (int)below(&dv->g, NPROV), v = pct[below(&dv->g, 6)];

	trace(dv, "failures %s %d%%", M->prov[p].name, v);
	pthread_mutex_lock(&M->lock);
	M->prov[p].fail_pct = v;
	pthread_mutex_unlock(&M->lock);
}

static void op_flush(struct driver *dv)
{
	int before[NPROV];

	trace(dv, "flush");
	pthread_mutex_lock(&M->lock);
	for (int i = 0; i < NPROV; i++)
		before[i] = M->prov[i].flushes;
	pthread_mutex_unlock(&M->lock);
	tree_flush(dv->t);
	pthread_mutex_lock(&M->lock);
	for (int i = 0; i < NPROV; i++)
		CHECK(dv, M->prov[i].flushes == before[i] + 1, "provider %d not flushed", i);
	pthread_mutex_unlock(&M->lock);
}

/* ---- episodes ---------------------------------------------------------------------------- */

static void watch_entry(void *ctx, uint64_t dir, const char *name, int gone)
{
	(void)ctx, (void)dir, (void)name, (void)gone;
	atomic_fetch_add(&watched, 1);
}

static void watch_inode(void *ctx, uint64_t ino)
{
	(void)ctx, (void)ino;
	atomic_fetch_add(&watched, 1);
}

static struct tree *episode_tree(struct driver *dv, int parallel)
{
	static const long dir_ttl[] = {2, 5, 60}, attr_ttl[] = {1, 30, 90}, neg_ttl[] = {0, 10};
	struct provider *provs[NPROV];
	struct tree *t;

	dv->o = (struct tree_opts){.dir_ttl = dir_ttl[below(&dv->g, 3)],
				   .attr_ttl = attr_ttl[below(&dv->g, 3)],
				   .neg_ttl = neg_ttl[below(&dv->g, 2)],
				   .parallel = parallel};
	for (int i = 0; i < NPROV; i++)
		provs[i] = &M->prov[i].base;
	t = tree_new(provs, NPROV, &dv->o);
	assert_non_null(t);
	tree_watch(t, &(struct tree_watch){.entry = watch_entry, .inode = watch_inode});
	return t;
}

/* Unmount: readers close, the kernel gives back some of what it holds (or everything),
 * and the tree frees the rest. */
static void episode_end(struct driver *dv, int forget_all)
{
	for (int i = 0; i < MAX_READERS; i++)
		if (dv->rd[i].used)
			reader_close(dv, &dv->rd[i]);
	for (int i = dv->nheld - 1; i >= 0; i--)
		if (forget_all || chance(&dv->g, 50))
			held_forget(dv, i, dv->held[i].n);
	tree_free(dv->t);
	dv->t = NULL;
	dv->nheld = 0;
	dv->last_dir = TREE_ROOT;
	memset(dv->recent, 0, sizeof(dv->recent));
}

static void op_lookup_cached(struct driver *dv)
{
	op_lookup(dv, 0);
}

static void op_lookup_fresh(struct driver *dv)
{
	op_lookup(dv, 1);
}

static void op_readdir_start(struct driver *dv)
{
	op_readdir(dv, 0);
}

static void op_readdir_seek(struct driver *dv)
{
	op_readdir(dv, 1);
}

struct op {
	unsigned weight;
	void (*run)(struct driver *dv);
};

static const struct op ops_all[] = {
    {18, op_lookup_cached}, {8, op_lookup_fresh}, {7, op_readdir_start}, {3, op_readdir_seek},
    {18, op_readdir_more},  {10, op_forget},	  {2, op_hold},		 {10, op_inspect},
    {10, op_clock},	    {10, op_change},	  {3, op_fail},		 {3, op_flush},
    {4, op_full_check},	    {8, op_story},
};

/* What the kernel's threads do, while another thread moves the world. */
static const struct op ops_reader[] = {
    {18, op_lookup_cached}, {7, op_readdir_start}, {3, op_readdir_seek}, {18, op_readdir_more},
    {10, op_forget},	    {2, op_hold},	   {10, op_inspect},
};

static const struct op ops_world[] = {
    {10, op_clock},
    {10, op_change},
    {3, op_fail},
    {2, op_flush},
};

static void step_one(struct driver *dv, const struct op *ops, size_t n)
{
	unsigned total = 0, k;
	size_t i;

	for (i = 0; i < n; i++)
		total += ops[i].weight;
	k = below(&dv->g, total);
	for (i = 0; i + 1 < n && k >= ops[i].weight; i++)
		k -= ops[i].weight;
	if (dv->nheld > 150 && chance(&dv->g, 50))
		op_forget(dv);
	else
		ops[i].run(dv);
}

/* After every step: the root answers, and so does everything the kernel holds. */
static void step_check(struct driver *dv)
{
	struct tree_stat st;

	CHECK(dv, tree_getattr(dv->t, TREE_ROOT, &st) == 0 && st.is_dir, "the root");
	for (int i = 0; i < dv->nheld; i++) {
		int r = tree_getattr(dv->t, dv->held[i].ino, &st);

		CHECK(dv, r == 0 || (r == -ENOENT && dv->held[i].w.file == 2),
		      "getattr of held %llx kind %d: %d", (unsigned long long)dv->held[i].ino,
		      dv->held[i].w.kind, r);
	}
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

static struct model model_storage;

static void test_model_single_thread(void **state)
{
	struct driver *dv = calloc(1, sizeof(*dv));
	long steps = (long)env_u64("CODESRCFS_MODEL_STEPS", DEFAULT_STEPS), end = 0;
	int episodes = 0;

	(void)state;
	dv->seed = env_u64("CODESRCFS_MODEL_SEED", DEFAULT_SEED);
	dv->g.s = dv->seed;
	current = dv;
	M = &model_storage;
	printf("model: seed %llu, %ld steps\n", (unsigned long long)dv->seed, steps);
	for (dv->step = 0; dv->step < steps; dv->step++) {
		if (dv->step == end) {
			if (dv->t) {
				episode_end(dv, chance(&dv->g, 50));
				model_free(M);
			}
			model_init(M, rng_next(&dv->g));
			atomic_store(&fake_clock, 1000);
			/* parallel=1 still fetches with two page threads (the fake answers both
			 * at once): when each finishes decides a stream's steps, and the steps
			 * after depend on those. */
			dv->t = episode_tree(dv, 1);
			end = dv->step + (chance(&dv->g, 70) ? 30 + below(&dv->g, 100)
							     : 200 + below(&dv->g, 600));
			episodes++;
			trace(dv, "episode: dir_ttl %ld attr_ttl %ld neg_ttl %ld", dv->o.dir_ttl,
			      dv->o.attr_ttl, dv->o.neg_ttl);
		}
		step_one(dv, ops_all, sizeof(ops_all) / sizeof(ops_all[0]));
		step_check(dv);
	}
	episode_end(dv, chance(&dv->g, 50));
	model_free(M);
	printf("model: %d episodes; %ld look-ups (%ld found, %ld against the model); %ld whole "
	       "reads (%ld of mixed versions or moved, %ld against the model, %ld checked for "
	       "loss); %ld changes told\n",
	       episodes, dv->n_lookups, dv->n_found, dv->n_fresh_lookups, dv->n_done, dv->n_mixed,
	       dv->n_exact, dv->n_kept, atomic_load(&watched));
	printf("model: %ld readers not checked for loss: records moved while their first page "
	       "stood for page 1 (the pager's own gap)\n",
	       gaps);
	fflush(stdout);
	current = NULL;
	free(dv->held);
	free(dv);
}

#define NTHREADS 3

struct mt_driver {
	struct driver dv;
	long steps;
	int world; /* the thread that moves the clock and the data */
};

static void *mt_run(void *arg)
{
	struct mt_driver *m = arg;
	struct driver *dv = &m->dv;

	for (dv->step = 0; dv->step < m->steps; dv->step++) {
		if (m->world)
			step_one(dv, ops_world, sizeof(ops_world) / sizeof(ops_world[0]));
		else
			step_one(dv, ops_reader, sizeof(ops_reader) / sizeof(ops_reader[0]));
		step_check(dv);
	}
	return NULL;
}

/* Several threads read one tree while another changes the provider's data, moves the
 * clock past every TTL and flushes: only what holds whatever the interleaving is checked
 * (one snapshot's names are unique, bytes are some version's, references balance), and
 * the sanitizers watch the rest. */
static void test_model_threads(void **state)
{
	struct mt_driver *m = calloc(NTHREADS + 1, sizeof(*m));
	long steps = (long)env_u64("CODESRCFS_MODEL_STEPS", DEFAULT_STEPS) / 3;
	uint64_t seed = env_u64("CODESRCFS_MODEL_SEED", DEFAULT_SEED);
	pthread_t th[NTHREADS + 1];
	struct tree *t;

	(void)state;
	M = &model_storage;
	model_init(M, seed);
	atomic_store(&fake_clock, 1000);
	m[0].dv.g.s = seed;
	t = episode_tree(&m[0].dv, 3);
	for (int i = 0; i <= NTHREADS; i++) {
		m[i].dv.g.s = seed + 7919 * (uint64_t)i;
		m[i].dv.seed = seed;
		m[i].dv.t = t;
		m[i].dv.o = m[0].dv.o;
		m[i].dv.threaded = 1;
		m[i].dv.last_dir = TREE_ROOT;
		m[i].steps = steps;
		m[i].world = i == NTHREADS;
	}
	for (int i = 0; i <= NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, mt_run, &m[i]), 0);
	for (int i = 0; i <= NTHREADS; i++)
		pthread_join(th[i], NULL);
	long lookups = 0, reads = 0;

	for (int i = 0; i < NTHREADS; i++) {
		lookups += m[i].dv.n_lookups;
		reads += m[i].dv.n_done;
	}
	printf("model: %d threads, %ld steps each: %ld look-ups, %ld whole reads\n", NTHREADS,
	       steps, lookups, reads);
	fflush(stdout);
	for (int i = 0; i <= NTHREADS; i++) {
		m[i].dv.t = t;
		for (int k = 0; k < MAX_READERS; k++)
			if (m[i].dv.rd[k].used)
				reader_close(&m[i].dv, &m[i].dv.rd[k]);
		while (m[i].dv.nheld && chance(&m[i].dv.g, 90))
			held_forget(&m[i].dv, 0, m[i].dv.held[0].n);
		free(m[i].dv.held);
	}
	tree_free(t);
	model_free(M);
	free(m);
}

/* ---- what the model found, as stories that replay it ----------------------------------- */

/* A tree over the model whose workspace w1 of provider fa holds e0..e<n-1>, oldest first,
 * in pages of page_size; *ws is w1, held (with fa: give both back with story_end). */
static struct tree *story_begin(int n, long page_size, int no_total, struct tree_stat *prov,
				struct tree_stat *ws)
{
	struct tree_opts o = {.dir_ttl = 60, .attr_ttl = 30, .neg_ttl = 10, .parallel = 1};
	struct provider *provs[NPROV];
	struct mdir *d;
	struct tree *t;
	struct rng g = {1};

	M = &model_storage;
	model_init(M, 1);
	d = &M->prov[0].dir[1];
	d->n = 0;
	for (int i = 0; i < n; i++) {
		mdir_add(M, d, &g);
		d->e[d->n - 1].dup = 0;
	}
	for (int i = 0; i < n; i++)
		d->e[i].name_len = (size_t)snprintf(d->e[i].name, NAME_CAP, "e%d", i);
	d->page_size = page_size;
	d->no_total = no_total;
	atomic_store(&fake_clock, 1000);
	for (int i = 0; i < NPROV; i++)
		provs[i] = &M->prov[i].base;
	t = tree_new(provs, NPROV, &o);
	assert_int_equal(tree_lookup(t, TREE_ROOT, "fa", prov), 0);
	assert_int_equal(tree_lookup(t, prov->ino, "w1", ws), 0);
	return t;
}

static void story_end(struct tree *t, struct tree_stat *prov, struct tree_stat *ws)
{
	tree_forget(t, ws->ino, 1);
	tree_forget(t, prov->ino, 1);
	tree_free(t);
	model_free(M);
}

/* Read on to the end. */
static void read_rest(struct tree *t, uint64_t ino, struct reader *rd)
{
	int before;

	do {
		before = rd->n;
		rd->budget = 100;
		assert_int_equal(tree_readdir(t, ino, rd->off, 0, reader_fill, rd), 0);
	} while (rd->n > before);
}

/* Each of e<from>..e<to - 1> was given once. */
static void given_once(const struct reader *rd, int from, int to)
{
	for (int i = from; i < to; i++) {
		char name[16];
		int found = 0;

		snprintf(name, sizeof(name), "e%d", i);
		for (int k = 0; k < rd->n; k++)
			found += !strcmp(rd->e[k].name, name);
		if (found != 1)
			fail_msg("%s given %d times", name, found);
	}
}

/* The version of the entries a whole read of directory ino gives, -1 when it has none. */
static int64_t whole_version(struct tree *t, uint64_t ino)
{
	struct reader rd = {.plus = 0};
	int64_t ver = -1;
	int before;

	do {
		before = rd.n;
		rd.budget = 1000;
		assert_int_equal(tree_readdir(t, ino, rd.off, 0, reader_fill, &rd), 0);
	} while (rd.n > before);
	for (int i = 2; i < rd.n && ver < 0; i++) /* after "." and ".." (fa's have no files) */
		ver = rd.e[i].mtime;
	free(rd.e);
	return ver;
}

/* Found by the model (with the fix undone, CODESRCFS_MODEL_SEED=7 fails at step 1874: "a
 * fresh listing of version 1600000012, the model's 1600000013" in a whole read after a
 * flush; so do 8, 9, 15, 44, 45, 52 and 56 of seeds 1 to 60): a flush (SIGHUP) forgot the listings
 * of the directories it reached from the root only. A workspace the kernel still holds that a
 * refresh of its provider dropped (gone, then back as a new node) kept its old listing through the
 * flush and served it until dir_ttl, though the watch had told the kernel to ask for it again. */
static void test_flush_reaches_a_directory_a_refresh_replaced(void **state)
{
	struct tree_opts o = {.dir_ttl = 60, .attr_ttl = 30, .neg_ttl = 10, .parallel = 1};
	struct provider *provs[NPROV];
	struct tree_stat prov, ws, again;
	struct mprov *p;
	struct tree *t;
	struct rng g = {1};

	(void)state;
	M = &model_storage;
	model_init(M, 1);
	p = &M->prov[0];
	p->dir[0].n = 0;
	root_add(M, p, 1);
	p->dir[1].n = 0;
	mdir_add(M, &p->dir[1], &g);
	p->dir[1].page_size = 10;
	atomic_store(&fake_clock, 1000);
	for (int i = 0; i < NPROV; i++)
		provs[i] = &M->prov[i].base;
	t = tree_new(provs, NPROV, &o);
	assert_int_equal(tree_lookup(t, TREE_ROOT, "fa", &prov), 0);
	assert_int_equal(tree_lookup(t, prov.ino, "w1", &ws), 0); /* the kernel holds w1 */
	assert_int_equal(whole_version(t, ws.ino), MTIME_BASE + p->dir[1].ver);

	p->dir[0].n = 0; /* w1 goes; a refresh of fa drops its node */
	atomic_fetch_add(&fake_clock, 61);
	assert_int_equal(tree_lookup(t, prov.ino, "w1", &again), -ENOENT);
	root_add(M, p, 1); /* and comes back: a new node */
	atomic_fetch_add(&fake_clock, 61);
	assert_int_equal(tree_lookup(t, prov.ino, "w1", &again), 0);
	assert_int_not_equal(again.ino, ws.ino);
	tree_forget(t, again.ino, 1);
	/* The kernel reads the old node again: a fresh listing. */
	assert_int_equal(whole_version(t, ws.ino), MTIME_BASE + p->dir[1].ver);

	p->dir[1].e[0].urlver++; /* w1's data changes, then SIGHUP */
	p->dir[1].ver++;
	tree_flush(t);
	assert_int_equal(whole_version(t, ws.ino), MTIME_BASE + p->dir[1].ver);

	tree_forget(t, ws.ino, 1);
	tree_forget(t, prov.ino, 1);
	tree_free(t);
	model_free(M);
}

/* Found by the model on the tree before readdir offsets carried their listing: a reader
 * that stopped inside a first page and came back once that page expired skipped an entry
 * when one it had been given left meanwhile (its offset was not moved back by the entries
 * gone). It reads on in the page it began on now, then in the whole listing that
 * continues it. */
static void test_reader_back_in_an_expired_first_page_skips_nothing(void **state)
{
	struct tree_stat prov, ws;
	struct reader rd = {0};
	struct tree *t = story_begin(8, 4, 0, &prov, &ws);

	(void)state;
	rd.budget = 4; /* ".", "..", e0, e1: the first page is e0..e3 */
	assert_int_equal(tree_readdir(t, ws.ino, 0, 0, reader_fill, &rd), 0);
	assert_string_equal(rd.e[3].name, "e1");
	mdir_remove(&M->prov[0].dir[1], 0); /* e0 goes */
	M->prov[0].dir[1].ver++;
	atomic_fetch_add(&fake_clock, 61);
	read_rest(t, ws.ino, &rd);
	given_once(&rd, 1, 8); /* e2 was skipped */
	free(rd.e);
	story_end(t, &prov, &ws);
}

/* Found by the model (with the fix undone, CODESRCFS_MODEL_SEED=9 fails at step 2548: "106,
 * there all along, given 0 times"; so do 14 and 25 of seeds 1 to 60): the rest of a listing was
 * paged after its first page, kept since a reader took it (up to dir_ttl before, or however long
 * before for the reader at its end), as if no record had moved meanwhile. One removed from the
 * first page pulled the first record of page 2 into page 1's range: nobody asked for it again, and
 * it was missing from the whole listing until the next refresh. With no total nothing can tell;
 * with a total, a record added elsewhere hid it as well. A first page older than a second is asked
 * for again now. */
static void first_page_kept_loses_none(int no_total, int add)
{
	struct tree_stat prov, ws;
	struct reader rd = {0};
	struct tree *t = story_begin(8, 4, no_total, &prov, &ws);
	struct mdir *d = &M->prov[0].dir[1];
	struct rng g = {2};

	rd.budget = 3; /* ".", "..", e0: the first page is e0..e3 */
	assert_int_equal(tree_readdir(t, ws.ino, 0, 0, reader_fill, &rd), 0);
	atomic_fetch_add(&fake_clock, MODEL_FIRST_REUSE + 1); /* well within dir_ttl */
	mdir_remove(d, 1);				      /* e1 goes */
	if (add)
		mdir_add(M, d, &g); /* and a newer one comes */
	d->ver++;
	read_rest(t, ws.ino, &rd);
	given_once(&rd, 2, 8); /* e4 was missing */
	free(rd.e);
	story_end(t, &prov, &ws);
}

static void test_no_total_first_page_kept_loses_none(void **state)
{
	(void)state;
	first_page_kept_loses_none(1, 0);
}

static void test_total_first_page_kept_loses_none(void **state)
{
	(void)state;
	first_page_kept_loses_none(0, 1);
}

/* Found by the model (the default seed failed now and then under ASan, as the pages came:
 * "111, there all along, given 0 times", "... of the model's listing not given", or a fresh
 * look-up of a name the model has gave ENOENT): whether a page brought an id not seen before
 * was told against every page in so far, those after it included. A page whose ids the pages
 * on either side hold too (records served twice, as offset paging does) brought none once
 * the page after it came first, and ended the listing there: what came after it was
 * dropped. Pages come in any order (the pager's two threads; here made so). */
static void test_a_page_that_comes_late_ends_nothing(void **state)
{
	struct tree_stat prov, ws;
	struct reader rd = {0};
	struct tree *t = story_begin(6, 2, 0, &prov, &ws);
	struct mdir *d = &M->prov[0].dir[1];

	(void)state;
	d->e[1].dup = d->e[2].dup = 1; /* pages e0 e1, e1 e2, e2 e3, e4 e5 */
	d->hold_page = 2;	       /* page 2 comes after page 3 */
	read_rest(t, ws.ino, &rd);
	given_once(&rd, 0, 6); /* e3, e4 and e5 were missing */
	free(rd.e);
	story_end(t, &prov, &ws);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model_single_thread),
	    cmocka_unit_test(test_model_threads),
	    cmocka_unit_test(test_flush_reaches_a_directory_a_refresh_replaced),
	    cmocka_unit_test(test_reader_back_in_an_expired_first_page_skips_nothing),
	    cmocka_unit_test(test_no_total_first_page_kept_loses_none),
	    cmocka_unit_test(test_total_first_page_kept_loses_none),
	    cmocka_unit_test(test_a_page_that_comes_late_ends_nothing),
	};

	log_set_file("/dev/null"); /* refresh failures are logged; they are expected here */
	clock_set_test(fake_now);
#ifdef MODEL_SANITIZED
	__sanitizer_set_death_callback(on_sanitizer_death);
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
