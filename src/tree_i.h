/* tree_i: what the tree's own files share; include/tree.h is the public API.
 *
 *   tree.c         the calls the kernel makes (look-up, readdir, read, getattr, xattrs,
 *                  forget/hold, watch/flush, new/free)
 *   tree_node.c    node lifetime, references, inode numbers, stat, a node's files
 *   tree_pager.c   every call into a provider: whole listings (parallel pages, the window
 *                  without a total, de-duplication by id, re-fetch when the total moves),
 *                  first pages, look-ups, completion, errors as errno; never a node
 *   tree_merge.c   a fresh listing installed into the live nodes (names, a first page's
 *                  order, what went stale told to the watch)
 *   tree_lookup.c  one name: the negative cache, the filter's seek, seeding a child
 *
 * Lock rules.
 *
 * - t->lock guards every field of every node, the list of all nodes and t->watch. What
 *   is set once in tree_new and never changes is read without it: t->o, t->ino_key,
 *   t->mount_time, t->root and the root's children and order, a node's prov and
 *   prov_root.
 * - No provider call (no network) is made with t->lock held. A fetch copies what it needs
 *   of the directory's record under the lock, unlocks, calls tree_pager.c, locks again
 *   and installs the answer.
 * - A node being fetched (a listing or complete()) has `loading` set by node_claim;
 *   another thread that would fetch it, or look a name up in it, waits on t->cond until
 *   node_release. Only the claimer installs into the node.
 * - refs counts the parent's reference (while the node is in its parent's children), each
 *   lookup the kernel holds (tree_lookup, a readdirplus entry, tree_hold for a push notify.c
 * queued), and each call in flight that may unlock (node_get ... node_put). The last one frees the
 * node. refs change only under t->lock, through node_ref and node_unref_n, which abort on a node
 *   that is not alive (its magic) and on giving back more than is held. The kernel's
 *   share is counted apart too (lookups), so tree_forget aborts on a forget of more
 *   lookups than the kernel was given, which refs alone cannot tell from the parent's.
 * - `order` holds no reference: a child leaves dir->order whenever it leaves
 *   dir->children (node_order_replace; node_order_check after every change).
 * - An inode number is turned into its node without the lock: the caller (the kernel)
 *   holds a lookup on it, so it is alive.
 * - The watch is called with t->lock held, so the order is tree lock, then the watch's
 *   own lock (notify.c), never the other way; a watch never calls back into the tree.
 * - The pager's threads hold no tree lock, only their listing's own pager lock.
 */
#ifndef CODESRCFS_TREE_I_H
#define CODESRCFS_TREE_I_H

#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "provider.h"
#include "tree.h"

#define TREE_FILE_MASK 3u	    /* low bits of an inode number: which file of the node */
#define NODE_MAGIC     0x6e6f6465u  /* a live node */
#define NODE_FREED     0xdeadf1eeu  /* a freed one, until its memory is reused */
#define TREE_INO_HIGH  (1ULL << 62) /* above any address: no inode number is 0 or TREE_ROOT */

/* Those bits are free in a node's address only with malloc's alignment. */
_Static_assert(alignof(max_align_t) > TREE_FILE_MASK, "malloc alignment too small");

/* A name remembered as missing from a directory. */
struct neg {
	char *name;
	int64_t expires;
	UT_hash_handle hh;
};

struct node {
	char *name;
	struct prov_record rec;
	struct provider *prov; /* NULL for the root */
	int prov_root;	       /* the provider's own directory: lists with dir == NULL */
	uint32_t magic;	       /* NODE_MAGIC while alive; past malloc's own words when freed */
	uint64_t refs;	       /* the parent's, the kernel's lookups, calls in flight */
	uint64_t lookups;      /* of those, the kernel's: what tree_forget may give back */
	struct node *children; /* by name */
	struct node **order;   /* children in listing order: readdir offsets index it */
	size_t norder;
	int listed;		 /* children hold a whole listing */
	int partial;		 /* children hold the first page only (page-through) */
	struct prov_page *first; /* that page, kept so the whole listing need not ask again */
	uint64_t gen;		 /* bumped when its entries change: its mtime's nanoseconds */
	struct node *all_prev, *all_next; /* every live node, attached or not: tree_free */
	size_t rank;	/* 1 + place in a first page a reader was given, while re-ordering */
	size_t dropped; /* entries of that first page gone from the whole listing */
	int64_t list_expires;
	int64_t seed_expires; /* a child found by a name look-up is trusted until then */
	int loading;
	int err_logged;
	struct neg *neg;
	size_t nneg;
	UT_hash_handle hh;
};

struct tree {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct node *root;
	struct node *all; /* every live node, so that nodes only the kernel held are freed too */
	uint64_t ino_key;
	struct tree_opts o;
	int64_t mount_time;
	struct tree_watch watch; /* all NULL: nobody keeps copies */
};

/* The files a node may serve besides its children, in inode-number order. */
extern const char *const tree_files[];

/* ---- tree_node.c ---- */

/* A node holding one reference (its parent's, once attached). NULL on failure. Lock held. */
struct node *node_new(struct tree *t, const char *name, struct provider *prov);
/* Free what n owns; its children table must be empty or cleared. */
void node_free(struct node *n);
/* Drop count references to n; the last one frees it and lets go of its children. Lock held. */
void node_unref_n(struct tree *t, struct node *n, uint64_t count);
/* Drop one reference to n. Lock held. */
void node_unref(struct tree *t, struct node *n);
/* One more reference to n, which must be alive. Lock held. */
void node_ref(struct node *n);
/* One more reference to n that the kernel holds, given back by tree_forget. Lock held. */
void node_ref_kernel(struct node *n);
/* Forget every miss remembered in n. Lock held. */
void node_neg_clear(struct node *n);
/* Put repl (NULL: nothing) where c stands in dir's listing order. Lock held. */
void node_order_replace(struct node *dir, const struct node *c, struct node *repl);
/* Assert every entry a reader can be given is a live child under its own name. Lock held. */
void node_order_check(const struct node *dir);
/* The inode number of n itself. */
uint64_t node_ino(const struct tree *t, const struct node *n);
/* The node of inode ino and, in *file, which of its files (0: the node itself). */
struct node *node_of_ino(const struct tree *t, uint64_t ino, unsigned *file);
/* The node of ino, referenced while a call that may unlock is in flight: node_put it. */
struct node *node_get(struct tree *t, uint64_t ino, unsigned *file);
/* Give back node_get's reference. */
void node_put(struct tree *t, struct node *n);
/* Held beyond its parent's reference: by the kernel (or a call in flight). Lock held. */
int node_held(const struct node *n);
/* n lists children: a container, a provider's directory or the root. */
int node_is_dir_container(const struct node *n);
/* The contents of file fname of a record, or NULL when it has no such file; *nl: a
 * newline ends it that the record does not hold. */
const char *node_record_file(const struct prov_record *rec, const char *fname, size_t *len,
			     int *nl);
/* The contents of n's file fname, as node_record_file. Lock held. */
const char *node_file(const struct node *n, const char *fname, size_t *len, int *nl);
/* File names that n itself serves (NULL-terminated): its children may not take them. */
void node_reserved(const struct node *n, const char *out[4]);
/* Replace n's record by rec (taken); a changed file set is a changed directory. Lock held. */
void node_set_record(struct node *n, struct prov_record *rec);
/* Attributes of file `file` of n (0: n itself), inode number included; -ENOENT when a
 * refresh took the file away. Lock held. */
int node_stat(const struct tree *t, const struct node *n, unsigned file, struct tree_stat *st);
/* Wait until nobody is fetching n, then claim it. Called and returns with the lock held. */
void node_claim(struct tree *t, struct node *n);
/* Let others fetch n again. Lock held. */
void node_release(struct tree *t, struct node *n);
/* Fill in what a listing left out of n's record (Codeup repositories), once. 0 or -errno. */
int node_complete(struct tree *t, struct node *n);
/* Does n serve file fname? 1, 0 or -errno; completes n's record first when it needs to. */
int node_has_file(struct tree *t, struct node *n, const char *fname);
/* Tell the watch that entry name of dir is gone (or to be checked again). Lock held. */
void tree_watch_entry(const struct tree *t, const struct node *dir, const char *name, int gone);
/* Tell the watch that inode ino is to be asked for again. Lock held. */
void tree_watch_inode(const struct tree *t, uint64_t ino);

/* ---- tree_pager.c: the only file that calls a provider ---- */

/* The whole listing of dir (NULL: the provider's root) into all, one record per id, with
 * up to parallel requests in flight; fetched again (bounded) while entries moved. *first,
 * when set, is page 1, taken. 0 or -errno. */
int pager_listing(struct provider *p, const struct prov_record *dir, int parallel,
		  struct prov_page **first, struct prov_page *all);
/* Page 1 of dir into uniq, one record per id (total, page_size and last as the page
 * said); *keep, unless it is the last, a copy of the page as it came for pager_listing. */
int pager_first(struct provider *p, const struct prov_record *dir, struct prov_page *uniq,
		struct prov_page **keep);
/* Does p have a name filter? */
int pager_can_lookup(const struct provider *p);
/* The filter's candidates for term in dir. 0 or -errno. */
int pager_lookup(struct provider *p, const struct prov_record *dir, const char *term,
		 struct prov_page *out);
/* Does p fill in what a listing lacked? */
int pager_can_complete(const struct provider *p);
/* Fill in rec (a copy) with what its listing lacked. 0 or -errno. */
int pager_complete(struct provider *p, struct prov_record *rec);
/* Let p forget what it memoised (SIGHUP). */
void pager_flush(struct provider *p);
/* Free *pg and what it holds; *pg becomes NULL. */
void pager_page_drop(struct prov_page **pg);

/* ---- tree_merge.c ---- */

/* Give n the record rec (taken), telling the watch what went stale of what the kernel
 * holds; a reused child keeps what complete() fetched. Lock held. */
void node_take_record(struct tree *t, struct node *n, struct prov_record *rec);
/* Make dir's listing fresh. A failed refresh keeps serving the old listing. */
int tree_load(struct tree *t, struct node *dir);
/* Page-through: dir's first page only, unless a fresh listing is there already. */
int tree_load_first(struct tree *t, struct node *dir);

/* ---- tree_lookup.c ---- */

/* Child name of dir into *out, referenced (the caller's to keep or unref); fetches what it
 * must. 0, -ENOENT or -errno. */
int tree_child_get(struct tree *t, struct node *dir, const char *name, struct node **out);

#endif
