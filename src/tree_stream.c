/* tree_stream: the pages of a cold listing reach its readers as they come.
 *
 * ls reads a directory's first page, then asks for the rest at once. While the whole
 * listing is fetched, the pages that came without a gap are appended to a longer partial
 * listing that continues the last one (docs/design.md §3): only the records of the new
 * pages get nodes and names, the entries before are copied in front, and a reader at the
 * end of one goes on in the next where it stood. A step adds a quarter of the listing at
 * least, so the copies stay linear; once every page was asked for, 1/64 for a reader that
 * waits, which copies at most 64 times what the last round brings. The last step appends
 * what is left of the whole listing and makes it whole, in place of installing it again
 * from the start, when the listing was fetched once (fetched again, an entry listed may
 * have changed): with the last page when the pager can tell then that the pages are the
 * whole listing, else once it has merged them.
 *
 * Only what cannot come out otherwise than a whole install is streamed: a directory that
 * holds its first page only, that page being page 1 of this fetch, no id met twice, no
 * label (no link beside an entry). Names are given oldest first (names.c), so a new entry
 * whose name an entry listed before holds is named as a whole install would name it only
 * when that one is the older (the clouds' pages here come oldest first). Anything else
 * stops the stream, and the whole listing is installed as any other is. Lock rules:
 * tree_i.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "tree_i.h"

#define STREAM_GROWTH	    4  /* a step adds at least 1/STREAM_GROWTH of the listing */
#define STREAM_GROWTH_ASKED 64 /* once every page was asked for, 1/64 for a reader waiting */

struct stream_id {
	const char *id; /* a listed node's, or a record's in a block a listed node holds */
	UT_hash_handle hh;
};

/* Records a step appends, each with the block its strings are in (shared with the node). */
struct stream_adds {
	const struct prov_record **rec;
	struct recblock **block;
	size_t n, cap;
};

/* Is id listed already? Lock held. */
static int stream_listed(const struct stream *st, const char *id)
{
	struct stream_id *e;

	HASH_FIND_STR(st->ids, id, e);
	return e != NULL;
}

/* id is listed now. 0 or -ENOMEM. */
static int stream_list_id(struct stream *st, const char *id)
{
	struct stream_id *e = malloc(sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->id = id;
	HASH_ADD_KEYPTR(hh, st->ids, e->id, strlen(e->id), e);
	st->nids++;
	return 0;
}

/* Does dir hold a child its listing did not give: one a look-up found with the cloud's name
 * filter (tree_lookup.c)? Only a whole install takes that entry's record over to its node,
 * by id; a stream would give the entry a second node and a namesake's name. Lock held. */
static int stream_unlisted_child(const struct stream *st)
{
	struct node *c, *tmp;

	HASH_ITER(hh, st->dir->children, c, tmp) {
		if (!c->link && (!c->rec.id || !stream_listed(st, c->rec.id)))
			return 1;
	}
	return 0;
}

void stream_init(struct stream *st, struct tree *t, struct node *dir,
		 const struct tree_grown *grown, int first_reused)
{
	const struct listing *cur = dir->listings;

	/* Page 1 is the first page, listed already. */
	*st = (struct stream){.t = t, .dir = dir, .grown = grown, .at = 1};
	st->stopped =
	    !first_reused || !dir->partial || !cur || !cur->partial || dir->depth >= TREE_MAX_DEPTH;
	for (size_t i = 0; !st->stopped && i < cur->n; i++) {
		const struct node *c = cur->e[i].node;

		if (c->link) /* its target's id, listed with the target */
			continue;
		if (!c->rec.id || stream_listed(st, c->rec.id) || stream_list_id(st, c->rec.id) < 0)
			st->stopped = 1;
	}
	st->stopped = st->stopped || stream_unlisted_child(st);
	st->last = cur ? cur->gen : 0;
	st->base = cur ? (cur->base ? cur->base : cur->gen) : 0;
}

void stream_free(struct stream *st)
{
	struct stream_id *e, *tmp;

	HASH_ITER(hh, st->ids, e, tmp) {
		HASH_DEL(st->ids, e);
		free(e);
	}
}

/* Append rec (strings in block) to adds; -1 when a stream cannot list it. */
static int adds_put(struct stream *st, struct stream_adds *a, const struct prov_record *rec,
		    struct recblock *block)
{
	if (!block || rec->label)
		return -1;
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;
		const struct prov_record **r = realloc(a->rec, cap * sizeof(*r));
		struct recblock **b = r ? realloc(a->block, cap * sizeof(*b)) : NULL;

		if (r)
			a->rec = r;
		if (!b)
			return -1;
		a->block = b;
		a->cap = cap;
	}
	if (stream_list_id(st, rec->id) < 0)
		return -1;
	a->rec[a->n] = rec;
	a->block[a->n++] = block;
	return 0;
}

static void adds_free(struct stream_adds *a)
{
	free(a->rec);
	free(a->block);
}

/* The names dir's new entries may not take besides its own: those of the entries listed
 * before that a new one's name meets, each older than the new one (it keeps the name).
 * Into taken (room for NODE_RESERVED_MAX + n, NULL-terminated), pointing into dir's
 * children; -1 when a listed entry that a new one meets is the younger, or a link. */
static int adds_taken(const struct node *dir, const struct names_entry *ne, size_t n,
		      const char **taken)
{
	char base[NAMES_MAX + 1];
	size_t k = 0;

	node_reserved(dir, taken);
	while (taken[k])
		k++;
	for (size_t i = 0; i < n; i++) {
		struct node *c;

		names_sanitize(ne[i].raw, ne[i].raw_len, base);
		HASH_FIND_STR(dir->children, base, c);
		if (!c)
			continue;
		if (c->link || names_age_cmp(c->rec.ctime, c->rec.id, ne[i].ctime, ne[i].id) > 0)
			return -1;
		taken[k++] = c->name;
	}
	taken[k] = NULL;
	return 0;
}

/* The names of adds as a whole install would give them: none a name dir has already.
 * 0, or -1 (none kept). */
static int adds_names(const struct node *dir, const struct stream_adds *a, struct names_entry *ne,
		      size_t *size)
{
	const char **taken = calloc(NODE_RESERVED_MAX + a->n, sizeof(*taken));
	int r = taken ? 0 : -1;

	for (size_t i = 0; i < a->n; i++) {
		const struct prov_record *rec = a->rec[i];

		ne[i] = (struct names_entry){.raw = rec->name ? rec->name : "",
					     .raw_len = rec->name ? rec->name_len : 0,
					     .id = rec->id,
					     .ctime = rec->ctime};
	}
	if (r == 0)
		r = adds_taken(dir, ne, a->n, taken);
	if (r == 0)
		r = names_assign(ne, a->n, taken) < 0 ? -1 : 0;
	*size = 0;
	for (size_t i = 0; r == 0 && i < a->n; i++) {
		struct node *c;

		HASH_FIND_STR(dir->children, ne[i].name, c);
		if (c)
			r = -1;
		*size += strlen(ne[i].name) + 1;
	}
	for (size_t i = 0; r < 0 && i < a->n; i++) {
		free(ne[i].name);
		ne[i].name = NULL;
	}
	free(taken);
	return r;
}

/* A listing: dir's current one, then a new child for each of adds, named ne. NULL when
 * memory ran out (nothing changed). Lock held. */
static struct listing *listing_appended(struct tree *t, struct node *dir,
					const struct stream_adds *a, struct names_entry *ne,
					size_t size)
{
	const struct listing *cur = dir->listings;
	struct node **made = calloc(a->n ? a->n : 1, sizeof(*made));
	struct listing *l = NULL;
	size_t i;

	for (i = 0; i < cur->n; i++)
		size += strlen(cur->e[i].name) + 1;
	for (i = 0; made && i < a->n && (made[i] = node_new_child(t, dir, ne[i].name)); i++)
		;
	if (made && i == a->n)
		l = listing_new(cur->n + a->n, size);
	if (!l) {
		for (size_t j = 0; made && j < a->n && made[j]; j++)
			node_unref(t, made[j]);
		free(made);
		return NULL;
	}
	for (i = 0; i < cur->n; i++)
		listing_add(l, cur->e[i].node, cur->e[i].name);
	for (i = 0; i < a->n; i++) {
		struct prov_record rec = *a->rec[i]; /* the strings stay in the block */

		node_set_record(made[i], &rec, a->block[i]);
		HASH_ADD_KEYPTR(hh, dir->children, made[i]->name, strlen(made[i]->name), made[i]);
		listing_add(l, made[i], made[i]->name);
	}
	free(made);
	return l;
}

/* Append adds to dir's listing as the next one (whole: the whole listing), which the
 * readers at the end of the last one go on in. 0, or -1 with nothing installed. Lock
 * held. */
static int stream_step(struct stream *st, const struct stream_adds *a, int whole)
{
	struct names_entry *ne = calloc(a->n ? a->n : 1, sizeof(*ne));
	struct listing *l = NULL;
	size_t size;

	if (ne && adds_names(st->dir, a, ne, &size) == 0)
		l = listing_appended(st->t, st->dir, a, ne, size);
	for (size_t i = 0; ne && i < a->n; i++)
		free(ne[i].name);
	free(ne);
	if (!l)
		return -1;
	l->from = st->last;
	l->base = st->base;
	listing_set(st->t, st->dir, l, whole);
	st->last = l->gen;
	st->steps++;
	pthread_cond_broadcast(&st->t->cond); /* the readers waiting at the end of the last */
	return 0;
}

/* The records of the told pages from at on, not listed yet, into a; -1 when a stream
 * cannot list them all (an id met twice, a label, a page whose strings were not packed). */
static int stream_collect(struct stream *st, const struct pager_told *told, struct stream_adds *a)
{
	for (long k = st->at; k < told->n; k++)
		for (size_t i = 0; i < told->pages[k].n; i++) {
			const struct prov_record *rec = &told->pages[k].recs[i];

			if (!rec->id)
				continue;
			if (stream_listed(st, rec->id))
				return -1;
			if (adds_put(st, a, rec, told->blocks[k]) < 0)
				return -1;
		}
	return 0;
}

/* Is a step worth it now: somebody waits for it, and it adds enough, or the last page
 * came (the readers take it while the pager ends the listing). Once every page was asked
 * for, a reader that waits takes the pages as they come, a few at a time: what is left
 * for it to read when the last comes is then that page, not a quarter of the listing.
 * Lock held. */
static int stream_wanted(const struct stream *st, const struct pager_told *told)
{
	size_t more = 0;

	if (!st->grown && !st->dir->waiting)
		return 0;
	if (told->n > st->at && told->pages[told->n - 1].last)
		return 1;
	for (long k = st->at; k < told->n; k++)
		more += told->pages[k].n;
	if (told->asked && st->dir->waiting)
		return more * STREAM_GROWTH_ASKED >= st->dir->listings->n;
	return more * STREAM_GROWTH >= st->dir->listings->n;
}

int stream_pages(void *ctx, const struct pager_told *told)
{
	struct stream *st = ctx;
	struct stream_adds a = {0};
	int stepped = 0;

	pthread_mutex_lock(&st->t->lock);
	if (!st->stopped && (!st->dir->listings || st->dir->listings->gen != st->last))
		st->stopped = 1; /* somebody else installed a listing */
	/* Whole, the listing is made whole here, with the last page, rather than after the
	 * pager has merged the pages into what this step appends anyway. */
	if (!st->stopped && (told->whole || stream_wanted(st, told))) {
		st->stopped =
		    stream_collect(st, told, &a) < 0 || stream_step(st, &a, told->whole) < 0;
		st->at = told->n;
		stepped = !st->stopped;
		st->finished = stepped && told->whole;
	}
	pthread_mutex_unlock(&st->t->lock);
	adds_free(&a);
	if (stepped && st->grown)
		st->grown->fn(st->grown->ctx);
	return st->finished;
}

/* The records of all not listed yet into a: -1 unless all is the listing the steps were
 * taken from, fetched once (fetched again, a listed entry may have changed or gone), and
 * holds every entry listed so far. */
static int stream_rest(struct stream *st, const struct fetched *all, struct stream_adds *a)
{
	size_t listed = 0;

	if (all->fetches != 1)
		return -1;
	for (size_t i = 0; i < all->all.n; i++) {
		const struct prov_record *rec = &all->all.recs[i];

		if (stream_listed(st, rec->id))
			listed++;
		else if (adds_put(st, a, rec, all->of[i]) < 0)
			return -1;
	}
	return listed == st->nids - a->n ? 0 : -1;
}

int stream_finish(struct stream *st, struct fetched *all)
{
	struct stream_adds a = {0};
	int r;

	if (st->finished)
		return 1;
	r = !st->stopped && st->dir->listings && st->dir->listings->gen == st->last;
	r = r && stream_rest(st, all, &a) == 0 && stream_step(st, &a, 1) == 0;
	adds_free(&a);
	return r;
}
