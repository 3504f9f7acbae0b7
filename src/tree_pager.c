/* tree_pager: every call the tree makes into a provider, and whole listings.
 *
 * A full listing fetches page 1, learns the total and the server's page size, then the
 * other pages with up to `parallel` requests in flight; without a total, pages are
 * fetched ahead in a window. Records are de-duplicated by id, and a listing whose total
 * moved while it was paged is fetched again (bounded). The pager never touches a node:
 * it takes a provider and a copy of the directory's record, holds no tree lock, and
 * returns a page of records. Failures come back as the errno a reader sees. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "log.h"
#include "tree_i.h"

#define TREE_MAX_PAGES 100000 /* guards against a server that never says "last" */
#define TREE_RELIST    3      /* fetches of a listing whose total moved while paging */
#define PAGER_THREADS  64     /* most requests in flight for one listing */

/* What a failed provider call means to the reader (docs/design.md §3): rejected
 * credentials stay EACCES, a missing entry ENOENT; every other failure, a time-out
 * included, is EIO. */
static int pager_errno(int r)
{
	if (r >= 0 || r == -EACCES || r == -ENOENT || r == -ENOMEM)
		return r;
	return -EIO;
}

struct pager {
	struct provider *prov;
	const struct prov_record *dir;
	int parallel;
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

/* Pages first..npages with up to `parallel` requests in flight. */
static int fetch_pages(struct pager *pg, long first)
{
	pthread_t th[PAGER_THREADS];
	long want = pg->npages - first + 1;
	int nth = pg->parallel;
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
static int fetch_rest_window(struct pager *pg, struct prov_page **pages, long *npages)
{
	for (long first = 2, width = 2; first <= TREE_MAX_PAGES; first += width, width *= 2) {
		struct prov_page *grown;
		long last;
		int r;

		if (width > pg->parallel)
			width = pg->parallel;
		last = first + width - 1 < TREE_MAX_PAGES ? first + width - 1 : TREE_MAX_PAGES;
		grown = realloc(*pages, last * sizeof(**pages));
		if (!grown)
			return -ENOMEM;
		*pages = grown;
		memset(&grown[first - 1], 0, (last - first + 1) * sizeof(grown[0]));
		*npages = last;
		pg->pages = grown;
		pg->npages = last;
		r = fetch_pages(pg, first);
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

/* Pages 2 onwards when page 1 gave a total: npages of them, fetched in parallel. */
static int fetch_counted(struct pager *pg, struct prov_page **pages, long *npages)
{
	struct prov_page *grown;

	*npages = page_count(&(*pages)[0]);
	grown = realloc(*pages, *npages * sizeof(**pages));
	if (!grown) {
		*npages = 1;
		return -ENOMEM;
	}
	*pages = grown;
	memset(&grown[1], 0, (*npages - 1) * sizeof(*grown));
	pg->pages = grown;
	pg->npages = *npages;
	return fetch_pages(pg, 2);
}

/* One attempt at the whole listing into all. */
static int fetch_once(struct pager *pg, struct prov_page **first, struct prov_page *all,
		      int *consistent)
{
	struct prov_page *pages = calloc(1, sizeof(*pages));
	long npages = 1;
	int r = 0;

	if (!pages)
		return -ENOMEM;
	if (*first) { /* page 1 came with the first readdir: not asked for twice */
		pages[0] = **first;
		free(*first);
		*first = NULL;
	} else {
		r = pg->prov->ops->list_page(pg->prov, pg->dir, 1, &pages[0]);
	}
	if (r < 0)
		goto out;
	if (!pages[0].last && pages[0].n > 0 && pages[0].total < 0)
		r = fetch_rest_window(pg, &pages, &npages);
	else if (page_count(&pages[0]) > 1)
		r = fetch_counted(pg, &pages, &npages);
	if (r < 0)
		goto out;
	r = merge_pages(pages, npages, all);
	*consistent = listing_consistent(pages, npages, all->n);
out:
	for (long k = 0; k < npages; k++)
		prov_page_free(&pages[k]);
	free(pages);
	return r;
}

/* The whole listing, fetched again while entries moved under the pager (bounded). */
static int fetch_listing(struct pager *pg, struct prov_page **first, struct prov_page *all)
{
	for (int attempt = 1;; attempt++) {
		int consistent = 1;
		int r = fetch_once(pg, first, all, &consistent);

		if (r < 0 || consistent)
			return r;
		if (attempt == TREE_RELIST) {
			log_msg(LOG_WARNING,
				"%s: '%s' kept changing while it was paged; serving it "
				"as last seen",
				pg->prov->name, pg->dir ? pg->dir->id : pg->prov->name);
			return 0;
		}
		prov_page_free(all);
	}
}

int pager_listing(struct provider *p, const struct prov_record *dir, int parallel,
		  struct prov_page **first, struct prov_page *all)
{
	struct pager pg = {.prov = p, .dir = dir};
	int r;

	pg.parallel = parallel < 1 ? 1 : parallel > PAGER_THREADS ? PAGER_THREADS : parallel;
	pthread_mutex_init(&pg.lock, NULL);
	r = fetch_listing(&pg, first, all);
	pthread_mutex_destroy(&pg.lock);
	return pager_errno(r);
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
		r = merge_pages(&pg, 1, uniq);
	uniq->total = pg.total;
	uniq->page_size = pg.page_size;
	uniq->last = pg.last;
	prov_page_free(&pg);
	return pager_errno(r);
}

int pager_can_lookup(const struct provider *p)
{
	return p->ops->lookup != NULL;
}

int pager_lookup(struct provider *p, const struct prov_record *dir, const char *term,
		 struct prov_page *out)
{
	return pager_errno(p->ops->lookup(p, dir, term, out));
}

int pager_can_complete(const struct provider *p)
{
	return p->ops->complete != NULL;
}

int pager_complete(struct provider *p, struct prov_record *rec)
{
	return pager_errno(p->ops->complete(p, rec));
}

void pager_flush(struct provider *p)
{
	if (p->ops->flush)
		p->ops->flush(p);
}
