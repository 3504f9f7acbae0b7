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
 *   tree_stream.c  the pages of a cold listing appended for its readers as they come
 *   tree_lookup.c  one name: the negative cache, the filter's seek, seeding a child
 *   tree_index.c   a directory's .index.jsonl: its bytes, built from the listing held
 *   tree_refresh.c one directory listed again on demand, and what that changed
 *   tree_listing.c a directory's listings as readers were given them (frozen order and
 *                  names, readdir offsets that carry the listing's generation), and the
 *                  blocks a listing's records are packed into, one a page
 *
 * Lock rules.
 *
 * - t->lock guards every field of every node, the list of all nodes and t->watch. What
 *   is set once in tree_new and never changes is read without it: t->o, t->ino_key,
 *   t->mount_time, t->root and the root's children and listing, a node's prov and
 *   prov_root.
 * - No provider call (no network) is made with t->lock held. A fetch copies what it needs
 *   of the directory's record under the lock, unlocks, calls tree_pager.c, locks again
 *   and installs the answer.
 * - A node being fetched (a listing or complete()) has `loading` set by node_claim;
 *   another thread that would fetch it, or look a name up in it, waits on t->cond until
 *   node_release. Only the claimer installs into the node.
 * - A caller may give up (tree_thread_cancel): its waits on t->cond wake every
 *   TREE_POLL_MS to ask, and its fetch returns -EINTR, installing nothing; a claimer that
 *   gives up releases the node, and whoever waited for it fetches it then. The cancel
 *   callback is asked with t->lock held, so it must not call into the tree.
 * - refs counts the parent's reference (while the node is in its parent's children), each
 *   lookup the kernel holds (tree_lookup, a readdirplus entry, tree_hold for a push notify.c
 *   queued), each listing of its parent that lists it (struct listing), and each call in
 *   flight that may unlock (node_get ... node_put). The last one frees the node. refs
 *   change only under t->lock, through node_ref and node_unref_n, which abort on a node
 *   that is not alive (its magic) and on giving back more than is held. The kernel's
 *   share is counted apart too (lookups), so tree_forget aborts on a forget of more
 *   lookups than the kernel was given, which refs alone cannot tell from the parent's;
 *   so is the listings' share (in_listings), which node_held leaves out.
 * - A listing never changes once installed, and every entry of it holds a reference: a
 *   reader that began on it finishes on it (its generation rides in the readdir offset)
 *   even after a refresh or a look-up replaced the children, and no entry it gives can be
 *   freed under it. A listing goes when its directory is freed, or once superseded and
 *   unread for a while (listing_prune); nobody keeps a pointer to one across an unlock.
 * - A node's record either owns its strings (block NULL) or points into a record block
 *   (one a page of a listing), on which it then holds one of the block's refs. A node
 *   that leaves its parent's children but lives on, or keeps its record through a
 *   refresh, takes the record out of the block (node_rec_own): a block is freed whole once
 *   the listing after the one that filled it is installed. The pager packs each page as
 *   it comes, on its own threads, and gives its reference back without t->lock, after a
 *   stream's nodes took theirs: the refs are atomic.
 * - An inode number is turned into its node without the lock: the caller (the kernel)
 *   holds a lookup on it, so it is alive.
 * - The watch is called with t->lock held, so the order is tree lock, then the watch's
 *   own lock (notify.c), never the other way; a watch never calls back into the tree.
 * - The pager's threads hold no tree lock, only their listing's own pager lock; they read
 *   t->quit (atomic, set once by tree_quit, from a signal handler) without any lock. Its
 *   progress (tree_stream.c) runs on the thread that fetches, the claimer, with the pager
 *   lock released, and takes t->lock for each step it installs.
 * - A directory's index is built from a copy of its children's records with t->lock
 *   released, by a caller that holds a reference on the directory; the bytes are kept
 *   only when no index built from a later state got there first.
 */
#ifndef CODESRCFS_TREE_I_H
#define CODESRCFS_TREE_I_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "provider.h"
#include "tree.h"

#define TREE_FILE_MASK	  7u /* low bits of an inode number: which file of the node */
#define TREE_INDEX	  4u /* those bits for a directory's .index.jsonl */
#define TREE_INDEX_NAME	  ".index.jsonl"
#define NODE_RESERVED_MAX 5	       /* node_reserved's names, its NULL included */
#define NODE_MAGIC	  0x6e6f6465u  /* a live node */
#define NODE_FREED	  0xdeadf1eeu  /* a freed one, until its memory is reused */
#define TREE_INO_HIGH	  (1ULL << 62) /* above any address: no inode number is 0 or TREE_ROOT */
#define TREE_POLL_MS	  40	       /* how often a wait asks whether its caller gave up */
/* Levels of directories below a provider's own (docs/design.md §4): one this deep lists no
 * directory that would list children of its own. */
#define TREE_MAX_DEPTH 64
#define TREE_MAX_SAID  4096 /* such directories the log remembers it named */

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
	struct prov_record rec; /* a link's: its target's id, web_url and times */
	char *link;		/* a symbolic link's target (a sibling's name); NULL otherwise */
	struct provider *prov;	/* NULL for the root */
	int prov_root;		/* the provider's own directory: lists with dir == NULL */
	unsigned depth;		/* levels below the provider's own directory (its: 0) */
	uint32_t magic;		/* NODE_MAGIC while alive; past malloc's own words when freed */
	uint64_t refs;		/* the parent's, the kernel's lookups, listings, calls in flight */
	uint64_t lookups;	/* of those, the kernel's: what tree_forget may give back */
	uint64_t in_listings;	/* of those, the listings of its parent that list it */
	struct recblock *block; /* where rec's strings live; NULL: rec owns them */
	struct node *children;	/* by name */
	struct listing *listings; /* what readers were given, the current listing first */
	int listed;		  /* children hold a whole listing */
	int partial;		  /* children hold the first page only (page-through) */
	struct prov_page *first;  /* that page, kept so the whole listing need not ask again */
	int64_t first_at;	  /* clock_now() when it came */
	uint64_t gen;		  /* bumped when its entries change: its mtime's nanoseconds */
	struct node *all_prev, *all_next; /* every live node, attached or not: tree_free */
	int64_t list_expires;
	int64_t seed_expires; /* a child found by a name look-up is trusted until then */
	int loading;
	int waiting;  /* readers at the end of a partial listing, waiting for the next one */
	int rest_err; /* a fetch that had streamed some of its pages failed: its error, for
		       * the next reader at the end of its listings, not a fetch again; a new
		       * first page drops it (0: none) */
	int err_logged;
	struct neg *neg;
	size_t nneg;
	char *index; /* .index.jsonl as last built, or NULL */
	size_t index_len;
	uint64_t index_gen;   /* bumped when its bytes change: its mtime's nanoseconds */
	uint64_t index_of[2]; /* the gen and t->completed it was built from */
	UT_hash_handle hh;
};

/* A directory the log has named already. */
struct said {
	char *key;
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
	atomic_int quit;	 /* tree_quit: listings ask for no more pages */
	uint64_t completed; /* records complete() changed: an index built before may be stale */
	uint64_t reads;	    /* readdir calls so far: which listing was read last */
	struct said *depth_said; /* directories whose depth was logged, by provider and id */
	size_t ndepth_said;
};

/* One entry of a listing: the node and the name the reader is given. */
struct lentry {
	struct node *node; /* referenced by the listing */
	const char *name;  /* in the listing's names */
};

/* A listing of a directory as its readers are given it; it never changes. Readdir offsets
 * carry its generation, so a read that began on it ends on it. */
struct listing {
	struct listing *next; /* the directory's older listings */
	uint64_t gen;	      /* the directory's gen when it was installed */
	struct lentry *e;
	size_t n;
	char *names;
	int partial;	  /* the first pages only (page-through) */
	uint64_t from;	  /* the partial listing (its gen) this one keeps in front; 0: none */
	size_t dropped;	  /* entries of that partial listing gone from this one */
	uint64_t base;	  /* the first page (its gen) a stream of listings, this one of them,
			   * grew from by appending; 0: none (tree_stream.c) */
	int64_t used;	  /* clock_now() when last read */
	uint64_t used_at; /* t->reads when last read */
};

/* The strings of one page's records in one allocation, so that a refresh frees the last
 * listing's in few pieces (a heap of many small strings freed in between fragments). */
struct recblock {
	/* The nodes whose record points into it, and its packers': atomic, as the pager gives
	 * its own back without t->lock once nodes a stream made hold it too. */
	atomic_uint_fast64_t refs;
	size_t size;
	char data[];
};

/* A listing fetched, to be installed: its records, the block each one's strings live in
 * (of[i]; NULL: its own), and one reference on each of those blocks. */
struct fetched {
	struct prov_page all;
	struct recblock **of;
	struct recblock **blocks;
	size_t nblocks;
	size_t bytes; /* the blocks' sizes */
	int fetches;  /* more than 1: entries moved while it was paged, and it was paged again */
};

/* The files a node may serve besides its children, in inode-number order. */
extern const char *const tree_files[];

/* ---- tree_node.c ---- */

/* A node holding one reference (its parent's, once attached). NULL on failure. Lock held. */
struct node *node_new(struct tree *t, const char *name, struct provider *prov);
/* A new child of dir, one level deeper, as node_new. Lock held. */
struct node *node_new_child(struct tree *t, const struct node *dir, const char *name);
/* Leave out of pg, a listing or a look-up's candidates in dir, every directory that would
 * list children of its own when dir is TREE_MAX_DEPTH levels deep; logged once a
 * directory (by id, whatever node stands for it). of (NULL: none) holds the block of each
 * record's strings, kept in step. Lock held. */
void node_depth_trim(struct tree *t, const struct node *dir, struct prov_page *pg,
		     struct recblock **of);
/* Free what n owns, its listings without their references (tree_free); its children
 * table must be empty or cleared. */
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
/* n leaves its parent's children: its record leaves any block if n lives on, then the
 * parent's reference goes. Lock held. */
void node_orphan(struct tree *t, struct node *n);
/* The inode number of n itself. */
uint64_t node_ino(const struct tree *t, const struct node *n);
/* The node of inode ino and, in *file, which of its files (0: the node itself). */
struct node *node_of_ino(const struct tree *t, uint64_t ino, unsigned *file);
/* The node of ino, referenced while a call that may unlock is in flight: node_put it. */
struct node *node_get(struct tree *t, uint64_t ino, unsigned *file);
/* Give back node_get's reference. */
void node_put(struct tree *t, struct node *n);
/* Held beyond its parent's and its listings' references: by the kernel (or a call in
 * flight). Lock held. */
int node_held(const struct node *n);
/* n lists children: a container, a provider's directory or the root. */
int node_is_dir_container(const struct node *n);
/* The contents of file fname of a record, or NULL when it has no such file; *nl: a
 * newline ends it that the record does not hold. */
const char *node_record_file(const struct prov_record *rec, const char *fname, size_t *len,
			     int *nl);
/* The contents of n's file fname, as node_record_file. Lock held. */
const char *node_file(const struct node *n, const char *fname, size_t *len, int *nl);
/* Names that n itself serves (NULL-terminated): its children may not take them. */
void node_reserved(const struct node *n, const char *out[NODE_RESERVED_MAX]);
/* Replace n's record by rec (taken; its strings in block, or its own when block is NULL);
 * a changed file set is a changed directory. Lock held. */
void node_set_record(struct node *n, struct prov_record *rec, struct recblock *block);
/* Give n's record its own strings, out of its block. 0 or -ENOMEM. Lock held. */
int node_rec_own(struct node *n);
/* Make l a symbolic link to its sibling target, with target's id, web_url and times (its
 * own strings); the watch is told when the kernel held l pointing elsewhere. 0 or
 * -ENOMEM. Lock held. */
int node_set_link(struct tree *t, struct node *l, const struct node *target);
/* Attributes of file `file` of n (0: n itself), inode number included; -ENOENT when a
 * refresh took the file away. Lock held. */
int node_stat(const struct tree *t, const struct node *n, unsigned file, struct tree_stat *st);
/* Wait on t->cond for a change, at most TREE_POLL_MS while this thread can be cancelled;
 * -EINTR once its caller gave up (provider_cancelled), else 0. Lock held. */
int node_wait(struct tree *t);
/* Wait until nobody is fetching n, then claim it: 0, or -EINTR when this thread's caller
 * gave up meanwhile (n not claimed). Called and returns with the lock held. */
int node_claim(struct tree *t, struct node *n);
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

/* The pages in without a gap, as pager_progress is told of them. */
struct pager_told {
	const struct prov_page *pages;	/* pages[0 .. n - 1], as they came (not de-duplicated) */
	struct recblock *const *blocks; /* the blocks their strings were packed into (NULL: none) */
	long n;
	int whole; /* they are the whole listing, every id once, as pager_listing would give it */
	int asked; /* every page of the listing was asked for: the rest are on the wire */
};

/* Told on the thread that called pager_listing, with no lock held, of every length the
 * pages in without a gap grow to, up to the page that ends the listing, in turn, on the
 * first attempt only; what it is told stays as it is while it runs. fn returns 1 when it
 * took a whole listing: pager_listing then gives out empty. */
struct pager_progress {
	int (*fn)(void *ctx, const struct pager_told *told);
	void *ctx;
};

/* The whole listing of dir (NULL: the provider's root) into out, one record per id, each
 * page's strings packed into a block as it comes (off the reader's path), with up to
 * parallel requests in flight; fetched again (bounded) while entries moved; within the
 * bounds of docs/design.md §4, else -EIO; no page is asked for once *quit is set. *first,
 * when set, is page 1, taken. progress, when not NULL, is told of the pages as they come.
 * 0 or -errno; the caller fetched_frees out either way. */
int pager_listing(struct provider *p, const struct prov_record *dir, int parallel,
		  const atomic_int *quit, struct prov_page **first, struct fetched *out,
		  const struct pager_progress *progress);
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

/* Give n the record rec (taken; its strings in block, or its own when block is NULL),
 * telling the watch what went stale of what the kernel holds; a reused child keeps what
 * complete() fetched. Lock held. */
void node_take_record(struct tree *t, struct node *n, struct prov_record *rec,
		      struct recblock *block);
/* Make dir's listing fresh. A failed refresh keeps serving the old listing. */
int tree_load(struct tree *t, struct node *dir);
/* Fetch dir's whole listing now and install it; dir claimed, the lock held (released while
 * fetching). 0, or -errno with nothing installed. */
int tree_load_claimed(struct tree *t, struct node *dir);
/* A reader at the end of a partial listing whose own call fetches the rest: told, with no
 * lock held, each time a longer partial listing continues the one it is on. */
struct tree_grown {
	void (*fn)(void *ctx);
	void *ctx;
};

/* The rest of dir for a reader at the end of partial listing `gen`: a listing that
 * continues it, waited for while another call fetches one, else fetched (with the first
 * page already there whatever its age, partial listings installed as the pages come, the
 * whole one last). 0 or -errno. */
int tree_load_rest(struct tree *t, struct node *dir, uint64_t gen, const struct tree_grown *grown);
/* Page-through: dir's first page only, unless a fresh listing is there already. */
int tree_load_first(struct tree *t, struct node *dir);

/* ---- tree_stream.c ---- */

struct stream_id;

/* A whole listing being fetched for a directory whose first page readers were given: the
 * pages that come are appended to longer partial listings meanwhile. */
struct stream {
	struct tree *t;
	struct node *dir;
	const struct tree_grown *grown; /* the claimer's own reader, or NULL */
	struct stream_id *ids;		/* the ids listed so far */
	size_t nids;
	long at;       /* pages listed so far */
	uint64_t last; /* the listing (its gen) the next one continues */
	uint64_t base; /* the first page (its gen) they all grow from */
	int stopped;   /* the whole listing will be installed as any other is */
	int steps;
	int finished; /* the last page made the listing whole */
};

/* Begin st for dir, claimed and about to be fetched; first_reused: page 1 of the fetch is
 * the first page its readers were given. Lock held. */
void stream_init(struct stream *st, struct tree *t, struct node *dir,
		 const struct tree_grown *grown, int first_reused);
/* pager_progress: more pages came; a longer partial listing when one is worth it, the
 * listing made whole when they are the whole of it (then 1). No lock held. */
int stream_pages(void *ctx, const struct pager_told *told);
/* The whole listing came: 1 when it is installed, by the last page or by appending what st
 * did not list yet, 0 when it must be installed whole. Lock held. */
int stream_finish(struct stream *st, struct fetched *all);
/* Free what st holds. */
void stream_free(struct stream *st);

/* ---- tree_index.c ---- */

/* Is name the .index.jsonl of n (a directory that lists children, the root excepted)? */
int index_is(struct tree *t, const struct node *n, const char *name);
/* Look up dir's index: a whole, fresh listing first (what listing dir costs, nothing when
 * it is there), then its attributes into *st; the kernel's lookup of it is held. 0 or
 * -errno. */
int index_lookup(struct tree *t, struct node *dir, struct tree_stat *st);
/* Attributes of dir's index, built again from the listing held when that moved, with the
 * lock released meanwhile: the caller holds a reference on dir. 0 or -ENOMEM. Lock held. */
int index_stat(struct tree *t, struct node *dir, struct tree_stat *st);
/* Up to size bytes of dir's index from off, as the kernel was last told of it. Lock held. */
int index_read(const struct node *dir, char *buf, size_t size, off_t off);
/* dir holds a new listing: the kernel's copy of its index, if any, is stale. Lock held. */
void index_listing_changed(const struct tree *t, const struct node *dir);
/* SIGHUP: the kernel looks dir's index up again. Lock held. */
void index_flush(const struct tree *t, const struct node *dir);
/* ---- tree_listing.c ---- */

/* Readdir offsets: ".", "..", the three files, then the entries of a listing. */
#define LISTING_SLOT_CHILDREN 5

/* An empty listing with room for n entries and names_size bytes of names. NULL on failure. */
struct listing *listing_new(size_t n, size_t names_size);
/* Append child c of the listing under name (copied); the listing references c. Lock held. */
void listing_add(struct listing *l, struct node *c, const char *name);
/* Make l dir's current listing as generation gen; drop older ones no reader needs. Lock held. */
void listing_push(struct tree *t, struct node *dir, struct listing *l, uint64_t gen);
/* dir now serves l, a whole listing or a partial one (its first pages), until dir_ttl
 * from now; what the kernel remembers missing that l has, and dir's index, go. Lock held. */
void listing_set(struct tree *t, struct node *dir, struct listing *l, int whole);
/* dir's listing of generation gen (as an offset carries it), marked read; NULL when it is
 * not kept. Lock held. */
struct listing *listing_find(struct tree *t, struct node *dir, uint64_t gen);
/* dir's newest listing that continues its partial listing of generation gen (a longer
 * partial one or the whole, itself or through others a stream may have dropped since), or
 * NULL. Lock held. */
struct listing *listing_from(const struct node *dir, uint64_t gen);
/* Drop dir's superseded listings unread for a while, and the least recently read beyond
 * a few. Lock held. */
void listing_prune(struct tree *t, struct node *dir);
/* Drop all of dir's listings and their references (dir is being freed). Lock held. */
void listing_drop_all(struct tree *t, struct node *dir);
/* Free l's memory only, its references untouched (tree_free frees every node anyway). */
void listing_free(struct listing *l);
/* The readdir offset of position pos in a listing of generation gen (0: none). */
off_t listing_off(uint64_t gen, size_t pos);
/* The generation (masked as listing_off keeps it) and the position an offset carries. */
uint64_t listing_off_gen(off_t off);
size_t listing_off_pos(off_t off);
/* Move the strings of pg's records into one new block (one reference, its packer's).
 * 0, or -ENOMEM with pg untouched and *out NULL. */
int recblock_pack(struct prov_page *pg, struct recblock **out);
/* One more reference to b (a node's record in it, or a packer's); any thread. */
void recblock_ref(struct recblock *b);
/* One reference to b given back; the last frees it; any thread. */
void recblock_unref(struct recblock *b);
/* The packer is done with b: the records of pg it filled and nobody took are cleared (their
 * strings are b's), and its reference goes. */
void recblock_done(struct recblock *b, struct prov_page *pg);
/* pg, whose records are all in b, as a fetched listing: f takes the records and b's
 * reference. 0 or -ENOMEM (nothing taken). */
int fetched_from_page(struct fetched *f, struct prov_page *pg, struct recblock *b);
/* Free f: the records left in blocks cleared, the others freed, the blocks' references
 * given back. */
void fetched_free(struct fetched *f);

/* ---- tree_lookup.c ---- */

/* Child name of dir into *out, referenced (the caller's to keep or unref); fetches what it
 * must. 0, -ENOENT or -errno. */
int tree_child_get(struct tree *t, struct node *dir, const char *name, struct node **out);

#endif
