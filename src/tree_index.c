/* tree_index: a directory's .index.jsonl (docs/design.md §1), one compact JSON object per
 * child in the directory's order, built from the listing the tree holds.
 *
 * Its bytes are kept in the directory's node and built again only when the kernel asks
 * for its attributes (a look-up or getattr) and the listing moved since (a new generation,
 * or a record complete() filled in): the size the kernel last heard of is always the size
 * of the bytes a read gets. Its mtime's nanoseconds move whenever the bytes change, so the
 * kernel drops the pages it kept (auto_inval_data). The kernel trusts it no longer than
 * the listing; a new listing, and SIGHUP, tell the watch at once. Lock rules: tree_i.h. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree_i.h"

int index_is(struct tree *t, const struct node *n, const char *name)
{
	int r;

	if (!n->prov || strcmp(name, TREE_INDEX_NAME))
		return 0;
	pthread_mutex_lock(&t->lock); /* the record is rewritten under it */
	r = node_is_dir_container(n);
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* What the index says of one child: a copy, so the bytes are built without the lock. */
struct index_src {
	char *name, *id, *url, *branch, *meta;
	const char *kind;
	int incomplete;
};

static void index_src_free(struct index_src *src, size_t n)
{
	for (size_t i = 0; src && i < n; i++) {
		free(src[i].name);
		free(src[i].id);
		free(src[i].url);
		free(src[i].branch);
		free(src[i].meta);
	}
	free(src);
}

static int index_dup(char **dst, const char *s)
{
	*dst = s ? strdup(s) : NULL;
	return s && !*dst ? -ENOMEM : 0;
}

/* The number of entries of dir's current listing. Lock held. */
static size_t index_count(const struct node *dir)
{
	return dir->listings ? dir->listings->n : 0;
}

/* Copy what the index says of dir's children, in the order of its current listing, into
 * *out (room for index_count of them) and how many into *n: the links beside ids are no
 * directories, and are left out. 0 or -ENOMEM. Lock held. */
static int index_snapshot(const struct node *dir, struct index_src **out, size_t *n)
{
	size_t all = index_count(dir), i = 0;
	struct index_src *src = calloc(all ? all : 1, sizeof(*src));
	int r = src ? 0 : -ENOMEM;

	for (size_t k = 0; r == 0 && k < all; k++) {
		const struct lentry *e = &dir->listings->e[k];
		const struct node *c = e->node;

		if (c->link)
			continue;
		src[i].kind = c->rec.kind_name;
		src[i].incomplete = c->rec.incomplete && pager_can_complete(c->prov);
		if (index_dup(&src[i].name, e->name) || index_dup(&src[i].id, c->rec.id) ||
		    index_dup(&src[i].url, c->rec.url) ||
		    index_dup(&src[i].branch, c->rec.branch) ||
		    index_dup(&src[i].meta, c->rec.meta))
			r = -ENOMEM;
		i++;
	}
	if (r < 0) {
		index_src_free(src, all);
		src = NULL;
	}
	*out = src;
	*n = i;
	return r;
}

/* Add key: s to o, unless s is NULL. 0 or -ENOMEM. */
static int index_add_str(struct json_object *o, const char *key, const char *s)
{
	struct json_object *v;

	if (!s)
		return 0;
	v = json_object_new_string(s);
	if (!v || json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* Add key: v to o (taken). 0 or -ENOMEM. */
static int index_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (v && json_object_object_add(o, key, v) == 0)
		return 0;
	json_object_put(v);
	return -ENOMEM;
}

/* One child as one line of the index. An incomplete record (a Codeup repository whose
 * list item lacked its clone URL or branch) shows what the listing gave and says so,
 * rather than cost one request per child; reading its url or branch file completes it.
 * meta.json is an object here, redacted alike since it is the file's own text. */
static int index_line(FILE *f, const struct index_src *c)
{
	struct json_object *o = json_object_new_object(), *meta;
	int r = o ? 0 : -ENOMEM;

	if (r == 0)
		r = index_add_str(o, "name", c->name);
	if (r == 0)
		r = index_add_str(o, "kind", c->kind);
	if (r == 0)
		r = index_add_str(o, "id", c->id);
	if (r == 0)
		r = index_add_str(o, "url", c->url);
	if (r == 0)
		r = index_add_str(o, "branch", c->branch);
	if (r == 0 && c->incomplete)
		r = index_add(o, "incomplete", json_object_new_boolean(1));
	/* A meta.json that is no JSON (no provider makes one) is left out. */
	meta = r == 0 && c->meta ? json_tokener_parse(c->meta) : NULL;
	if (meta)
		r = index_add(o, "meta", meta);
	if (r == 0 && fprintf(f, "%s\n",
			      json_object_to_json_string_ext(
				  o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) < 0)
		r = -ENOMEM;
	json_object_put(o);
	return r;
}

/* The index of n children into *out (malloc'd) and *len. 0 or -ENOMEM. */
static int index_build(const struct index_src *src, size_t n, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);
	int r = f ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < n; i++)
		r = index_line(f, &src[i]);
	if (f && fclose(f) != 0)
		r = -ENOMEM;
	if (r < 0 && f) {
		free(*out);
		*out = NULL;
	}
	return r;
}

/* Does dir's index show the listing it holds now? Lock held. */
static int index_fresh(const struct tree *t, const struct node *dir)
{
	return dir->index && dir->index_of[0] == dir->gen && dir->index_of[1] == t->completed;
}

/* Keep buf (taken) as dir's index, built from generation gen and completion count done,
 * unless one built from a later state is there already; the index's generation moves
 * when its bytes change. Lock held. */
static void index_install(struct node *dir, char *buf, size_t len, uint64_t gen, uint64_t done)
{
	int newer = !dir->index || (gen >= dir->index_of[0] && done >= dir->index_of[1]);

	if (newer) {
		dir->index_of[0] = gen;
		dir->index_of[1] = done;
	}
	if (!newer || (dir->index && len == dir->index_len && !memcmp(buf, dir->index, len))) {
		free(buf);
		return;
	}
	free(dir->index);
	dir->index = buf;
	dir->index_len = len;
	dir->index_gen++;
}

/* Build dir's index again if its listing moved since, with the lock released meanwhile
 * (ten thousand children take a tenth of a second): the caller holds a reference on dir.
 * 0 or -ENOMEM (the last bytes are kept). Lock held. */
static int index_update(struct tree *t, struct node *dir)
{
	uint64_t gen = dir->gen, done = t->completed;
	struct index_src *src = NULL;
	size_t n = 0, len = 0;
	char *buf = NULL;
	int r;

	if (index_fresh(t, dir))
		return 0;
	r = index_snapshot(dir, &src, &n);
	if (r < 0)
		return r;
	pthread_mutex_unlock(&t->lock);
	r = index_build(src, n, &buf, &len);
	index_src_free(src, n);
	pthread_mutex_lock(&t->lock);
	if (r == 0)
		index_install(dir, buf, len, gen, done);
	return r;
}

int index_stat(struct tree *t, struct node *dir, struct tree_stat *st)
{
	int r = index_update(t, dir);

	if (r < 0 && !dir->index)
		return r;
	node_stat(t, dir, 0, st);
	st->ino |= TREE_INDEX;
	st->is_dir = 0;
	st->size = dir->index_len;
	st->mtime_ns = (long)(dir->index_gen % 1000000000);
	st->of_listing = 1;
	return 0;
}

int index_lookup(struct tree *t, struct node *dir, struct tree_stat *st)
{
	int r = tree_load(t, dir);

	if (r < 0)
		return r;
	pthread_mutex_lock(&t->lock);
	r = index_stat(t, dir, st);
	if (r == 0)
		node_ref_kernel(dir); /* the kernel's lookup of the index holds its directory */
	pthread_mutex_unlock(&t->lock);
	return r;
}

int index_read(const struct node *dir, char *buf, size_t size, off_t off)
{
	size_t done;

	if (off < 0 || (size_t)off >= dir->index_len)
		return 0;
	done = dir->index_len - (size_t)off < size ? dir->index_len - (size_t)off : size;
	memcpy(buf, dir->index + off, done);
	return (int)done;
}

void index_listing_changed(const struct tree *t, const struct node *dir)
{
	if (dir->index)
		tree_watch_inode(t, node_ino(t, dir) | TREE_INDEX);
}

void index_flush(const struct tree *t, const struct node *dir)
{
	if (!dir->index)
		return;
	tree_watch_entry(t, dir, TREE_INDEX_NAME, 0);
	tree_watch_inode(t, node_ino(t, dir) | TREE_INDEX);
}
