/* tree_pager: every call the tree makes into a provider, and whole listings.
 *
 * A full listing fetches page 1, learns the total and the server's page size, then the
 * other pages with up to `parallel` requests in flight; without a total, pages are
 * fetched ahead in a window. Records are de-duplicated by id, and a listing whose total
 * moved while it was paged is fetched again (bounded). The pager never touches a node:
 * it takes a provider and a copy of the directory's record, holds no tree lock, and
 * returns a page of records. Failures come back as the errno a reader sees. */
#define _GNU_SOURCE /* SCHED_BATCH */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "log.h"
#include "tree_i.h"

#define TREE_RELIST   3	 /* fetches of a listing whose total moved while paging */
#define PAGER_THREADS 64 /* most threads fetching one listing */

/* The directory as log lines name it: its id, or the provider for its root. */
static const char *dir_id(const struct provider *p, const struct prov_record *dir)
{
	return dir && dir->id ? dir->id : p->name;
}

/* What a failed provider call means to the reader (docs/design.md §3): rejected
 * credentials stay EACCES, a missing entry ENOENT, a reader that gave up EINTR; every
 * other failure, a time-out included, is EIO. */
static int pager_errno(const struct provider *p, const struct prov_record *dir, int r)
{
	if (r == -EFBIG)
		log_msg(LOG_ERR,
			"%s: '%s': an answer over %ld bytes; failing rather than serving "
			"it cut (docs/design.md §4)",
			p->name, dir_id(p, dir), PROV_MAX_BODY);
	if (r >= 0 || r == -EACCES || r == -ENOENT || r == -ENOMEM || r == -EINTR)
		return r;
	return -EIO;
}

struct idset {
	const char *id;
	UT_hash_handle hh;
};

/* Add id to *set: 1 when it is new there, 0 when it was in already, -ENOMEM. The set
 * keeps the pointer, not a copy. */
static int idset_add(struct idset **set, const char *id)
{
	struct idset *e;

	HASH_FIND_STR(*set, id, e);
	if (e)
		return 0;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->id = id;
	HASH_ADD_KEYPTR(hh, *set, e->id, strlen(e->id), e);
	return 1;
}

static void idset_free(struct idset **set)
{
	struct idset *e, *tmp;

	HASH_ITER(hh, *set, e, tmp) {
		HASH_DEL(*set, e);
		free(e);
	}
}

/* An id a listing's pages brought, and the page that holds it first of those in so far. */
struct seen_id {
	const char *id;
	struct idslab *first;
	UT_hash_handle hh;
};

/* What page `page` brought: the entries of the ids that were new when it came (one
 * allocation a page rather than one an id), and how many ids it holds first. Pages come in
 * any order, so a page before it that comes later may take some of those. */
struct idslab {
	struct idslab *next;
	long page;
	size_t firsts;
	struct seen_id e[];
};

struct pager {
	struct provider *prov;
	const struct prov_record *dir;
	const atomic_int *quit; /* set: the daemon is exiting, ask for no more pages */
	int parallel;
	pthread_mutex_t lock;
	long next, npages;
	long end;		  /* the page that ended the listing: none past it is asked for */
	struct prov_page *pages;  /* pages[k - 1] is page k */
	struct recblock **blocks; /* blocks[k - 1]: page k's strings, packed as it came */
	struct seen_id *seen;	  /* the ids the pages brought so far (they own the strings) */
	struct idslab *slabs;	  /* where seen's entries live */
	size_t repeats;		  /* ids a page brought that a page had brought already */
	size_t entries, bytes;	  /* what they brought, against docs/design.md §4 */
	int err;
	struct prov_cancel cancel;	       /* the caller's, which its page threads obey too */
	struct http_slots slots;	       /* `parallel` of them: the requests in flight */
	const struct pager_progress *progress; /* NULL: nobody is told of pages as they come */
	pthread_cond_t cond;		       /* a page came or a page thread ended */
	unsigned char *arrived;		       /* arrived[k - 1]: page k is in */
	long prefix, told; /* pages 1..prefix are in; progress was told of 1..told */
	int running;	   /* page threads not done yet */
	int taken;	   /* progress took the whole listing */
};

/* Forget the ids seen so far. */
static void seen_free(struct pager *pg)
{
	HASH_CLEAR(hh, pg->seen);
	while (pg->slabs) {
		struct idslab *next = pg->slabs->next;

		free(pg->slabs);
		pg->slabs = next;
	}
}

/* A bound of docs/design.md §4 was passed: the listing fails, said once. Lock held. */
static void pager_bound(struct pager *pg, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	if (pg->err)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_msg(LOG_ERR, "%s: '%s': %s; failing rather than serving it cut (docs/design.md §4)",
		pg->prov->name, dir_id(pg->prov, pg->dir), what);
	pg->err = -EIO;
}

/* The page of slab ends the listing when it holds no id first, unless it says more follow:
 * every id it brought, a page before it brought too. Lock held. */
static void pager_end_at(struct pager *pg, const struct idslab *slab)
{
	if (!slab->firsts && !pg->pages[slab->page - 1].more && slab->page < pg->end)
		pg->end = slab->page;
}

/* The page of slab brings e's id again. Of the pages that bring an id, the first in the
 * listing holds it, whatever order they came in: held by the one that came first, a page
 * that came after the page behind it could hold none, end the listing there and drop what
 * follows. Lock held. */
static void pager_seen_again(struct pager *pg, struct seen_id *e, struct idslab *slab)
{
	struct idslab *was = e->first;

	pg->repeats++;
	if (was->page <= slab->page)
		return;
	e->first = slab;
	slab->firsts++;
	was->firsts--;
	pager_end_at(pg, was);
}

/* Count what page k brought against the bounds, and which ids it holds first; an empty
 * page, or one that holds none, ends the listing unless it says more follow. Lock held. */
static void pager_note(struct pager *pg, long k, const struct prov_page *page)
{
	struct idslab *slab;
	size_t fresh = 0;

	pg->entries += page->n;
	pg->bytes += page->bytes;
	if (pg->entries > (size_t)PROV_MAX_ENTRIES)
		pager_bound(pg, "more than %ld entries", PROV_MAX_ENTRIES);
	if (pg->bytes > (size_t)PROV_MAX_BYTES)
		pager_bound(pg, "more than %ld bytes of answers", PROV_MAX_BYTES);
	slab = pg->err ? NULL : malloc(sizeof(*slab) + page->n * sizeof(slab->e[0]));
	if (!slab) {
		if (!pg->err)
			pg->err = -ENOMEM;
		return;
	}
	slab->next = pg->slabs;
	slab->page = k;
	slab->firsts = 0;
	pg->slabs = slab;
	for (size_t i = 0; i < page->n; i++) {
		const char *id = page->recs[i].id;
		struct seen_id *e;

		if (!id)
			continue;
		HASH_FIND_STR(pg->seen, id, e);
		if (e) {
			pager_seen_again(pg, e, slab);
			continue;
		}
		e = &slab->e[fresh++];
		e->id = id;
		e->first = slab;
		HASH_ADD_KEYPTR(hh, pg->seen, e->id, strlen(e->id), e);
		slab->firsts++;
	}
	pager_end_at(pg, slab);
}

/* Page k is in: the pages in without a gap may have grown. Lock held. */
static void pager_arrived(struct pager *pg, long k)
{
	pg->arrived[k - 1] = 1;
	while (pg->prefix < pg->npages && pg->arrived[pg->prefix])
		pg->prefix++;
	pthread_cond_broadcast(&pg->cond);
}

/* The next page to ask for, or 0 when the listing is over, failed or the daemon exits. */
static long pager_take(struct pager *pg)
{
	long k = 0;

	pthread_mutex_lock(&pg->lock);
	if (!pg->err && atomic_load(pg->quit))
		pg->err = -ECANCELED;
	if (!pg->err && pg->next <= pg->npages && pg->next <= pg->end)
		k = pg->next++;
	pthread_mutex_unlock(&pg->lock);
	return k;
}

/* A page thread's turn: the page it fetches now, for pager_unwanted. */
struct pager_turn {
	struct pager *pg;
	long k;
};

/* The cancel callback of a page's request: its caller gave up, the listing failed, or the
 * listing ended before this page, which was handed out before that was known (more threads
 * than requests: it may have waited for a slot meanwhile). */
static int pager_unwanted(void *arg)
{
	struct pager_turn *turn = arg;
	struct pager *pg = turn->pg;
	int r;

	if (pg->cancel.cancelled && pg->cancel.cancelled(pg->cancel.ctx))
		return 1;
	pthread_mutex_lock(&pg->lock);
	r = pg->err || turn->k > pg->end;
	pthread_mutex_unlock(&pg->lock);
	return r;
}

static void *pager_run(void *arg)
{
	struct pager *pg = arg;
	struct pager_turn turn = {.pg = pg};

	provider_set_cancel(&(struct prov_cancel){.cancelled = pager_unwanted, .ctx = &turn});
	provider_set_slots(&pg->slots);
	while ((turn.k = pager_take(pg)) > 0) {
		long k = turn.k;
		int r = pg->prov->ops->list_page(pg->prov, pg->dir, k, &pg->pages[k - 1]);

		/* Here, while other requests are on the wire, rather than after the last page;
		 * before the ids are noted, as packing moves them. */
		if (r == 0)
			recblock_pack(&pg->pages[k - 1], &pg->blocks[k - 1]);
		pthread_mutex_lock(&pg->lock);
		if (r < 0 && !pg->err && k <= pg->end)
			pg->err = r;
		else if (r == 0)
			pager_note(pg, k, &pg->pages[k - 1]);
		if (r == 0)
			pager_arrived(pg, k);
		pthread_mutex_unlock(&pg->lock);
	}
	/* pg goes, and the caller's own thread may have run this (no thread to be had). */
	provider_set_slots(NULL);
	provider_set_cancel(&pg->cancel);
	return NULL;
}

/* Pages first..npages with `parallel` requests in flight, kept so while answers are
 * parsed: twice as many threads as requests, each holding a slot only while its request
 * is on the wire, so that parsing one answer never leaves the wire one request short. */
/* Page threads not done yet, counted up before one starts and down when it ends. */
static void pager_running(struct pager *pg, int delta)
{
	pthread_mutex_lock(&pg->lock);
	pg->running += delta;
	pthread_cond_broadcast(&pg->cond);
	pthread_mutex_unlock(&pg->lock);
}

/* A page thread parses what it fetched in bursts that can wait for a time slice: as a batch
 * thread its wake-up does not preempt the engine's thread (which woke it, and sends the next
 * request), the kernel's readers or anything else that waits on the CPU. Its share of the
 * CPU stays what it was; no privilege is needed, and without it nothing changes. */
static void *pager_thread(void *arg)
{
	pthread_setschedparam(pthread_self(), SCHED_BATCH, &(struct sched_param){0});
	pager_run(arg);
	pager_running(arg, -1);
	return NULL;
}

/* Are pages 1..n the whole listing, as merge_pages would make it: every page of those page 1
 * counted, none ending it early, each saying the same total, which the ids add up to, none
 * met twice? Then no page past them is asked for and the listing is not fetched again.
 * Lock held. */
static int pager_whole(const struct pager *pg, long n)
{
	const struct prov_page *pages = pg->pages;

	if (n != pg->npages || pages[0].total < 0 || pg->end < n || pg->repeats || pg->err)
		return 0;
	for (long k = 1; k < n; k++)
		if (pages[k].total != pages[0].total)
			return 0;
	return (long)HASH_COUNT(pg->seen) == pages[0].total;
}

/* Until every page thread is done, progress is told of every length the pages in without a
 * gap grew to, up to the page that ends the listing (the pages do not move meanwhile: only
 * this thread grows them). */
static void pager_watch(struct pager *pg)
{
	if (!pg->progress)
		return;
	pthread_mutex_lock(&pg->lock);
	for (;;) {
		long in = pg->prefix < pg->end ? pg->prefix : pg->end;

		if (in > pg->told && !pg->err && !(pg->told && pg->pages[pg->told - 1].last)) {
			struct pager_told told = {.pages = pg->pages,
						  .blocks = pg->blocks,
						  .n = ++pg->told,
						  .asked = pg->pages[0].total >= 0 &&
							   pg->next > pg->npages};
			int taken;

			told.whole = pager_whole(pg, told.n);
			pthread_mutex_unlock(&pg->lock);
			taken = pg->progress->fn(pg->progress->ctx, &told);
			pthread_mutex_lock(&pg->lock);
			pg->taken = taken;
		} else if (pg->running) {
			pthread_cond_wait(&pg->cond, &pg->lock);
		} else {
			break;
		}
	}
	pthread_mutex_unlock(&pg->lock);
}

static int fetch_pages(struct pager *pg, long first)
{
	pthread_t th[PAGER_THREADS];
	long want = pg->npages - first + 1;
	int nth = 2 * pg->parallel < PAGER_THREADS ? 2 * pg->parallel : PAGER_THREADS;
	int started = 0;

	if (want < nth)
		nth = (int)want;
	pg->next = first;
	for (int i = 0; i < nth; i++) {
		pager_running(pg, 1);
		if (pthread_create(&th[i], NULL, pager_thread, pg) == 0)
			started++;
		else
			pager_running(pg, -1);
	}
	if (!started)
		pager_run(pg); /* no thread to be had: do the work here */
	pager_watch(pg);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return pg->err;
}

/* Room for pages 1..last, the new ones empty. */
static int pages_grow(struct pager *pg, struct prov_page **pages, long *npages, long last)
{
	struct prov_page *grown = realloc(*pages, last * sizeof(**pages));
	struct recblock **blocks;
	unsigned char *arrived;

	if (!grown)
		return -ENOMEM;
	*pages = pg->pages = grown;
	blocks = realloc(pg->blocks, last * sizeof(*blocks));
	if (!blocks)
		return -ENOMEM;
	pg->blocks = blocks;
	arrived = realloc(pg->arrived, last);
	if (!arrived)
		return -ENOMEM;
	pg->arrived = arrived;
	for (long k = *npages; k < last; k++) {
		memset(&grown[k], 0, sizeof(grown[k]));
		grown[k].total = -1;
		blocks[k] = NULL;
		arrived[k] = 0;
	}
	*npages = pg->npages = last;
	return 0;
}

/* Free page k and what its block holds of it; the pager's reference on the block goes. */
static void page_release(struct pager *pg, struct prov_page *pages, long k)
{
	recblock_done(pg->blocks[k - 1], &pages[k - 1]);
	pg->blocks[k - 1] = NULL;
	prov_page_free(&pages[k - 1]);
}

/* The listing ends at page end: what was fetched past it is dropped. */
static void pages_cut(struct pager *pg, struct prov_page *pages, long *npages, long end)
{
	if (end >= *npages)
		return;
	for (long k = end + 1; k <= *npages; k++)
		page_release(pg, pages, k);
	*npages = end;
}

/* Pages from 2 on for a listing that gives no total: fetched ahead in a window that opens
 * at 2 pages and doubles up to `parallel`, until a page says it is the last or ends the
 * listing (pager_note); what the window fetched past it is dropped. */
static int fetch_rest_window(struct pager *pg, struct prov_page **pages, long *npages)
{
	for (long first = 2, width = 2;; first += width, width *= 2) {
		long last;
		int r;

		if (width > pg->parallel)
			width = pg->parallel;
		if (first > PROV_MAX_PAGES) {
			pager_bound(pg, "more than %ld pages", PROV_MAX_PAGES);
			return pg->err;
		}
		last = first + width - 1 < PROV_MAX_PAGES ? first + width - 1 : PROV_MAX_PAGES;
		r = pages_grow(pg, pages, npages, last);
		if (r == 0)
			r = fetch_pages(pg, first);
		if (r < 0)
			return r;
		for (long k = first; k <= last && k < pg->end; k++)
			if ((*pages)[k - 1].last)
				pg->end = k;
		if (pg->end <= last) {
			pages_cut(pg, *pages, npages, pg->end);
			return 0;
		}
	}
}

/* Room in out for the records of pages 1..npages, and a reference on each of their blocks. */
static int fetched_prepare(struct pager *pg, const struct prov_page *pages, long npages,
			   struct fetched *out)
{
	size_t n = 0;

	for (long k = 0; k < npages; k++)
		n += pages[k].n;
	out->all.recs = malloc((n ? n : 1) * sizeof(*out->all.recs));
	out->of = malloc((n ? n : 1) * sizeof(*out->of));
	out->blocks = calloc(npages ? npages : 1, sizeof(*out->blocks));
	if (!out->all.recs || !out->of || !out->blocks)
		return -ENOMEM;
	out->all.cap = n ? n : 1;
	for (long k = 0; k < npages; k++) {
		struct recblock *b = pg->blocks[k];

		if (!b)
			continue;
		recblock_ref(b);
		out->blocks[out->nblocks++] = b;
		out->bytes += b->size;
	}
	return 0;
}

/* Move record i of page k into out, whose records have room for it. */
static void fetched_take(struct pager *pg, struct prov_page *pages, long k, size_t i,
			 struct fetched *out)
{
	struct prov_record *rec = &pages[k].recs[i];

	out->of[out->all.n] = pg->blocks[k];
	out->all.recs[out->all.n++] = *rec;
	memset(rec, 0, sizeof(*rec)); /* out owns it now */
}

/* Move the records of every page into out, first occurrence of an id wins; unique: the
 * pager saw no id twice, so no look-up is needed. */
static int merge_pages(struct pager *pg, struct prov_page *pages, long npages, int unique,
		       struct fetched *out)
{
	struct idset *seen = NULL;
	int r = fetched_prepare(pg, pages, npages, out);

	for (long k = 0; k < npages && r == 0; k++) {
		for (size_t i = 0; i < pages[k].n && r == 0; i++) {
			const char *id = pages[k].recs[i].id;
			int fresh = id && (unique || (r = idset_add(&seen, id)) > 0);

			if (fresh)
				fetched_take(pg, pages, k, i, out);
			r = r < 0 ? r : 0;
		}
	}
	idset_free(&seen);
	return r;
}

/* page's records into uniq, the first of each id. */
static int page_unique(struct prov_page *page, struct prov_page *uniq)
{
	struct idset *seen = NULL;
	int r = 0;

	for (size_t i = 0; i < page->n && r == 0; i++) {
		struct prov_record *rec = &page->recs[i];
		int fresh = rec->id && (r = idset_add(&seen, rec->id)) > 0;

		if (fresh && (r = prov_page_add(uniq, rec)) == 0)
			memset(rec, 0, sizeof(*rec)); /* uniq owns it now (id's string too) */
		r = r < 0 ? r : 0;
	}
	idset_free(&seen);
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

/* Pages in the listing page 1 describes; its total is at most PROV_MAX_ENTRIES, and the
 * division cannot overflow as total + size - 1 could. */
static long page_count(const struct prov_page *first)
{
	long size = first->page_size > 0 ? first->page_size : (long)first->n;

	if (first->last || first->total < 0 || size <= 0)
		return 1;
	return first->total / size + (first->total % size != 0);
}

/* Pages 2 onwards when page 1 gave a total: npages of them, fetched in parallel, up to
 * the page that ends the listing. */
static int fetch_counted(struct pager *pg, struct prov_page **pages, long *npages)
{
	long want = page_count(&(*pages)[0]);
	int r;

	if (want > PROV_MAX_PAGES) {
		pager_bound(pg, "more than %ld pages", PROV_MAX_PAGES);
		return pg->err;
	}
	r = pages_grow(pg, pages, npages, want);
	if (r == 0)
		r = fetch_pages(pg, 2);
	if (r == 0)
		pages_cut(pg, *pages, npages, pg->end);
	return r;
}

/* Page 1 of an attempt: the one the first readdir fetched (not asked for twice), or a
 * fresh one. A total beyond PROV_MAX_ENTRIES is not believed: the listing is paged as
 * one without a total, to its last page or a bound. */
static int fetch_first(struct pager *pg, struct prov_page **first, struct prov_page *page)
{
	int r = 0;

	if (*first) {
		*page = **first;
		free(*first);
		*first = NULL;
	} else if (atomic_load(pg->quit)) {
		r = -ECANCELED;
	} else {
		r = pg->prov->ops->list_page(pg->prov, pg->dir, 1, page);
	}
	if (r < 0)
		return r;
	if (page->total > PROV_MAX_ENTRIES) {
		log_msg(LOG_WARNING,
			"%s: '%s': a total of %ld entries is not believed (docs/design.md §4); "
			"paging to the last page",
			pg->prov->name, dir_id(pg->prov, pg->dir), page->total);
		page->total = -1;
	}
	recblock_pack(page, &pg->blocks[0]);
	pthread_mutex_lock(&pg->lock);
	pager_note(pg, 1, page);
	pager_arrived(pg, 1);
	pthread_mutex_unlock(&pg->lock);
	return pg->err;
}

/* One attempt at the whole listing into out. */
static int fetch_once(struct pager *pg, struct prov_page **first, struct fetched *out,
		      int *consistent)
{
	struct prov_page *pages = calloc(1, sizeof(*pages));
	long npages = 1;
	int r;

	pg->blocks = calloc(1, sizeof(*pg->blocks));
	pg->arrived = calloc(1, 1);
	pg->pages = pages;
	pg->npages = 1;
	pg->prefix = pg->told = 0;
	if (!pages || !pg->blocks || !pg->arrived) {
		free(pages);
		free(pg->blocks);
		free(pg->arrived);
		pg->blocks = NULL;
		pg->arrived = NULL;
		return -ENOMEM;
	}
	pg->err = 0;
	pg->taken = 0;
	pg->end = LONG_MAX;
	pg->entries = pg->bytes = pg->repeats = 0;
	r = fetch_first(pg, first, &pages[0]);
	if (r == 0 && pg->end > 1 && !pages[0].last && pages[0].total < 0)
		r = fetch_rest_window(pg, &pages, &npages);
	else if (r == 0 && pg->end > 1 && page_count(&pages[0]) > 1)
		r = fetch_counted(pg, &pages, &npages);
	seen_free(pg); /* before the pages that own its strings go */
	/* Progress took the listing: whatever came after, it is in the tree already. */
	if (pg->taken) {
		for (long k = 0; k < npages; k++)
			out->bytes += pg->blocks[k] ? pg->blocks[k]->size : 0;
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	r = merge_pages(pg, pages, npages, pg->repeats == 0, out);
	*consistent = listing_consistent(pages, npages, out->all.n);
out:
	for (long k = 1; k <= npages; k++)
		page_release(pg, pages, k);
	free(pages);
	free(pg->blocks);
	free(pg->arrived);
	pg->blocks = NULL;
	pg->arrived = NULL;
	return r;
}

/* The whole listing, fetched again while entries moved under the pager (bounded). */
static int fetch_listing(struct pager *pg, struct prov_page **first, struct fetched *out,
			 const struct pager_progress *progress)
{
	for (int attempt = 1;; attempt++) {
		int consistent = 1;
		int r;

		pg->progress = attempt == 1 ? progress : NULL; /* what came first is told once */
		r = fetch_once(pg, first, out, &consistent);
		out->fetches = attempt;

		if (r < 0 || consistent)
			return r;
		if (attempt == TREE_RELIST) {
			log_msg(LOG_WARNING,
				"%s: '%s' kept changing while it was paged; serving it "
				"as last seen",
				pg->prov->name, dir_id(pg->prov, pg->dir));
			return 0;
		}
		fetched_free(out);
	}
}

int pager_listing(struct provider *p, const struct prov_record *dir, int parallel,
		  const atomic_int *quit, struct prov_page **first, struct fetched *out,
		  const struct pager_progress *progress)
{
	struct pager pg = {.prov = p, .dir = dir, .quit = quit, .cancel = provider_get_cancel()};
	int r;

	pg.parallel = parallel < 1 ? 1 : parallel > PAGER_THREADS ? PAGER_THREADS : parallel;
	pthread_mutex_init(&pg.lock, NULL);
	pthread_cond_init(&pg.cond, NULL);
	http_slots_init(&pg.slots, pg.parallel);
	r = fetch_listing(&pg, first, out, progress);
	pthread_cond_destroy(&pg.cond);
	pthread_mutex_destroy(&pg.lock);
	return pager_errno(p, dir, r);
}

void pager_page_drop(struct prov_page **pg)
{
	if (*pg)
		prov_page_free(*pg);
	free(*pg);
	*pg = NULL;
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
		pg->more = src->more;
		pg->bytes = src->bytes;
	}
	*dst = pg;
	if (r < 0)
		pager_page_drop(dst);
	return r;
}

int pager_first(struct provider *p, const struct prov_record *dir, struct prov_page *uniq,
		struct prov_page **keep)
{
	struct prov_page pg = {0};
	int r = p->ops->list_page(p, dir, 1, &pg);

	if (r == 0 && !pg.last)
		r = page_copy(keep, &pg);
	/* A first page is a listing too: one entry per id, as merge_pages makes them. */
	if (r == 0)
		r = page_unique(&pg, uniq);
	uniq->total = pg.total;
	uniq->page_size = pg.page_size;
	uniq->last = pg.last;
	prov_page_free(&pg);
	return pager_errno(p, dir, r);
}

int pager_can_lookup(const struct provider *p)
{
	return p->ops->lookup != NULL;
}

int pager_lookup(struct provider *p, const struct prov_record *dir, const char *term,
		 struct prov_page *out)
{
	return pager_errno(p, dir, p->ops->lookup(p, dir, term, out));
}

int pager_can_complete(const struct provider *p)
{
	return p->ops->complete != NULL;
}

int pager_complete(struct provider *p, struct prov_record *rec)
{
	return pager_errno(p, rec, p->ops->complete(p, rec));
}

void pager_flush(struct provider *p)
{
	if (p->ops->flush)
		p->ops->flush(p);
}
