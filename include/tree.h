/* tree: the cache of what the providers listed, addressed by path. Owns names, TTLs,
 * paging and locking; knows nothing of FUSE or HTTP. Every call is thread-safe. */
#ifndef CODESRCFS_TREE_H
#define CODESRCFS_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "provider.h"

struct tree_opts {
	long dir_ttl;  /* seconds a listing is trusted */
	long attr_ttl; /* seconds an entry found by a name look-up is trusted */
	long neg_ttl;  /* seconds a missing name is remembered */
	int parallel;  /* page requests in flight for one listing */
	uid_t uid;
	gid_t gid;
	int64_t (*now)(void); /* clock in seconds; NULL: CLOCK_MONOTONIC */
};

struct tree_stat {
	int is_dir;
	size_t size;
	int64_t mtime; /* seconds since the epoch */
	int64_t ctime;
};

/* Returns non-zero when the caller's buffer is full; next is the offset to resume at. */
typedef int (*tree_fill_fn)(void *ctx, const char *name, const struct tree_stat *st, off_t next);

struct tree;

/* A tree over n providers (kept, not owned). NULL on failure. */
struct tree *tree_new(struct provider **provs, size_t n, const struct tree_opts *opts);
/* Attributes of path. 0 or -ENOENT, -ENOTDIR, -EIO, -EACCES. */
int tree_getattr(struct tree *t, const char *path, struct tree_stat *st);
/* Entries of directory path from offset off ("." and ".." included). 0 or -errno. */
int tree_readdir(struct tree *t, const char *path, off_t off, tree_fill_fn fill, void *ctx);
/* Open directory path: *keep_cache says whether what the kernel read of it last time is
 * still this listing (then it may serve readdir itself). 0 or -errno. */
int tree_opendir(struct tree *t, const char *path, int *keep_cache);
/* Up to size bytes of file path from off. Bytes read or -errno. */
int tree_read(struct tree *t, const char *path, char *buf, size_t size, off_t off);
/* Extended attribute name of directory path (user.codesrcfs.provider, .id, .web_url) into
 * buf; size 0 asks for the length. Length, or -ENODATA, -ERANGE, -errno. */
int tree_getxattr(struct tree *t, const char *path, const char *name, char *buf, size_t size);
/* The NUL-separated names of path's extended attributes; size 0 asks for the length. */
int tree_listxattr(struct tree *t, const char *path, char *buf, size_t size);
/* Forget every listing and every remembered miss (SIGHUP). */
void tree_flush(struct tree *t);
/* Free t and every node. */
void tree_free(struct tree *t);

#endif
