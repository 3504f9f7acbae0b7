/* Unit tests of a directory's .index.jsonl (docs/design.md §1) and of the names a directory
 * serves itself: a fake provider with a workspace and a group, a fake clock. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "clock.h"
#include "provider.h"
#include "tree.h"
#include "tree_fake.h"

#define PAGE 2 /* entries on one page of the workspace */

struct fake {
	struct provider base;
	pthread_mutex_t lock; /* list_page runs in the pager's threads */
	int list_calls, complete_calls;
	int extra; /* entries added to the workspace after the first five */
	int moved; /* urls carry this number */
};

static struct prov_record rec_of(const char *id, const char *name, const char *kind)
{
	struct prov_record r = {.id = strdup(id), .name = strdup(name), .kind_name = kind};

	r.name_len = strlen(name);
	return r;
}

/* The workspace's i-th entry. */
static struct prov_record ws_entry(const struct fake *f, int i)
{
	char id[16], name[16];
	struct prov_record r;
	static const char *const names[] = {"alpha", ".index.jsonl", "nourl", "inc", "beta"};

	snprintf(id, sizeof(id), "%d", 100 + i);
	snprintf(name, sizeof(name), "e%d", i);
	r = rec_of(id, i < 5 ? names[i] : name, "code_source");
	r.ctime = 1000 + i;
	if (i != 2 && asprintf(&r.url, "https://git.example/%d/%s.git", f->moved, id) < 0)
		r.url = NULL;
	if (i == 0)
		r.branch = strdup("main");
	if (i == 3)
		r.incomplete = 1; /* complete() knows its branch */
	if (asprintf(&r.meta, "{\n  \"Id\": \"%s\",\n  \"Token\": \"******\",\n  \"n\": %d\n}\n",
		     id, i) < 0)
		r.meta = NULL;
	return r;
}

static int fake_list_page(struct provider *p, const struct prov_record *dir, long page,
			  struct prov_page *out)
{
	struct fake *f = (struct fake *)p;
	int n = 5 + f->extra;
	struct prov_record r;

	pthread_mutex_lock(&f->lock);
	f->list_calls++;
	pthread_mutex_unlock(&f->lock);
	out->last = 1;
	out->total = !dir ? 2 : !strcmp(dir->id, "g1") ? 5 : n;
	if (!dir) {
		r = rec_of("ws", "ws", "workspace");
		r.container = 1;
		prov_page_add(out, &r);
		r = rec_of("g1", "grp", "group");
		r.container = 1;
		r.meta = strdup("{\"kind\": \"group\"}\n");
		r.url = strdup("https://web.example/grp");
		prov_page_add(out, &r);
		return 0;
	}
	if (!strcmp(dir->id, "g1")) {
		static const char *const names[] = {"url", "branch", "meta.json", ".index.jsonl",
						    "plain"};

		for (int i = 0; i < 5; i++) {
			char id[16];

			snprintf(id, sizeof(id), "r%d", i);
			r = rec_of(id, names[i], "repository");
			r.ctime = 10 + i;
			prov_page_add(out, &r);
		}
		return 0;
	}
	out->page_size = PAGE;
	for (int i = (int)(page - 1) * PAGE; i < page * PAGE && i < n; i++) {
		r = ws_entry(f, i);
		prov_page_add(out, &r);
	}
	out->last = page * PAGE >= n;
	return 0;
}

static int fake_complete(struct provider *p, struct prov_record *rec)
{
	struct fake *f = (struct fake *)p;

	f->complete_calls++;
	free(rec->branch);
	rec->branch = strdup("dev");
	rec->incomplete = 0;
	return 0;
}

static const struct provider_ops fake_ops = {
    .list_page = fake_list_page,
    .complete = fake_complete,
    .destroy = fake_destroy,
};

struct fixture {
	struct fake f;
	struct tree *t;
	uint64_t stale[64]; /* inodes the watch was told of */
	int nstale;
	char entries[64][64]; /* entries it was told of, "name" */
	int nentries;
};

static void watch_entry(void *ctx, uint64_t dir, const char *name, int gone)
{
	struct fixture *x = ctx;

	(void)dir, (void)gone;
	if (x->nentries < 64)
		snprintf(x->entries[x->nentries++], sizeof(x->entries[0]), "%s", name);
}

static void watch_inode(void *ctx, uint64_t ino)
{
	struct fixture *x = ctx;

	if (x->nstale < 64)
		x->stale[x->nstale++] = ino;
}

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));
	struct tree_opts o = {.dir_ttl = 60, .attr_ttl = 30, .neg_ttl = 10, .parallel = 2};

	*state = x;
	if (fake_setup(&x->f.base, &fake_ops, &x->f.lock, &o, &x->t) < 0)
		return -1;
	tree_watch(x->t,
		   &(struct tree_watch){.entry = watch_entry, .inode = watch_inode, .ctx = x});
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	return fake_teardown(x->t, &x->f.lock, x);
}

/* The whole of file ino, read in small pieces, NUL-terminated (free it). */
static char *slurp(struct tree *t, uint64_t ino, size_t *len)
{
	char *buf = calloc(1, 1 << 16);
	int r;

	*len = 0;
	while ((r = tree_read(t, ino, buf + *len, 7, (off_t)*len)) > 0)
		*len += (size_t)r;
	assert_int_equal(r, 0);
	return buf;
}

/* The index at path: its bytes (free them) and attributes. */
static char *index_at(struct tree *t, const char *path, struct tree_stat *st)
{
	char full[256];
	size_t len;
	char *s;

	snprintf(full, sizeof(full), "%s/.index.jsonl", path);
	assert_int_equal(path_lookup(t, full, st), 0);
	s = slurp(t, st->ino, &len);
	assert_int_equal(len, st->size);
	assert_false(st->is_dir);
	assert_true(st->of_listing);
	tree_forget(t, st->ino, 1);
	return s;
}

/* Line i (from 0) of an index, parsed. */
static struct json_object *line_of(const char *s, int i)
{
	char buf[4096];
	const char *end;

	while (i-- > 0)
		s = strchr(s, '\n') + 1;
	end = strchr(s, '\n');
	assert_non_null(end);
	snprintf(buf, sizeof(buf), "%.*s", (int)(end - s), s);
	return json_tokener_parse(buf);
}

static const char *str_at(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_index_is_the_listing_in_order(void **state)
{
	struct fixture *x = *state;
	struct names c = {0};
	struct tree_stat st;
	struct json_object *o, *meta, *v;
	char *s = index_at(x->t, "/fake/ws", &st);

	assert_int_equal(x->f.list_calls, 4); /* the root, then the workspace's three pages */
	assert_int_equal(lines(s), 5);
	assert_int_equal(s[st.size - 1], '\n');
	assert_int_equal(read_dir(x->t, "/fake/ws", &c), 0);
	assert_int_equal(c.n, 2 + 5);
	for (int i = 0; i < 5; i++) {
		o = line_of(s, i);
		assert_string_equal(str_at(o, "name"), c.list[2 + i]); /* readdir's order */
		assert_string_equal(str_at(o, "kind"), "code_source");
		json_object_put(o);
	}
	assert_string_equal(c.list[3], ".index.jsonl~101"); /* the name is taken */
	for (int i = 0; i < c.n; i++)
		assert_string_not_equal(c.list[i], ".index.jsonl");

	o = line_of(s, 0);
	assert_string_equal(str_at(o, "id"), "100");
	assert_string_equal(str_at(o, "url"), "https://git.example/0/100.git");
	assert_string_equal(str_at(o, "branch"), "main");
	assert_true(json_object_object_get_ex(o, "meta", &meta));
	assert_true(json_object_is_type(meta, json_type_object)); /* an object, not a string */
	assert_string_equal(str_at(meta, "Token"), "******");
	assert_true(json_object_object_get_ex(meta, "n", &v) && json_object_get_int(v) == 0);
	assert_false(json_object_object_get_ex(o, "incomplete", &v));
	json_object_put(o);
	/* Compact: one line, keys in the documented order. */
	assert_memory_equal(
	    s, "{\"name\":\"alpha\",\"kind\":\"code_source\",\"id\":\"100\",\"url\":", 52);

	o = line_of(s, 2);
	assert_string_equal(str_at(o, "name"), "nourl");
	assert_null(str_at(o, "url")); /* no url file: no url key */
	assert_null(str_at(o, "branch"));
	json_object_put(o);
	free(s);
}

static void test_index_costs_the_listing_and_is_cached(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st, again;
	struct names c = {0};
	char *s, *t;

	assert_int_equal(read_dir(x->t, "/fake/ws", &c), 0);
	x->f.list_calls = 0;
	s = index_at(x->t, "/fake/ws", &st);
	t = index_at(x->t, "/fake/ws", &again);
	assert_int_equal(x->f.list_calls, 0); /* the listing held */
	assert_int_equal(st.ino, again.ino);
	assert_int_equal(st.mtime_ns, again.mtime_ns);
	assert_string_equal(s, t);
	assert_int_equal(tree_getattr(x->t, st.ino, &again), 0);
	assert_int_equal(again.size, st.size);
	free(s);
	free(t);
}

static void test_index_follows_a_refresh(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st, now;
	struct names c = {0};
	char *s, *t;
	int told = 0;

	s = index_at(x->t, "/fake/ws", &st);
	x->f.extra = 1;
	x->f.moved = 1;
	fake_clock += 61; /* past dir_ttl */
	x->nstale = 0;
	assert_int_equal(read_dir(x->t, "/fake/ws", &c), 0); /* the refresh */
	assert_int_equal(c.n, 2 + 6);
	for (int i = 0; i < x->nstale; i++)
		told |= x->stale[i] == st.ino;
	assert_true(told); /* the kernel drops what it kept of the index */
	assert_int_equal(tree_getattr(x->t, st.ino, &now), 0);
	assert_int_not_equal(now.size, st.size);
	assert_int_not_equal(now.mtime_ns, st.mtime_ns);
	t = index_at(x->t, "/fake/ws", &now);
	assert_int_equal(lines(t), 6);
	assert_non_null(strstr(t, "https://git.example/1/100.git"));
	assert_null(strstr(t, "https://git.example/0/"));
	free(s);
	free(t);
}

static void test_index_after_sighup(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st, now;
	char *s, *t;
	int expired = 0;

	s = index_at(x->t, "/fake/ws", &st);
	x->f.extra = 2;
	x->nentries = 0;
	tree_flush(x->t);
	for (int i = 0; i < x->nentries; i++)
		expired |= !strcmp(x->entries[i], ".index.jsonl");
	assert_true(expired); /* the kernel looks it up again */
	x->f.list_calls = 0;
	t = index_at(x->t, "/fake/ws", &now);
	assert_int_equal(x->f.list_calls, 1 + 4); /* the provider's directory, then 7 entries */
	assert_int_equal(lines(t), 7);
	assert_int_not_equal(now.size, st.size);
	free(s);
	free(t);
}

static void test_incomplete_record_costs_nothing_until_read(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st, br;
	struct json_object *o, *v;
	char *s, *t;

	s = index_at(x->t, "/fake/ws", &st);
	assert_int_equal(x->f.complete_calls, 0);
	o = line_of(s, 3);
	assert_string_equal(str_at(o, "name"), "inc");
	assert_null(str_at(o, "branch"));
	assert_true(json_object_object_get_ex(o, "incomplete", &v) && json_object_get_boolean(v));
	json_object_put(o);
	assert_int_equal(path_lookup(x->t, "/fake/ws/inc/branch", &br), 0);
	tree_forget(x->t, br.ino, 1);
	assert_int_equal(x->f.complete_calls, 1);
	t = index_at(x->t, "/fake/ws", &st);
	o = line_of(t, 3);
	assert_string_equal(str_at(o, "branch"), "dev");
	assert_false(json_object_object_get_ex(o, "incomplete", &v));
	json_object_put(o);
	free(s);
	free(t);
}

static void test_provider_directory_and_group_have_an_index(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st;
	struct names c = {0};
	struct json_object *o, *meta;
	static const char *const want[] = {"url~r0", "branch~r1", "meta.json~r2", ".index.jsonl~r3",
					   "plain"};
	char *s = index_at(x->t, "/fake", &st);

	assert_int_equal(lines(s), 2);
	o = line_of(s, 0);
	assert_string_equal(str_at(o, "name"), "ws");
	assert_string_equal(str_at(o, "kind"), "workspace");
	assert_null(str_at(o, "url"));
	assert_false(json_object_object_get_ex(o, "meta", &meta)); /* no meta.json */
	json_object_put(o);
	o = line_of(s, 1);
	assert_string_equal(str_at(o, "kind"), "group");
	assert_string_equal(str_at(o, "url"), "https://web.example/grp");
	json_object_put(o);
	free(s);

	/* A group serves meta.json, url and branch (whichever its record holds) and its index:
	 * each of those names is taken there. */
	s = index_at(x->t, "/fake/grp", &st);
	assert_int_equal(read_dir(x->t, "/fake/grp", &c), 0);
	assert_int_equal(c.n, 2 + 2 + 5); /* ".", "..", meta.json, url, the children */
	assert_string_equal(c.list[2], "meta.json");
	assert_string_equal(c.list[3], "url");
	for (int i = 0; i < 5; i++) {
		assert_string_equal(c.list[4 + i], want[i]);
		o = line_of(s, i);
		assert_string_equal(str_at(o, "name"), want[i]);
		assert_string_equal(str_at(o, "kind"), "repository");
		json_object_put(o);
	}
	assert_int_equal(path_lookup(x->t, "/fake/grp/branch~r1", &st), 0);
	assert_true(st.is_dir);
	tree_forget(x->t, st.ino, 1);
	free(s);
}

struct reader {
	struct tree *t;
	const char *want;
	int bad;
};

/* Look the index up and read it, again and again, while the main thread drops listings. */
static void *reader_run(void *arg)
{
	struct reader *rd = arg;
	struct tree_stat st;
	size_t len;

	for (int i = 0; i < 40; i++) {
		char *s;

		if (path_lookup(rd->t, "/fake/ws/.index.jsonl", &st) != 0) {
			rd->bad++;
			continue;
		}
		s = slurp(rd->t, st.ino, &len);
		rd->bad += len != st.size || strcmp(s, rd->want) != 0;
		tree_forget(rd->t, st.ino, 1);
		free(s);
	}
	return NULL;
}

static void test_index_built_by_many_readers_at_once(void **state)
{
	struct fixture *x = *state;
	struct reader rd[4];
	pthread_t th[4];
	struct tree_stat st;
	char *want = index_at(x->t, "/fake/ws", &st);

	for (int i = 0; i < 4; i++) {
		rd[i] = (struct reader){.t = x->t, .want = want};
		assert_int_equal(pthread_create(&th[i], NULL, reader_run, &rd[i]), 0);
	}
	for (int i = 0; i < 40; i++)
		tree_flush(x->t); /* every listing again: the index is built again, alike */
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(rd[i].bad, 0);
	}
	free(want);
}

static void test_no_index_outside_listing_directories(void **state)
{
	struct fixture *x = *state;
	struct tree_stat st;

	assert_int_equal(path_lookup(x->t, "/.index.jsonl", &st), -ENOENT); /* the root */
	assert_int_equal(path_lookup(x->t, "/fake/ws/alpha/.index.jsonl", &st), -ENOENT);
	assert_int_equal(path_lookup(x->t, "/fake/ws/.index.jsonl/x", &st), -ENOTDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_index_is_the_listing_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_costs_the_listing_and_is_cached, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_index_follows_a_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_after_sighup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_incomplete_record_costs_nothing_until_read, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_provider_directory_and_group_have_an_index, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_index_built_by_many_readers_at_once, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_no_index_outside_listing_directories, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
