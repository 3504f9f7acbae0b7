/* fs: FUSE low-level requests turned into tree calls.
 *
 * The low-level API, because libfuse's high-level one (3.14, Debian 12's) drops keep_cache
 * and cache_readdir on their way from opendir to the kernel, so the kernel could never
 * keep a directory; it also spares every request a walk of its path. Read-only: the
 * mount is "ro", so the kernel refuses every change (EROFS) before it reaches us. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "clock.h"
#include "fs.h"
#include "notify.h"

#define FS_ANSWERS     16 /* refreshes kept at once for a second call; the oldest goes */
#define FS_ANSWER_KEEP 10 /* seconds one is kept */

/* A refresh's answer, kept for the reader that asked: getxattr(2) asks for the size first
 * (size 0), or comes back after ERANGE, and the directory is to be listed once per
 * refresh, not once per call. */
struct fs_answer {
	int used;
	pid_t pid; /* the reader's thread */
	uint64_t ino;
	char *text;
	size_t len;
	int64_t at;
};

struct fs_answers {
	pthread_mutex_t lock;
	struct fs_answer slot[FS_ANSWERS];
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
	struct fs *fs = userdata;

	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* A link's target is its sibling's name, fixed for the link's inode: the kernel may
	 * keep it, so a path through a name beside an id costs no readlink once walked. */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	fs->answers = calloc(1, sizeof(*fs->answers)); /* none: every call refreshes */
	if (fs->answers)
		pthread_mutex_init(&fs->answers->lock, NULL);
}

/* The mode of an entry: a directory, a symbolic link (a name beside an id) or a file. */
static mode_t fs_mode(const struct tree_stat *ts)
{
	if (ts->is_dir)
		return S_IFDIR | 0555;
	return ts->is_link ? S_IFLNK | 0777 : S_IFREG | 0444;
}

static void fs_destroy(void *userdata)
{
	struct fs *fs = userdata;

	if (!fs->answers)
		return;
	for (size_t i = 0; i < FS_ANSWERS; i++)
		free(fs->answers->slot[i].text);
	pthread_mutex_destroy(&fs->answers->lock);
	free(fs->answers);
	fs->answers = NULL;
}

/* The kernel sends INTERRUPT when the reader of a request got a signal (Ctrl-C, timeout,
 * even SIGKILL, which still waits for our answer); libfuse marks the request. */
static int fs_interrupted(void *req)
{
	return fuse_req_interrupted(req);
}

/* A request that may wait on the network gives up, with EINTR, once interrupted. End it
 * with fs_cancel_end before the reply, which frees req. */
static void fs_cancel_begin(fuse_req_t req)
{
	tree_thread_cancel(fs_interrupted, req);
}

static void fs_cancel_end(void)
{
	tree_thread_cancel(NULL, NULL);
}

static void fs_stat(const struct fs *fs, const struct tree_stat *ts, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ts->ino;
	st->st_mode = fs_mode(ts);
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
	e->attr_timeout = ts->is_dir || ts->of_listing ? fs->dir_attr_ttl : fs->attr_ttl;
	/* An index is looked up again when its listing may have moved. */
	e->entry_timeout = ts->of_listing ? fs->dir_attr_ttl : fs->attr_ttl;
	fs_stat(fs, ts, &e->attr);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct tree_stat ts;
	int r;

	fs_cancel_begin(req);
	r = tree_lookup(fs->tree, parent, name, &ts);
	fs_cancel_end();
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
	/* An index is not pushed: it is read once, by what looked it up. */
	if (fuse_reply_entry(req, &e) != 0)
		tree_forget(fs->tree, ts.ino, 1); /* interrupted: the kernel never took it */
	else if (!ts.is_dir && !ts.is_link && !ts.of_listing)
		notify_file(fs->notify, ts.ino);
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
	fuse_reply_attr(req, &st, ts.is_dir || ts.of_listing ? fs->dir_attr_ttl : fs->attr_ttl);
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
	pthread_mutex_t lock; /* answered, against the page threads asking fs_dir_interrupted */
	int answered;	      /* req was answered (and freed) */
	int r;		      /* the answer: an error, or 0 for buf */
	char *buf;
	size_t size, used;
	struct fs_held *held;
	size_t nheld, cap;
};

/* Room for one more held lookup. 0 or -ENOMEM. */
static int fs_held_room(struct fs_dirbuf *d)
{
	size_t cap = d->cap ? 2 * d->cap : 64;
	struct fs_held *held;

	if (d->nheld < d->cap)
		return 0;
	held = realloc(d->held, cap * sizeof(*held));
	if (!held)
		return -ENOMEM;
	d->held = held;
	d->cap = cap;
	return 0;
}

/* tree_fill_fn: one entry into the answer; non-zero when it does not fit. */
static int fs_dirbuf_add(void *ctx, const char *name, const struct tree_stat *ts, off_t next,
			 int holds)
{
	struct fs_dirbuf *d = ctx;
	size_t room = d->size - d->used, len;
	struct fuse_entry_param e;

	if (holds && fs_held_room(d) < 0)
		return 1; /* a shorter answer; the reader comes back for the rest */
	if (!d->plus) {
		fs_stat(d->fs, ts, &e.attr);
		len = fuse_add_direntry(d->req, d->buf + d->used, room, name, &e.attr, next);
	} else {
		fs_entry(d->fs, ts, &e);
		/* Node id 0: the name and inode number without a lookup for the kernel to
		 * count, which it would forget later; the tree holds none for this entry. */
		if (!holds)
			e.ino = 0;
		len = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &e, next);
	}
	if (len > room)
		return 1;
	d->used += len;
	if (holds)
		d->held[d->nheld++] =
		    (struct fs_held){.ino = ts->ino, .is_file = !ts->is_dir && !ts->is_link};
	return 0;
}

/* A readdir call may answer before it ends (tree_readdir_answer): from then on its request
 * is gone, and nothing cancels what the call still fetches for the next one. */
static int fs_dir_interrupted(void *ctx)
{
	struct fs_dirbuf *d = ctx;
	int r;

	pthread_mutex_lock(&d->lock);
	r = !d->answered && fuse_req_interrupted(d->req);
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* tree_answer_fn, and the answer of a call that did not answer early: d->r or the entries. */
static void fs_dir_answer(void *ctx)
{
	struct fs_dirbuf *d = ctx;

	pthread_mutex_lock(&d->lock);
	d->answered = 1;
	pthread_mutex_unlock(&d->lock);
	if (d->r < 0) {
		fuse_reply_err(d->req, -d->r);
	} else if (fuse_reply_buf(d->req, d->buf, d->used) == 0) {
		for (size_t i = 0; i < d->nheld; i++)
			if (d->held[i].is_file)
				notify_file(d->fs->notify, d->held[i].ino);
		d->nheld = 0; /* the kernel holds those lookups now */
	}
	for (size_t i = 0; i < d->nheld; i++)
		tree_forget(d->fs->tree, d->held[i].ino, 1);
	d->nheld = 0;
}

static void fs_readdir_any(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs_dirbuf d = {.req = req, .fs = fs_of(req), .plus = plus, .size = size};

	pthread_mutex_init(&d.lock, NULL);
	d.buf = malloc(size ? size : 1);
	d.r = d.buf ? 0 : -ENOMEM; /* what an early answer sends */
	tree_thread_cancel(fs_dir_interrupted, &d);
	if (d.buf)
		d.r = tree_readdir_answer(d.fs->tree, ino, off, plus, fs_dirbuf_add, fs_dir_answer,
					  &d);
	fs_cancel_end();
	if (!d.answered)
		fs_dir_answer(&d);
	pthread_mutex_destroy(&d.lock);
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

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[NAME_MAX + 1];
	int r = tree_readlink(fs_of(req)->tree, ino, target, sizeof(target));

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, target);
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

/* Move the answer kept for a's reader and directory into a: 1, or 0 when there is none.
 * Answers past FS_ANSWER_KEEP go. */
static int fs_answer_take(struct fs *fs, struct fs_answer *a)
{
	int64_t now = clock_now();
	int found = 0;

	if (!fs->answers)
		return 0;
	pthread_mutex_lock(&fs->answers->lock);
	for (size_t i = 0; i < FS_ANSWERS; i++) {
		struct fs_answer *k = &fs->answers->slot[i];

		if (k->used && !found && k->pid == a->pid && k->ino == a->ino) {
			*a = *k;
			found = 1;
		} else if (k->used && now - k->at < FS_ANSWER_KEEP) {
			continue;
		} else {
			free(k->text);
		}
		memset(k, 0, sizeof(*k));
	}
	pthread_mutex_unlock(&fs->answers->lock);
	return found;
}

/* Keep a (its text taken) for its reader's next call, in place of the oldest if need be. */
static void fs_answer_keep(struct fs *fs, struct fs_answer *a)
{
	struct fs_answer *k;

	if (!fs->answers) {
		free(a->text);
		return;
	}
	pthread_mutex_lock(&fs->answers->lock);
	k = &fs->answers->slot[0];
	for (size_t i = 0; i < FS_ANSWERS && k->used; i++)
		if (!fs->answers->slot[i].used || fs->answers->slot[i].at < k->at)
			k = &fs->answers->slot[i];
	free(k->text);
	*k = *a;
	k->used = 1;
	k->at = clock_now();
	pthread_mutex_unlock(&fs->answers->lock);
}

/* An answer longer than the kernel passes back keeps the lines that fit and says how many
 * more there are. */
static void fs_answer_fit(struct fs_answer *a)
{
	char note[64];
	size_t cut, more = 0;
	int n;

	if (a->len <= FS_XATTR_MAX)
		return;
	cut = FS_XATTR_MAX - sizeof(note);
	while (cut > 0 && a->text[cut - 1] != '\n')
		cut--;
	for (size_t i = cut; i < a->len; i++)
		more += a->text[i] == '\n';
	n = snprintf(note, sizeof(note), "... and %zu more\n", more);
	memcpy(a->text + cut, note, (size_t)n);
	a->len = cut + (size_t)n;
}

/* getxattr of FS_REFRESH_XATTR: list directory ino again now and answer what changed. The
 * kernel is told what went stale before the answer goes, so the reader's next ls sees the
 * new listing whatever the timeouts. */
static void fs_refresh(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fs_of(req);
	struct fs_answer a = {.used = 1, .pid = fuse_req_ctx(req)->pid, .ino = ino};
	size_t len;
	int r = 0;

	if (!fs_answer_take(fs, &a)) {
		fs_cancel_begin(req);
		r = tree_refresh(fs->tree, ino, &a.text, &a.len);
		fs_cancel_end();
		if (r == 0) {
			notify_sync(fs->notify);
			fs_answer_fit(&a);
		}
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
	} else if (size == 0 || a.len > size) {
		len = a.len;
		fs_answer_keep(fs, &a);
		if (size == 0)
			fuse_reply_xattr(req, len);
		else
			fuse_reply_err(req, ERANGE);
	} else {
		fuse_reply_buf(req, a.text, a.len);
		free(a.text);
	}
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf;
	int r;

	if (!strcmp(name, FS_REFRESH_XATTR)) {
		fs_refresh(req, ino, size);
		return;
	}
	buf = size ? malloc(size) : NULL;
	r = size && !buf ? -ENOMEM : tree_getxattr(fs_of(req)->tree, ino, name, buf, size);
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
    .destroy = fs_destroy,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .readdirplus = fs_readdirplus,
    .open = fs_open,
    .read = fs_read,
    .readlink = fs_readlink,
    .statfs = fs_statfs,
    .getxattr = fs_getxattr,
    .listxattr = fs_listxattr,
};

const struct fuse_lowlevel_ops *fs_operations(void)
{
	return &fs_ops;
}
