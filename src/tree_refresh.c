/* tree_refresh: one directory listed again now, on demand (codesrcfs --refresh), and what
 * that changed, told as lines: "+ name" (new), "- name" (gone), "~ name" (another entry
 * under that name, or its files changed: which files it serves, or their bytes).
 *
 * What a directory held is remembered as each entry's id and a digest of its files, not
 * the files themselves: a directory of 100,000 code sources costs a few megabytes while it
 * is refreshed. Lock rules: tree_i.h. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree_i.h"

/* An entry as the directory held it before the refresh. */
struct seen {
	char *name;
	char *id;
	unsigned char digest[EVP_MAX_MD_SIZE]; /* of its files: which it serves, their bytes */
	UT_hash_handle hh;
};

/* The digest of the files n serves: a file absent and a file empty differ. Lock held. */
static int files_digest(EVP_MD_CTX *md, const struct node *n, unsigned char *out)
{
	int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL);

	for (unsigned i = 0; ok && tree_files[i]; i++) {
		size_t len = 0;
		int nl;
		const char *s = node_file(n, tree_files[i], &len, &nl);
		uint64_t tag = s ? (uint64_t)len + 1 : 0;

		ok = EVP_DigestUpdate(md, &tag, sizeof(tag)) &&
		     (!s || EVP_DigestUpdate(md, s, len - nl));
	}
	return ok && EVP_DigestFinal_ex(md, out, NULL) ? 0 : -ENOMEM;
}

static void seen_free(struct seen **all)
{
	struct seen *e, *tmp;

	HASH_ITER(hh, *all, e, tmp) {
		HASH_DEL(*all, e);
		free(e->name);
		free(e->id);
		free(e);
	}
}

/* Remember what dir holds now into *all, by name. Lock held. */
static int seen_take(const struct node *dir, EVP_MD_CTX *md, struct seen **all)
{
	struct node *c, *tmp;

	HASH_ITER(hh, dir->children, c, tmp) {
		struct seen *e = calloc(1, sizeof(*e));

		if (!e || !(e->name = strdup(c->name)) ||
		    !(e->id = strdup(c->rec.id ? c->rec.id : "")) ||
		    files_digest(md, c, e->digest) < 0) {
			if (e)
				free(e->name);
			free(e);
			seen_free(all);
			return -ENOMEM;
		}
		HASH_ADD_KEYPTR(hh, *all, e->name, strlen(e->name), e);
	}
	return 0;
}

/* Has c changed since it was e? Lock held. */
static int changed(const struct seen *e, const struct node *c, EVP_MD_CTX *md)
{
	unsigned char now[EVP_MAX_MD_SIZE] = {0};

	if (strcmp(e->id, c->rec.id ? c->rec.id : ""))
		return 1;
	return files_digest(md, c, now) < 0 || memcmp(now, e->digest, sizeof(now)) != 0;
}

/* The lines telling how dir differs from before: what went, in the old order, then what
 * came or changed, in the new. Lock held. */
static int changes(const struct node *dir, const struct seen *before, EVP_MD_CTX *md, char **text,
		   size_t *len)
{
	FILE *f = open_memstream(text, len);
	const struct seen *e, *tmp;
	struct node *c;

	if (!f)
		return -ENOMEM;
	HASH_ITER(hh, (struct seen *)before, e, tmp) {
		HASH_FIND_STR(dir->children, e->name, c);
		if (!c)
			fprintf(f, "- %s\n", e->name);
	}
	for (size_t i = 0; dir->listings && i < dir->listings->n; i++) {
		c = dir->listings->e[i].node;
		HASH_FIND_STR(before, c->name, e);
		if (!e)
			fprintf(f, "+ %s\n", c->name);
		else if (changed(e, c, md))
			fprintf(f, "~ %s\n", c->name);
	}
	if (fclose(f) != 0) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* List the claimed dir again and tell what changed. Lock held. */
static int refresh_claimed(struct tree *t, struct node *dir, char **text, size_t *len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	struct seen *before = NULL;
	int r = md ? 0 : -ENOMEM;

	/* A directory never listed in full held no listing to compare with: all is new. */
	if (r == 0 && dir->listed)
		r = seen_take(dir, md, &before);
	if (r == 0)
		r = tree_load_claimed(t, dir);
	if (r == 0)
		r = changes(dir, before, md, text, len);
	/* Whatever the kernel kept of the listing goes now, whatever attr_ttl says. */
	if (r == 0)
		tree_watch_inode(t, node_ino(t, dir));
	seen_free(&before);
	EVP_MD_CTX_free(md);
	return r;
}

int tree_refresh(struct tree *t, uint64_t ino, char **text, size_t *len)
{
	unsigned file;
	struct node *n = node_get(t, ino, &file);
	int r;

	pthread_mutex_lock(&t->lock);
	r = file || !node_is_dir_container(n) ? -ENOTDIR : 0;
	pthread_mutex_unlock(&t->lock);
	*text = NULL;
	*len = 0;
	if (r < 0 || !n->prov) /* the root's directories are fixed: nothing to list */
		goto out;
	pthread_mutex_lock(&t->lock);
	r = node_claim(t, n);
	if (r == 0) {
		r = refresh_claimed(t, n, text, len);
		node_release(t, n);
	}
	pthread_mutex_unlock(&t->lock);
out:
	node_put(t, n);
	return r;
}
