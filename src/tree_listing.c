/* tree_listing: a directory's listings as its readers were given them, and the block a
 * listing's records are packed into.
 *
 * The kernel reads a directory in no-opendir mode: no open or close reaches the daemon,
 * only readdir calls with the offset the last answer gave. So the offset carries the
 * listing: its high bits the listing's generation, its low bits the position in it. A
 * reader that began on a listing finishes on it however often the directory is refreshed
 * meanwhile (docs/design.md §3: every entry that exists throughout a read is returned,
 * once), and costs no listing after its first. A listing is frozen (order and names) and
 * references its nodes; a superseded one is kept while readers may still be on it: until
 * it was unread for TREE_LISTING_IDLE seconds, and the TREE_LISTINGS_KEPT most recently
 * read at most, besides those the current one grew from by appending (a stream: each is
 * a beginning of the next, and a reader waiting at the end of one goes on in the newest)
 * and, whatever its age, the first page the current one keeps in front.
 * Lock rules: tree_i.h. */
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "tree_i.h"

#define TREE_LISTING_IDLE  30 /* seconds a superseded listing is kept unread */
#define TREE_LISTINGS_KEPT 4  /* superseded listings kept per directory at most */

/* Offsets: 30 bits of generation above 32 bits of position, so that an offset stays
 * positive and telldir/seekdir and the kernel's readdir cache carry it unchanged. */
#define OFF_POS_BITS 32
#define OFF_GEN_MASK ((UINT64_C(1) << 30) - 1)

off_t listing_off(uint64_t gen, size_t pos)
{
	return (off_t)(((gen & OFF_GEN_MASK) << OFF_POS_BITS) | (uint64_t)pos);
}

uint64_t listing_off_gen(off_t off)
{
	return ((uint64_t)off >> OFF_POS_BITS) & OFF_GEN_MASK;
}

size_t listing_off_pos(off_t off)
{
	return (size_t)((uint64_t)off & ((UINT64_C(1) << OFF_POS_BITS) - 1));
}

/* One allocation: the listing, its entries, its names. */
struct listing *listing_new(size_t n, size_t names_size)
{
	struct listing *l;
	size_t size;

	if (n > (SIZE_MAX - sizeof(*l) - names_size) / sizeof(*l->e))
		return NULL;
	size = sizeof(*l) + n * sizeof(*l->e) + names_size;
	l = calloc(1, size);
	if (!l)
		return NULL;
	l->e = (struct lentry *)(l + 1);
	l->names = (char *)(l->e + n);
	return l;
}

void listing_add(struct listing *l, struct node *c, const char *name)
{
	const struct lentry *last = l->n ? &l->e[l->n - 1] : NULL;
	char *at = last ? (char *)last->name + strlen(last->name) + 1 : l->names;

	strcpy(at, name); /* listing_new was given room for every name */
	l->e[l->n++] = (struct lentry){.node = c, .name = at};
	node_ref(c);
	c->in_listings++;
}

void listing_free(struct listing *l)
{
	free(l);
}

/* Give back l's references and free it. Lock held. */
static void listing_drop(struct tree *t, struct listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		assert(l->e[i].node->in_listings > 0);
		l->e[i].node->in_listings--;
		node_unref(t, l->e[i].node);
	}
	listing_free(l);
}

void listing_drop_all(struct tree *t, struct node *dir)
{
	while (dir->listings) {
		struct listing *l = dir->listings;

		dir->listings = l->next;
		listing_drop(t, l);
	}
}

/* Is l one of the listings the current one of dir, still growing, grew from by appending
 * (tree_stream.c)? Each is a beginning of it, and a reader waiting at its end goes on in
 * the next. Once it is whole, a reader on one that went goes on in it where it stood. */
static int listing_in_stream(const struct node *dir, const struct listing *l)
{
	uint64_t base = dir->listings->base;

	return base && dir->listings->partial && (l->base == base || l->gen == base);
}

/* Is l the partial listing the current one of dir keeps in front (keep_first_page_order)? A
 * reader part-way through l goes on after the entries of l it was given, which the current
 * listing places only by l: at the same position of the current one it could step over
 * one. l is at most the first pages, and kept only while the current listing continues it. */
static int listing_continued(const struct node *dir, const struct listing *l)
{
	uint64_t from = dir->listings->from;

	return from && (from & OFF_GEN_MASK) == (l->gen & OFF_GEN_MASK);
}

/* Is l kept besides the few most recently read? */
static int listing_needed(const struct node *dir, const struct listing *l)
{
	return listing_in_stream(dir, l) || listing_continued(dir, l);
}

/* The superseded listing read least recently, by the link that points to it. */
static struct listing **least_read(struct node *dir)
{
	struct listing **pick = NULL;

	for (struct listing **pp = &dir->listings->next; *pp; pp = &(*pp)->next)
		if (!listing_needed(dir, *pp) && (!pick || (*pp)->used_at < (*pick)->used_at))
			pick = pp;
	return pick;
}

void listing_prune(struct tree *t, struct node *dir)
{
	int64_t now = clock_now();
	size_t kept = 0;

	if (!dir->listings)
		return;
	for (struct listing **pp = &dir->listings->next; *pp;) {
		struct listing *l = *pp;

		if (now - l->used < TREE_LISTING_IDLE || listing_continued(dir, l)) {
			kept += !listing_needed(dir, l);
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		listing_drop(t, l);
	}
	for (; kept > TREE_LISTINGS_KEPT; kept--) {
		struct listing **pp = least_read(dir), *l = *pp;

		*pp = l->next;
		listing_drop(t, l);
	}
}

static void listing_touch(struct tree *t, struct listing *l)
{
	l->used = clock_now();
	l->used_at = ++t->reads;
}

void listing_push(struct tree *t, struct node *dir, struct listing *l, uint64_t gen)
{
	l->gen = gen;
	listing_touch(t, l);
	l->next = dir->listings;
	dir->listings = l;
	listing_prune(t, dir);
}

struct listing *listing_find(struct tree *t, struct node *dir, uint64_t gen)
{
	struct listing *w;

	if (!gen)
		return NULL;
	for (struct listing *l = dir->listings; l; l = l->next) {
		if ((l->gen & OFF_GEN_MASK) != gen)
			continue;
		listing_touch(t, l);
		/* A reader of a partial listing goes on in those that continue it. */
		for (w = l; w->partial && (w = listing_from(dir, w->gen & OFF_GEN_MASK));)
			listing_touch(t, w);
		return l;
	}
	return NULL;
}

/* The base of dir's listing of generation gen, or its gen when it has none; 0 when the
 * listing is not kept. */
static uint64_t listing_base(const struct node *dir, uint64_t gen)
{
	for (const struct listing *l = dir->listings; gen && l; l = l->next)
		if ((l->gen & OFF_GEN_MASK) == gen)
			return (l->base ? l->base : l->gen) & OFF_GEN_MASK;
	return 0;
}

struct listing *listing_from(const struct node *dir, uint64_t gen)
{
	uint64_t base = listing_base(dir, gen);

	/* Newest first: the first that continues gen is the longest. */
	for (struct listing *l = dir->listings; gen && l && (l->gen & OFF_GEN_MASK) != gen;
	     l = l->next)
		if ((l->from && (l->from & OFF_GEN_MASK) == gen) ||
		    (l->base && (l->base & OFF_GEN_MASK) == (base ? base : gen)))
			return l;
	return NULL;
}

/* ---- record blocks ------------------------------------------------------------------- */

/* The strings of struct prov_record besides name and label (which may hold NUL bytes). */
static const size_t rec_strings[] = {
    offsetof(struct prov_record, id),	   offsetof(struct prov_record, meta),
    offsetof(struct prov_record, url),	   offsetof(struct prov_record, branch),
    offsetof(struct prov_record, web_url), offsetof(struct prov_record, scope),
    offsetof(struct prov_record, path),
};

/* struct prov_record as packing knows it: a string added there must be packed too.
 * ancestors (an array of strings) is packed as well; kind_name is a literal, left be. */
struct rec_known {
	char *id, *name;
	size_t name_len;
	char *meta, *url, *branch, *web_url, *scope, *path, *label;
	size_t label_len;
	char **ancestors;
	size_t nancestors;
	int64_t ctime, mtime;
	int kind;
	const char *kind_name;
	unsigned container : 1, incomplete : 1;
};
_Static_assert(sizeof(struct rec_known) == sizeof(struct prov_record),
	       "struct prov_record changed: pack its new strings in rec_strings");

static char **rec_str(struct prov_record *r, size_t k)
{
	return (char **)((char *)r + rec_strings[k]);
}

/* Bytes the strings of r take, their NULs included, and its ancestors' array (with room
 * to align it). */
static size_t rec_size(struct prov_record *r)
{
	size_t size = (r->name ? r->name_len + 1 : 0) + (r->label ? r->label_len + 1 : 0);

	for (size_t k = 0; k < sizeof(rec_strings) / sizeof(rec_strings[0]); k++)
		if (*rec_str(r, k))
			size += strlen(*rec_str(r, k)) + 1;
	if (r->nancestors)
		size += alignof(char *) - 1 + r->nancestors * sizeof(char *);
	for (size_t i = 0; i < r->nancestors; i++)
		size += strlen(r->ancestors[i]) + 1;
	return size;
}

/* Move s (len bytes, then a NUL written here) to *at; s is freed. */
static char *move_str(char **at, char *s, size_t len)
{
	char *to = *at;

	memcpy(to, s, len);
	to[len] = '\0';
	free(s);
	*at += len + 1;
	return to;
}

/* Move r's ancestors (the array, aligned, then each string) to *at; theirs are freed. */
static void move_ancestors(char **at, struct prov_record *r)
{
	uintptr_t p = ((uintptr_t)*at + alignof(char *) - 1) & ~(uintptr_t)(alignof(char *) - 1);
	char **arr = (char **)p;

	*at = (char *)(arr + r->nancestors);
	for (size_t i = 0; i < r->nancestors; i++)
		arr[i] = move_str(at, r->ancestors[i], strlen(r->ancestors[i]));
	free(r->ancestors);
	r->ancestors = arr;
}

/* Misses of dir the kernel may remember that its fresh listing has: they go. Lock held. */
static void watch_found(const struct tree *t, const struct node *dir)
{
	struct neg *e, *tmp;
	struct node *c;

	HASH_ITER(hh, dir->neg, e, tmp) {
		HASH_FIND_STR(dir->children, e->name, c);
		if (c)
			tree_watch_entry(t, dir, e->name, 1);
	}
}

void listing_set(struct tree *t, struct node *dir, struct listing *l, int whole)
{
	dir->listed = whole;
	dir->partial = !whole;
	l->partial = !whole;
	listing_push(t, dir, l, ++dir->gen);
	dir->list_expires = clock_now() + t->o.dir_ttl;
	/* A first page answers look-ups of its names as a name look-up would. */
	for (size_t i = 0; !whole && i < l->n; i++)
		l->e[i].node->seed_expires = dir->list_expires;
	if (whole)
		pager_page_drop(&dir->first);
	watch_found(t, dir);
	index_listing_changed(t, dir);
	node_neg_clear(dir);
}

int recblock_pack(struct prov_page *pg, struct recblock **out)
{
	size_t size = 0;
	struct recblock *b;
	char *at;

	for (size_t i = 0; i < pg->n; i++)
		size += rec_size(&pg->recs[i]);
	*out = NULL;
	if (size > SIZE_MAX - sizeof(*b))
		return -ENOMEM;
	b = malloc(sizeof(*b) + size);
	if (!b)
		return -ENOMEM;
	atomic_init(&b->refs, 1);
	b->size = size;
	at = b->data;
	for (size_t i = 0; i < pg->n; i++) {
		struct prov_record *r = &pg->recs[i];

		if (r->name)
			r->name = move_str(&at, r->name, r->name_len);
		if (r->label)
			r->label = move_str(&at, r->label, r->label_len);
		for (size_t k = 0; k < sizeof(rec_strings) / sizeof(rec_strings[0]); k++)
			if (*rec_str(r, k))
				*rec_str(r, k) =
				    move_str(&at, *rec_str(r, k), strlen(*rec_str(r, k)));
		if (r->nancestors)
			move_ancestors(&at, r);
	}
	*out = b;
	return 0;
}

void recblock_ref(struct recblock *b)
{
	uint_fast64_t was = atomic_fetch_add(&b->refs, 1);

	assert(was > 0);
	(void)was;
}

void recblock_unref(struct recblock *b)
{
	uint_fast64_t was = atomic_fetch_sub(&b->refs, 1);

	assert(was > 0);
	if (was == 1)
		free(b);
}

void recblock_done(struct recblock *b, struct prov_page *pg)
{
	if (!b)
		return;
	for (size_t i = 0; i < pg->n; i++)
		memset(&pg->recs[i], 0, sizeof(pg->recs[i]));
	recblock_unref(b);
}

int fetched_from_page(struct fetched *f, struct prov_page *pg, struct recblock *b)
{
	f->of = calloc(pg->n ? pg->n : 1, sizeof(*f->of));
	f->blocks = calloc(1, sizeof(*f->blocks));
	if (!f->of || !f->blocks) {
		free(f->of);
		free(f->blocks);
		f->of = f->blocks = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; b && i < pg->n; i++)
		f->of[i] = b;
	f->blocks[0] = b;
	f->nblocks = b != NULL;
	f->bytes = b ? b->size : 0;
	f->all = *pg;
	memset(pg, 0, sizeof(*pg));
	return 0;
}

void fetched_free(struct fetched *f)
{
	for (size_t i = 0; f->of && i < f->all.n; i++)
		if (f->of[i])
			memset(&f->all.recs[i], 0, sizeof(f->all.recs[i]));
	prov_page_free(&f->all);
	for (size_t i = 0; i < f->nblocks; i++)
		if (f->blocks[i])
			recblock_unref(f->blocks[i]);
	free(f->of);
	free(f->blocks);
	memset(f, 0, sizeof(*f));
}
