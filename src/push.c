/* push: file contents into the kernel's page cache (fuse_lowlevel_notify_store).
 *
 * The kernel makes a file's inode only after it has our reply to the look-up or readdirplus
 * that named it, so a push waits a moment and, refused, tries again later. It marks a
 * pushed page up to date only when its bytes end at the size it knows, so a push that
 * raced a refresh leaves the page to an ordinary read. Each queued inode holds a
 * reference on its node, so a forget meanwhile frees nothing in use. */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "push.h"

#define PUSH_QUEUE 4096	     /* files waiting; past that, a file is read as usual */
#define PUSH_MAX   (1 << 20) /* larger files are left to be read */
#define PUSH_DELAY 1000000L  /* ns before the first try */
#define PUSH_TRIES 8	     /* the n-th try waits 2^(n-1) delays: the reader may wait for a core */

struct push {
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
	int stop;
	pthread_t thread;
};

/* Queue ino (referenced: the queue takes that reference) for its tries-th try. 0, or
 * -ENOSPC when the queue is full or stopping (the reference is then still the caller's). */
static int push_queue(struct push *p, uint64_t ino, int tries)
{
	size_t k;

	pthread_mutex_lock(&p->lock);
	if (p->n == PUSH_QUEUE || p->stop) {
		pthread_mutex_unlock(&p->lock);
		return -ENOSPC;
	}
	k = (p->head + p->n++) % PUSH_QUEUE;
	p->ring[k].ino = ino;
	p->ring[k].tries = tries;
	clock_gettime(CLOCK_MONOTONIC, &p->ring[k].due);
	p->ring[k].due.tv_nsec += PUSH_DELAY << (tries - 1);
	p->ring[k].due.tv_sec += p->ring[k].due.tv_nsec / 1000000000L;
	p->ring[k].due.tv_nsec %= 1000000000L;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void push_file(struct push *p, uint64_t ino)
{
	if (!p)
		return;
	tree_hold(p->tree, ino);
	if (push_queue(p, ino, 1) < 0)
		tree_forget(p->tree, ino, 1);
}

/* Store the bytes of file ino in the kernel's page cache. -ENOENT when the kernel has no
 * such inode (yet, or any more). */
static int push_one(struct push *p, uint64_t ino)
{
	struct tree_stat ts;
	struct fuse_bufvec bv;
	char *buf;
	int n;

	if (tree_getattr(p->tree, ino, &ts) < 0 || ts.is_dir || ts.size > PUSH_MAX)
		return 0;
	buf = malloc(ts.size ? ts.size : 1);
	n = buf ? tree_read(p->tree, ino, buf, ts.size, 0) : -ENOMEM;
	if (n >= 0) {
		bv = (struct fuse_bufvec)FUSE_BUFVEC_INIT((size_t)n);
		bv.buf[0].mem = buf;
		n = fuse_lowlevel_notify_store(p->se, ino, 0, &bv, 0);
	}
	free(buf);
	return n < 0 ? n : 0;
}

/* One queued push, the lock released meanwhile: tried, queued again, or let go. */
static void push_next(struct push *p)
{
	uint64_t ino = p->ring[p->head].ino;
	int r, tries = p->ring[p->head].tries;

	p->head = (p->head + 1) % PUSH_QUEUE;
	p->n--;
	pthread_mutex_unlock(&p->lock);
	r = push_one(p, ino);
	if (r == -ENOENT && tries < PUSH_TRIES && push_queue(p, ino, tries + 1) == 0)
		goto out;
	if (r < 0)
		log_msg(LOG_DEBUG, "push of inode %llx after %d tries: %s", (unsigned long long)ino,
			tries, strerror(-r));
	tree_forget(p->tree, ino, 1);
out:
	pthread_mutex_lock(&p->lock);
}

static void *push_run(void *arg)
{
	struct push *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (!p->n)
			pthread_cond_wait(&p->cond, &p->lock);
		/* Not before it is due: a newer entry's signal only ends this wait early. */
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &p->ring[p->head].due) != 0)
			push_next(p);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct push *push_start(struct fuse_session *se, struct tree *t)
{
	struct push *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;

	if (!p)
		return NULL;
	p->se = se;
	p->tree = t;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->thread, NULL, push_run, p) == 0)
		return p;
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

void push_stop(struct push *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	for (; p->n; p->n--, p->head = (p->head + 1) % PUSH_QUEUE)
		tree_forget(p->tree, p->ring[p->head].ino, 1);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
