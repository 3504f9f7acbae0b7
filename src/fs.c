/* fs: FUSE low-level requests turned into tree calls.
 *
 * The low-level API, because libfuse's high-level one (3.14, Debian 12's) drops keep_cache
 * and cache_readdir on their way from opendir to the kernel, so the kernel could never
 * keep a directory; it also spares every request a walk of its path. Read-only: the
 * mount is "ro", so the kernel refuses every change (EROFS) before it reaches us. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs.h"
#include "log.h"

#define FS_PUSH_QUEUE 4096	/* files waiting to be pushed; past that, read as usual */
#define FS_PUSH_MAX   (1 << 20) /* larger files are left to be read */
#define FS_PUSH_DELAY 1000000L	/* ns a push waits: the kernel makes the inode after our reply */
#define FS_PUSH_TRIES 8 /* the n-th try waits 2^(n-1) delays: the reader may wait for a core */

/* Files whose bytes go to the kernel's page cache as soon as the kernel knows them, so
 * that their first read needs no round trip (fuse_lowlevel_notify_store, from a thread of
 * its own: a notification never comes from a request's thread). */
struct fs_push {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct {
		uint64_t ino; /* holds a reference (tree_hold) */
		struct timespec due;
		int tries;
	} ring[FS_PUSH_QUEUE];
	size_t head, n;
	int stop;
	pthread_t thread;
};

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Every batch of a listing as readdirplus, not only the first: the kernel's cache of a
 * directory answers later reads with names alone, and what reads this mount (ls -l, find,
 * cat of every url) wants every entry's attributes, which a plus entry carries at no cost. */
static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

static void fs_stat(const struct fs *fs, const struct tree_stat *ts, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ts->ino;
	st->st_mode = ts->is_dir ? S_IFDIR | 0555 : S_IFREG | 0444;
	st->st_nlink = ts->is_dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)ts->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((ts->size + 511) / 512);
	st->st_mtim.tv_sec = ts->mtime;
	st->st_mtim.tv_nsec = ts->mtime_ns;
	st->st_atim.tv_sec = ts->mtime;
	st->st_ctim.tv_sec = ts->ctime;
}

static void fs_entry(const struct fs *fs, const struct tree_stat *ts, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ts->ino;
	e->attr_timeout = ts->is_dir ? fs->dir_attr_ttl : fs->attr_ttl;
	e->entry_timeout = fs->attr_ttl;
	fs_stat(fs, ts, &e->attr);
}

/* Queue ino (referenced: the queue takes that reference) for its tries-th push. 0, or
 * -ENOSPC when the queue is full or stopping (the reference is then still the caller's). */
static int fs_push_queue(struct fs_push *p, uint64_t ino, int tries)
{
	size_t k;

	pthread_mutex_lock(&p->lock);
	if (p->n == FS_PUSH_QUEUE || p->stop) {
		pthread_mutex_unlock(&p->lock);
		return -ENOSPC;
	}
	k = (p->head + p->n++) % FS_PUSH_QUEUE;
	p->ring[k].ino = ino;
	p->ring[k].tries = tries;
	clock_gettime(CLOCK_MONOTONIC, &p->ring[k].due);
	p->ring[k].due.tv_nsec += FS_PUSH_DELAY << (tries - 1);
	p->ring[k].due.tv_sec += p->ring[k].due.tv_nsec / 1000000000L;
	p->ring[k].due.tv_nsec %= 1000000000L;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Queue file ino, which the kernel has just learned, to be pushed. */
static void fs_push(struct fs *fs, uint64_t ino)
{
	if (!fs->push)
		return;
	tree_hold(fs->tree, ino);
	if (fs_push_queue(fs->push, ino, 1) < 0)
		tree_forget(fs->tree, ino, 1);
}

/* Store the bytes of file ino in the kernel's page cache. The kernel marks the page
 * up to date only when they end at the size it knows, so a push that raced a refresh
 * leaves the page to a read. -ENOENT when the kernel has no such inode (yet, or any
 * more). */
static int fs_push_one(struct fs *fs, uint64_t ino)
{
	struct tree_stat ts;
	struct fuse_bufvec bv;
	char *buf;
	int n;

	if (tree_getattr(fs->tree, ino, &ts) < 0 || ts.is_dir || ts.size > FS_PUSH_MAX)
		return 0;
	buf = malloc(ts.size ? ts.size : 1);
	n = buf ? tree_read(fs->tree, ino, buf, ts.size, 0) : -ENOMEM;
	if (n >= 0) {
		bv = (struct fuse_bufvec)FUSE_BUFVEC_INIT((size_t)n);
		bv.buf[0].mem = buf;
		n = fuse_lowlevel_notify_store(fs->se, ino, 0, &bv, 0);
	}
	free(buf);
	return n < 0 ? n : 0;
}

static void *fs_push_run(void *arg)
{
	struct fs *fs = arg;
	struct fs_push *p = fs->push;
	uint64_t ino;
	int tries, r;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->n && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		/* Not before it is due: a signal of a newer entry only shortens the wait. */
		if (pthread_cond_timedwait(&p->cond, &p->lock, &p->ring[p->head].due) == 0)
			continue;
		ino = p->ring[p->head].ino;
		tries = p->ring[p->head].tries;
		p->head = (p->head + 1) % FS_PUSH_QUEUE;
		p->n--;
		pthread_mutex_unlock(&p->lock);
		/* Refused: the kernel may not have made the inode yet; try again, later. */
		r = fs_push_one(fs, ino);
		if (r == -ENOENT && tries < FS_PUSH_TRIES && fs_push_queue(p, ino, tries + 1) == 0)
			goto next;
		if (r < 0)
			log_msg(LOG_DEBUG, "push of inode %llx after %d tries: %s",
				(unsigned long long)ino, tries, strerror(-r));
		tree_forget(fs->tree, ino, 1);
	next:
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int fs_push_start(struct fs *fs)
{
	struct fs_push *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the clock of the entries' due times */
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	fs->push = p;
	if (pthread_create(&p->thread, NULL, fs_push_run, fs) == 0)
		return 0;
	fs->push = NULL;
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return -EAGAIN;
}

void fs_push_stop(struct fs *fs)
{
	struct fs_push *p = fs->push;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	fs->push = NULL;
	for (; p->n; p->n--, p->head = (p->head + 1) % FS_PUSH_QUEUE)
		tree_forget(fs->tree, p->ring[p->head].ino, 1);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct tree_stat ts;
	int r = tree_lookup(fs->tree, parent, name, &ts);

	if (r == -ENOENT) {
		/* Inode 0 with a timeout: the kernel itself remembers the miss for neg_ttl. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->neg_ttl;
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fs_entry(fs, &ts, &e);
	if (fuse_reply_entry(req, &e) != 0)
		tree_forget(fs->tree, ts.ino, 1); /* interrupted: the kernel never took it */
	else if (!ts.is_dir)
		fs_push(fs, ts.ino);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	tree_forget(fs_of(req)->tree, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		tree_forget(fs_of(req)->tree, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct tree_stat ts;
	struct stat st;
	int r = tree_getattr(fs->tree, ino, &ts);

	(void)fi;
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fs_stat(fs, &ts, &st);
	fuse_reply_attr(req, &st, ts.is_dir ? fs->dir_attr_ttl : fs->attr_ttl);
}

/* ENOSYS puts the kernel in no-opendir mode: no open or close of a directory reaches the
 * daemon, and the kernel keeps what readdir gave. At offset 0 it refreshes the
 * directory's attributes once they expire (dir_attr_ttl) and reads it again when the
 * mtime moved, which the tree makes it do whenever the entries changed or are due to. */
static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, ENOSYS);
}

/* A lookup a readdirplus entry holds. */
struct fs_held {
	uint64_t ino;
	int is_file;
};

/* A readdir answer being filled, and the lookups its readdirplus entries hold. */
struct fs_dirbuf {
	fuse_req_t req;
	struct fs *fs;
	int plus;
	char *buf;
	size_t size, used;
	struct fs_held *held;
	size_t nheld, cap;
};

static int fs_is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/* tree_fill_fn: one entry into the answer; non-zero when it does not fit. */
static int fs_dirbuf_add(void *ctx, const char *name, const struct tree_stat *ts, off_t next)
{
	struct fs_dirbuf *d = ctx;
	size_t room = d->size - d->used, len;
	struct fuse_entry_param e;

	if (!d->plus) {
		fs_stat(d->fs, ts, &e.attr);
		len = fuse_add_direntry(d->req, d->buf + d->used, room, name, &e.attr, next);
	} else {
		if (d->nheld == d->cap) {
			size_t cap = d->cap ? 2 * d->cap : 64;
			struct fs_held *held = realloc(d->held, cap * sizeof(*held));

			if (!held)
				return 1; /* a shorter answer; the reader comes back for the rest */
			d->held = held;
			d->cap = cap;
		}
		fs_entry(d->fs, ts, &e);
		len = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &e, next);
	}
	if (len > room)
		return 1;
	d->used += len;
	if (d->plus && !fs_is_dot(name)) /* the kernel counts no lookup of "." and ".." */
		d->held[d->nheld++] = (struct fs_held){.ino = ts->ino, .is_file = !ts->is_dir};
	return 0;
}

static void fs_readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs_dirbuf d = {.req = req, .fs = fs_of(req), .plus = plus, .size = size};
	int r = -ENOMEM;

	d.buf = malloc(size ? size : 1);
	if (d.buf)
		r = tree_readdir(d.fs->tree, ino, off, plus, fs_dirbuf_add, &d);
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else if (fuse_reply_buf(req, d.buf, d.used) == 0) {
		for (size_t i = 0; i < d.nheld; i++)
			if (d.held[i].is_file)
				fs_push(d.fs, d.held[i].ino);
		d.nheld = 0; /* the kernel holds those lookups now */
	}
	for (size_t i = 0; i < d.nheld; i++)
		tree_forget(d.fs->tree, d.held[i].ino, 1);
	free(d.held);
	free(d.buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	fs_readdir_any(req, ino, size, off, 0);
}

/* Attributes ride along with every entry, so `ls -l` costs no further request. */
static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	fs_readdir_any(req, ino, size, off, 1);
}

/* ENOSYS is no failure here: it puts the kernel in no-open mode, where no later open or
 * close of a file reaches the daemon and file pages are kept until the file's size or
 * mtime changes (auto_inval_data). */
static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	int r = buf ? tree_read(fs_of(req)->tree, ino, buf, size, off) : -ENOMEM;

	(void)fi;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY | ST_NOSUID;
	fuse_reply_statfs(req, &sv);
}

/* getxattr(2) and listxattr(2) answers: size 0 asks for the length only. */
static void fs_reply_xattr(fuse_req_t req, int r, const char *buf, size_t size)
{
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	int r = size && !buf ? -ENOMEM : tree_getxattr(fs_of(req)->tree, ino, name, buf, size);

	fs_reply_xattr(req, r, buf, size);
	free(buf);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	int r = size && !buf ? -ENOMEM : tree_listxattr(fs_of(req)->tree, ino, buf, size);

	fs_reply_xattr(req, r, buf, size);
	free(buf);
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .readdirplus = fs_readdirplus,
    .open = fs_open,
    .read = fs_read,
    .statfs = fs_statfs,
    .getxattr = fs_getxattr,
    .listxattr = fs_listxattr,
};

void fs_invalidate(void *fs, uint64_t ino)
{
	struct fs *f = fs;

	/* Attributes only (offset < 0): the next read of the directory asks for them. */
	if (f->se)
		fuse_lowlevel_notify_inval_inode(f->se, ino, -1, 0);
}

const struct fuse_lowlevel_ops *fs_operations(void)
{
	return &fs_ops;
}
