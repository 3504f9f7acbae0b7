/* fs: FUSE low-level requests turned into tree calls.
 *
 * The low-level API, because libfuse's high-level one (3.14, Debian 12's) drops keep_cache
 * and cache_readdir on their way from opendir to the kernel, so the kernel could never
 * keep a directory; it also spares every request a walk of its path. Read-only: the
 * mount is "ro", so the kernel refuses every change (EROFS) before it reaches us. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs.h"
#include "notify.h"

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
		len = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &e, next);
	}
	if (len > room)
		return 1;
	d->used += len;
	if (holds)
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
				notify_file(d.fs->notify, d.held[i].ino);
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

const struct fuse_lowlevel_ops *fs_operations(void)
{
	return &fs_ops;
}
