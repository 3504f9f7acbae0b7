/* Unit tests of the bounds on a listing (docs/design.md §4), through the tree: a hostile
 * provider claims any total, sends pages of any size, empty or repeated pages, and says
 * how many bytes each page took. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "provider.h"
#include "providers/providers_i.h"
#include "tree.h"

#define PARALLEL 4

struct hostile {
	struct provider base;
	pthread_mutex_t lock;
	long total;	 /* what every page says (-1: no total) */
	long per_page;	 /* entries a page brings */
	long real;	 /* entries in the listing (0: fresh ones on every page, forever) */
	int empty_after; /* pages after the first are empty */
	int repeat;	 /* every page is the first again */
	long overlap; /* each page after the first begins with the last entries of the one before */
	long late;    /* the pages before this one bring nothing but say more follow */
	int more;     /* every page but the last says more follow */
	size_t bytes; /* what every page says its answer took */
	long calls;   /* list_page calls for the directory */
	long quit_after; /* tree_quit at this call (0: never) */
	struct tree *t;
};

static int entry_add(struct prov_page *out, long idx)
{
	struct prov_record r = {0};
	char id[32];

	snprintf(id, sizeof(id), "%ld", idx);
	r.id = strdup(id); /* no name: a million of them stay small */
	if (!r.id || prov_page_add(out, &r) < 0) {
		prov_record_free(&r);
		return -ENOMEM;
	}
	return 0;
}

static int hostile_list_page(struct provider *p, const struct prov_record *dir, long page,
			     struct prov_page *out)
{
	struct hostile *h = (struct hostile *)p;
	long shown = h->repeat ? 1 : h->late ? page - h->late + 1 : page;
	size_t before = out->n;
	int r = 0;

	if (!dir) { /* the root: one workspace */
		struct prov_record ws = {
		    .id = strdup("ws"), .name = strdup("ws"), .name_len = 2, .container = 1};

		out->total = 1;
		out->last = 1;
		return prov_page_add(out, &ws);
	}
	pthread_mutex_lock(&h->lock);
	if (++h->calls == h->quit_after)
		tree_quit(h->t);
	pthread_mutex_unlock(&h->lock);
	for (long i = 0; r == 0 && !(h->empty_after && page > 1) && shown > 0 && i < h->per_page;
	     i++) {
		long idx = (shown - 1) * (h->per_page - h->overlap) + i;

		if (h->real && idx >= h->real)
			break;
		r = entry_add(out, idx);
	}
	out->total = h->total;
	out->bytes += h->bytes;
	provider_page_done(out, page, h->per_page, before);
	if (page < h->late)
		out->last = 0;
	out->more = (h->more || page < h->late) && !out->last;
	return r;
}

static void hostile_destroy(struct provider *p)
{
	(void)p;
}

static const struct provider_ops hostile_ops = {
    .list_page = hostile_list_page,
    .destroy = hostile_destroy,
};

static int setup(void **state)
{
	struct hostile *h = calloc(1, sizeof(*h));
	struct provider *p = &h->base;
	struct tree_opts o = {.dir_ttl = 60, .attr_ttl = 30, .neg_ttl = 10, .parallel = PARALLEL};

	h->base.ops = &hostile_ops;
	h->base.name = "hostile";
	pthread_mutex_init(&h->lock, NULL);
	h->t = tree_new(&p, 1, &o);
	*state = h;
	return h->t ? 0 : -1;
}

static int teardown(void **state)
{
	struct hostile *h = *state;

	tree_free(h->t);
	pthread_mutex_destroy(&h->lock);
	free(h);
	return 0;
}

struct count {
	long n;	  /* entries other than "." and ".." */
	long all; /* every entry */
	off_t next;
};

static int count_entry(void *ctx, const char *name, const struct tree_stat *st, off_t next,
		       int holds)
{
	struct count *c = ctx;

	(void)st, (void)holds;
	c->n += strcmp(name, ".") && strcmp(name, "..");
	c->all++;
	c->next = next;
	return 0;
}

/* Read hostile/ws as the kernel does, from the offset reached until an answer gives
 * nothing: its first page, then the whole listing. 0 or -errno; *n: the entries read. */
static int read_ws(struct hostile *h, long *n)
{
	struct tree_stat dir, ws;
	struct count c = {0};
	long before;
	int r = tree_lookup(h->t, TREE_ROOT, "hostile", &dir);

	if (r == 0)
		r = tree_lookup(h->t, dir.ino, "ws", &ws);
	do {
		before = c.all;
		if (r == 0)
			r = tree_readdir(h->t, ws.ino, c.next, 0, count_entry, &c);
	} while (r == 0 && c.all > before);
	*n = c.n;
	return r;
}

/* 2^63 - 1 overflowed the page count (a signed addition) and the listing was taken as one
 * page. A total beyond the entries bound is not believed: paged to the last page. */
static void test_a_total_beyond_the_bound_is_not_believed(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = LONG_MAX;
	h->per_page = 10;
	h->real = 250;
	assert_int_equal(read_ws(h, &n), 0);
	assert_int_equal(n, 250);
	assert_in_range(h->calls, 26, 26 + PARALLEL);
}

/* A total the pages contradict is fetched again, three times in all, then served as seen:
 * each time the first empty page ends the listing. */
static void test_an_empty_page_ends_the_listing(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = 150000;
	h->per_page = 10;
	h->empty_after = 1;
	assert_int_equal(read_ws(h, &n), 0);
	assert_int_equal(n, 10);
	assert_in_range(h->calls, 4, 1 + 3 * (1 + PARALLEL));
}

static void test_a_page_of_no_new_id_ends_the_listing(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = -1;
	h->per_page = 10;
	h->repeat = 1;
	assert_int_equal(read_ws(h, &n), 0);
	assert_int_equal(n, 10);
	assert_in_range(h->calls, 2, 1 + 2);
}

/* Entries that moved between two requests come on two pages: each is listed once, and the
 * pages, packed into blocks as they came, are merged without losing or freeing twice. */
static void test_entries_on_two_pages_are_listed_once(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = -1;
	h->per_page = 10;
	h->overlap = 3; /* pages 0-9, 7-16, 14-23, 21-29, 28-29 */
	h->real = 30;
	assert_int_equal(read_ws(h, &n), 0);
	assert_int_equal(n, 30);
}

/* Codeup: a directory's entries may all lie on later pages; pages that bring nothing but
 * say more follow do not end the listing. */
static void test_pages_that_say_more_follow_go_on(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = -1;
	h->per_page = 10;
	h->real = 25;
	h->late = 5;
	assert_int_equal(read_ws(h, &n), 0);
	assert_int_equal(n, 25);
	assert_in_range(h->calls, 7, 7 + PARALLEL);
}

/* ... yet a provider that says so forever is stopped by the bounds: here the same page
 * again and again, which would end at once without `more`. */
static void test_pages_that_say_more_follow_are_bounded(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = -1;
	h->per_page = 1;
	h->repeat = 1;
	h->more = 1;
	assert_int_equal(read_ws(h, &n), -EIO);
	assert_int_equal(h->calls, PROV_MAX_PAGES);
}

static void test_entries_are_bounded(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = LONG_MAX;
	h->per_page = 10000;
	assert_int_equal(read_ws(h, &n), -EIO);
	assert_in_range(h->calls, PROV_MAX_ENTRIES / 10000 + 1,
			PROV_MAX_ENTRIES / 10000 + 2 + PARALLEL);
}

static void test_answer_bytes_are_bounded(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = -1;
	h->per_page = 1;
	h->bytes = 2 << 20;
	assert_int_equal(read_ws(h, &n), -EIO);
	assert_in_range(h->calls, PROV_MAX_BYTES / (2 << 20) + 1,
			PROV_MAX_BYTES / (2 << 20) + 2 + PARALLEL);
}

static void test_pages_are_bounded_without_a_total(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = -1;
	h->per_page = 1;
	assert_int_equal(read_ws(h, &n), -EIO);
	assert_int_equal(h->calls, PROV_MAX_PAGES);
}

/* A total that would take more pages than the bound fails at once. */
static void test_pages_are_bounded_with_a_total(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = 999999;
	h->per_page = 1;
	assert_int_equal(read_ws(h, &n), -EIO);
	assert_int_equal(h->calls, 1);
}

/* SIGTERM: no listing asks for a page once the tree is told to quit. */
static void test_quit_stops_a_listing_between_pages(void **state)
{
	struct hostile *h = *state;
	long n;

	h->total = -1;
	h->per_page = 1;
	h->quit_after = 50;
	assert_int_equal(read_ws(h, &n), -EIO);
	assert_in_range(h->calls, 50, 50 + PARALLEL);
}

/* A name filter's pages of 100,000 candidates each, never the last. */
static int filter_page(struct provider *p, const struct prov_record *dir, const char *term,
		       long page, struct prov_page *out, void *ctx)
{
	size_t before = out->n;
	int r = 0;

	(void)p, (void)dir, (void)term, (void)ctx;
	for (long i = 0; r == 0 && i < 100000; i++)
		r = entry_add(out, (page - 1) * 100000 + i);
	out->total = -1;
	provider_page_done(out, page, 100000, before);
	return r;
}

static void test_filter_candidates_are_bounded(void **state)
{
	struct hostile *h = *state;
	struct prov_record ws = {.id = "ws"};
	struct prov_page out = {0};

	assert_int_equal(provider_filter_pages(&h->base, &ws, "x", filter_page, NULL, &out), -EIO);
	assert_int_equal(out.n, PROV_MAX_ENTRIES + 100000);
	prov_page_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_a_total_beyond_the_bound_is_not_believed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_an_empty_page_ends_the_listing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_entries_on_two_pages_are_listed_once, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_page_of_no_new_id_ends_the_listing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pages_that_say_more_follow_go_on, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pages_that_say_more_follow_are_bounded, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_entries_are_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_answer_bytes_are_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pages_are_bounded_without_a_total, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pages_are_bounded_with_a_total, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_quit_stops_a_listing_between_pages, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_filter_candidates_are_bounded, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
