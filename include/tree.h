/* tree: the cache of what the providers listed, addressed by inode number. Owns names, TTLs,
 * paging, lookup counts and locking; knows nothing of FUSE or HTTP. Every call is thread-safe. */
#ifndef CODESRCFS_TREE_H
#define CODESRCFS_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct provider;

struct tree_opts {
	long dir_ttl;  /* seconds a listing is trusted */
	long attr_ttl; /* seconds an entry found by a name look-up is trusted */
	long neg_ttl;  /* seconds a missing name is remembered */
	int parallel;  /* page requests in flight for one listing */
	uid_t uid;
	gid_t gid;
};

struct tree_stat {
	uint64_t ino; /* inode number */
	int is_dir;
	int is_link;   /* a symbolic link: a name beside an id (docs/design.md §1) */
	size_t size;   /* a link's: its target's length */
	int64_t mtime; /* seconds since the epoch */
	long mtime_ns; /* a directory's: moves when its entries change (or are due to) */
	int64_t ctime;
	int of_listing; /* a directory's .index.jsonl: trusted no longer than its listing */
};

/* One entry for the reader; next is the offset to resume at. holds: the entry, once taken,
 * holds one lookup of st->ino, to be given back with tree_forget when the reader never
 * gets it. Returns non-zero when the caller's buffer is full (the entry is not taken). */
typedef int (*tree_fill_fn)(void *ctx, const char *name, const struct tree_stat *st, off_t next,
			    int holds);

struct tree;

/* The root's inode number (FUSE's). Every other is a node, or one of a node's files. */
#define TREE_ROOT 1

/* A tree over n providers (kept, not owned). NULL on failure. */
struct tree *tree_new(struct provider **provs, size_t n, const struct tree_opts *opts);
/* Look up name in directory dir: its attributes, inode number included; that inode then
 * holds one lookup until tree_forget. A directory that lists children (the root excepted)
 * answers for ".index.jsonl" too, which readdir never gives (docs/design.md §1). 0 or
 * -ENOENT, -ENOTDIR, -ENAMETOOLONG, -EIO, -EACCES. */
int tree_lookup(struct tree *t, uint64_t dir, const char *name, struct tree_stat *st);
/* This thread's tree calls from now on give up, with -EINTR, once cancelled(ctx) says so:
 * asked while they wait on the network or on another thread's fetch of the same directory,
 * with the tree's lock held (it must not call into the tree). NULL: they never give up. */
void tree_thread_cancel(int (*cancelled)(void *ctx), void *ctx);
/* The kernel lets go of nlookup lookups of ino. */
void tree_forget(struct tree *t, uint64_t ino, uint64_t nlookup);
/* One more reference on ino (which must be held already), given back with tree_forget. */
void tree_hold(struct tree *t, uint64_t ino);
/* Attributes of ino. 0 or -ENOENT (a refresh took a file away). */
int tree_getattr(struct tree *t, uint64_t ino, struct tree_stat *st);
/* Entries of directory ino from offset off ("." and ".." included). With plus, the entries
 * fill is told hold a lookup do so once taken. 0 or -errno. */
int tree_readdir(struct tree *t, uint64_t ino, off_t off, int plus, tree_fill_fn fill, void *ctx);
/* Sends the entries fill took so far as the answer of a readdir call that goes on without
 * its reader (ctx as fill's); fill is called no more after it. */
typedef void (*tree_answer_fn)(void *ctx);
/* tree_readdir, but a reader at the end of a partial listing whose call fetches the rest
 * gets the entries of the pages that came first at once, through answer, while the call
 * goes on to install the rest for the reader's next call (which waits for it). */
int tree_readdir_answer(struct tree *t, uint64_t ino, off_t off, int plus, tree_fill_fn fill,
			tree_answer_fn answer, void *ctx);
/* Up to size bytes of file ino from off. Bytes read or -EISDIR, -ENOENT. */
int tree_read(struct tree *t, uint64_t ino, char *buf, size_t size, off_t off);
/* The target of symbolic link ino into buf (size bytes), NUL-terminated. Its length, or
 * -EINVAL when ino is no link, -ENAMETOOLONG when buf is too small. */
int tree_readlink(struct tree *t, uint64_t ino, char *buf, size_t size);
/* Extended attribute name of ino (user.codesrcfs.provider, .id, .web_url of a directory or
 * of a link beside one)
 * into buf; size 0 asks for the length. Length, or -ENODATA, -ERANGE, -EOPNOTSUPP for a
 * name outside user.* */
int tree_getxattr(struct tree *t, uint64_t ino, const char *name, char *buf, size_t size);
/* The NUL-separated names of ino's extended attributes; size 0 asks for the length. */
int tree_listxattr(struct tree *t, uint64_t ino, char *buf, size_t size);
/* List directory ino again now, whatever dir_ttl says, telling the watch what the kernel
 * holds that went stale, its copy of the listing included. *text (malloc'd, *len bytes)
 * gets one line per change: "+ name", "- name", "~ name" (another entry under that name,
 * or files that came, went or changed); a directory never listed in full gives a "+" for
 * every entry, the root nothing. 0, or -ENOTDIR (ino lists no children), -EINTR, -EIO,
 * -EACCES: a refresh that fails changes nothing. */
int tree_refresh(struct tree *t, uint64_t ino, char **text, size_t *len);
/* Who keeps copies of the tree (the kernel) and is told when they go stale. Both calls come
 * with the tree's lock held: note and return, never call back into the tree. */
struct tree_watch {
	/* Entry name of directory dir: gone (or no longer missing), or to be checked again. */
	void (*entry)(void *ctx, uint64_t dir, const char *name, int gone);
	/* The attributes and contents of ino are to be asked for again. */
	void (*inode)(void *ctx, uint64_t ino);
	void *ctx;
};

/* Tell w (NULL: nobody) from now on what a refresh changes of what the kernel holds. */
void tree_watch(struct tree *t, const struct tree_watch *w);
/* Forget every listing and every remembered miss (SIGHUP), and tell the watch that every
 * listing, entry and file the kernel holds is to be checked again. */
void tree_flush(struct tree *t);
/* The daemon is exiting: every listing under way stops before its next page and fails,
 * and none starts. Async-signal-safe. */
void tree_quit(struct tree *t);
/* Free t and every node, those the kernel still held included. */
void tree_free(struct tree *t);

#endif
