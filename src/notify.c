/* notify: the kernel told, unasked, what it may keep and what it must drop.
 *
 * File bytes go to the page cache (fuse_lowlevel_notify_store). The kernel makes a file's
 * inode only after it has our reply to the look-up or readdirplus that named it, so a push
 * waits a moment and, refused, tries again later. It marks a pushed page up to date only
 * when its bytes end at the size it knows, so a push that raced a refresh leaves the page
 * to an ordinary read. Each queued push holds a reference on its node, so a forget
 * meanwhile frees nothing in use.
 *
 * Stale copies, as the tree reports them, are sent first and in order: an entry dropped
 * (gone from the cloud) or expired (to be looked up again), an inode's attributes and pages
 * dropped. They hold no reference: an inode number that no longer means what it meant
 * costs the kernel at most one more request. */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "notify.h"

#define PUSH_QUEUE     4096	 /* files waiting; past that, a file is read as usual */
#define PUSH_MAX       (1 << 20) /* larger files are left to be read */
#define PUSH_DELAY     1000000L	 /* ns before the first try */
#define PUSH_TRIES     8    /* the n-th try waits 2^(n-1) delays: the reader may wait for a core */
#define NOTIFY_SYNC_MS 2000 /* notify_sync waits no longer: the kernel may be slow to take one */

enum stale_kind { STALE_DROP, STALE_EXPIRE, STALE_INODE };

struct stale {
	struct stale *next;
	uint64_t ino; /* the directory of an entry, or the inode */
	enum stale_kind kind;
	char name[]; /* an entry's */
};

struct notify {
	struct fuse_session *se;
	struct tree *tree;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC, the clock of the due times */
	struct {
		uint64_t ino;
		struct timespec due;
		int tries;
	} ring[PUSH_QUEUE];
	size_t head, n;
	struct stale *stale, **stale_tail; /* unbounded: each one matters */
	uint64_t stale_queued, stale_sent; /* counts, for notify_sync */
	pthread_cond_t sent;		   /* stale_sent moved */
	int stop;
	pthread_t thread;
};

/* Queue ino (referenced: the queue takes that reference) for its tries-th try. 0, or
 * -ENOSPC when the queue is full or stopping (the reference is then still the caller's). */
static int notify_queue_file(struct notify *n, uint64_t ino, int tries)
{
	size_t k;

	pthread_mutex_lock(&n->lock);
	if (n->n == PUSH_QUEUE || n->stop) {
		pthread_mutex_unlock(&n->lock);
		return -ENOSPC;
	}
	k = (n->head + n->n++) % PUSH_QUEUE;
	n->ring[k].ino = ino;
	n->ring[k].tries = tries;
	clock_gettime(CLOCK_MONOTONIC, &n->ring[k].due);
	n->ring[k].due.tv_nsec += PUSH_DELAY << (tries - 1);
	n->ring[k].due.tv_sec += n->ring[k].due.tv_nsec / 1000000000L;
	n->ring[k].due.tv_nsec %= 1000000000L;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	return 0;
}

void notify_file(struct notify *n, uint64_t ino)
{
	if (!n)
		return;
	tree_hold(n->tree, ino);
	if (notify_queue_file(n, ino, 1) < 0)
		tree_forget(n->tree, ino, 1);
}

/* Store the bytes of file ino in the kernel's page cache. -ENOENT when the kernel has no
 * such inode (yet, or any more). */
static int notify_push_one(struct notify *n, uint64_t ino)
{
	struct tree_stat ts;
	struct fuse_bufvec bv;
	char *buf;
	int r;

	if (tree_getattr(n->tree, ino, &ts) < 0 || ts.is_dir || ts.size > PUSH_MAX)
		return 0;
	buf = malloc(ts.size ? ts.size : 1);
	r = buf ? tree_read(n->tree, ino, buf, ts.size, 0) : -ENOMEM;
	if (r >= 0) {
		bv = (struct fuse_bufvec)FUSE_BUFVEC_INIT((size_t)r);
		bv.buf[0].mem = buf;
		r = fuse_lowlevel_notify_store(n->se, ino, 0, &bv, 0);
	}
	free(buf);
	return r < 0 ? r : 0;
}

/* The first queued push, the lock released meanwhile: tried, queued again, or let go. */
static void notify_push_next(struct notify *n)
{
	uint64_t ino = n->ring[n->head].ino;
	int r, tries = n->ring[n->head].tries;

	n->head = (n->head + 1) % PUSH_QUEUE;
	n->n--;
	pthread_mutex_unlock(&n->lock);
	r = notify_push_one(n, ino);
	if (r == -ENOENT && tries < PUSH_TRIES && notify_queue_file(n, ino, tries + 1) == 0)
		goto out;
	if (r < 0)
		log_msg(LOG_DEBUG, "push of inode %llx after %d tries: %s", (unsigned long long)ino,
			tries, strerror(-r));
	tree_forget(n->tree, ino, 1);
out:
	pthread_mutex_lock(&n->lock);
}

static void notify_add_stale(struct notify *n, uint64_t ino, enum stale_kind kind, const char *name)
{
	size_t len = name ? strlen(name) : 0;
	struct stale *s = malloc(sizeof(*s) + len + 1);

	if (!s) {
		log_msg(LOG_WARNING, "out of memory: the kernel may keep a stale entry");
		return;
	}
	s->next = NULL;
	s->ino = ino;
	s->kind = kind;
	memcpy(s->name, name ? name : "", len + 1);
	pthread_mutex_lock(&n->lock);
	*n->stale_tail = s;
	n->stale_tail = &s->next;
	n->stale_queued++;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* tree_watch calls: queued, as they come with the tree's lock held. */
static void notify_entry(void *ctx, uint64_t dir, const char *name, int gone)
{
	notify_add_stale(ctx, dir, gone ? STALE_DROP : STALE_EXPIRE, name);
}

static void notify_inode(void *ctx, uint64_t ino)
{
	notify_add_stale(ctx, ino, STALE_INODE, NULL);
}

/* Send the first stale copy, the lock released meanwhile. The kernel answers ENOENT for
 * what it no longer holds, which is no failure. Before Linux 6.2 an expiry drops the entry,
 * which the next look-up then makes again. */
static void notify_stale_next(struct notify *n)
{
	struct stale *s = n->stale;
	enum fuse_expire_flags how = s->kind == STALE_EXPIRE ? FUSE_LL_EXPIRE_ONLY : 0;
	int r;

	n->stale = s->next;
	if (!n->stale)
		n->stale_tail = &n->stale;
	pthread_mutex_unlock(&n->lock);
	if (s->kind == STALE_INODE)
		r = fuse_lowlevel_notify_inval_inode(n->se, s->ino, 0, 0);
	else
		r = fuse_lowlevel_notify_expire_entry(n->se, s->ino, s->name, strlen(s->name), how);
	if (r < 0 && r != -ENOENT)
		log_msg(LOG_DEBUG, "telling the kernel of stale inode %llx '%s': %s",
			(unsigned long long)s->ino, s->name, strerror(-r));
	free(s);
	pthread_mutex_lock(&n->lock);
	n->stale_sent++;
	pthread_cond_broadcast(&n->sent);
}

static void *notify_run(void *arg)
{
	struct notify *n = arg;

	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		if (n->stale)
			notify_stale_next(n);
		else if (!n->n)
			pthread_cond_wait(&n->cond, &n->lock);
		/* Not before it is due: a newer entry's signal only ends this wait early. */
		else if (pthread_cond_timedwait(&n->cond, &n->lock, &n->ring[n->head].due) != 0)
			notify_push_next(n);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

struct notify *notify_start(struct fuse_session *se, struct tree *t)
{
	struct notify *n = calloc(1, sizeof(*n));
	pthread_condattr_t ca;

	if (!n)
		return NULL;
	n->se = se;
	n->tree = t;
	n->stale_tail = &n->stale;
	pthread_mutex_init(&n->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cond, &ca);
	pthread_cond_init(&n->sent, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&n->thread, NULL, notify_run, n) == 0) {
		tree_watch(t, &(struct tree_watch){
				  .entry = notify_entry, .inode = notify_inode, .ctx = n});
		return n;
	}
	pthread_cond_destroy(&n->cond);
	pthread_cond_destroy(&n->sent);
	pthread_mutex_destroy(&n->lock);
	free(n);
	return NULL;
}

void notify_sync(struct notify *n)
{
	struct timespec due;
	uint64_t want;

	if (!n)
		return;
	clock_gettime(CLOCK_MONOTONIC, &due);
	due.tv_nsec += NOTIFY_SYNC_MS * 1000000L;
	due.tv_sec += due.tv_nsec / 1000000000L;
	due.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&n->lock);
	want = n->stale_queued;
	while (n->stale_sent < want && !n->stop)
		if (pthread_cond_timedwait(&n->sent, &n->lock, &due) != 0)
			break;
	pthread_mutex_unlock(&n->lock);
}

void notify_stop(struct notify *n)
{
	struct stale *s;

	if (!n)
		return;
	tree_watch(n->tree, NULL); /* no call comes after this returns */
	pthread_mutex_lock(&n->lock);
	n->stop = 1;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	for (; n->n; n->n--, n->head = (n->head + 1) % PUSH_QUEUE)
		tree_forget(n->tree, n->ring[n->head].ino, 1);
	while ((s = n->stale)) {
		n->stale = s->next;
		free(s);
	}
	pthread_cond_destroy(&n->cond);
	pthread_cond_destroy(&n->sent);
	pthread_mutex_destroy(&n->lock);
	free(n);
}
