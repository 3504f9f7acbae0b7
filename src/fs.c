/* fs: FUSE requests turned into tree calls. Read-only: everything that would change
 * the tree answers EROFS. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs.h"

static struct fs *fs_get(void)
{
	return fuse_get_context()->private_data;
}

static void fs_stat(const struct fs *fs, const struct tree_stat *ts, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = ts->is_dir ? S_IFDIR | 0555 : S_IFREG | 0444;
	st->st_nlink = ts->is_dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)ts->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((ts->size + 511) / 512);
	st->st_mtim.tv_sec = ts->mtime;
	st->st_atim.tv_sec = ts->mtime;
	st->st_ctim.tv_sec = ts->ctime;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct fs *fs = fs_get();

	(void)conn;
	cfg->entry_timeout = fs->attr_ttl;
	cfg->attr_timeout = fs->attr_ttl;
	cfg->negative_timeout = fs->neg_ttl;
	/* Contents change only on refresh, which changes size or mtime: keep pages until then. */
	cfg->auto_cache = 1;
	return fs;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct tree_stat ts;
	int r;

	(void)fi;
	r = tree_getattr(fs->tree, path, &ts);
	if (r == 0)
		fs_stat(fs, &ts, st);
	return r;
}

struct fs_fill {
	const struct fs *fs;
	void *buf;
	fuse_fill_dir_t filler;
	enum fuse_fill_dir_flags flags;
};

static int fs_fill_one(void *ctx, const char *name, const struct tree_stat *ts, off_t next)
{
	struct fs_fill *f = ctx;
	struct stat st;

	fs_stat(f->fs, ts, &st);
	return f->filler(f->buf, name, &st, next, f->flags);
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct fs_fill f = {.fs = fs_get(), .buf = buf, .filler = filler};

	(void)fi;
	/* Attributes ride along with every entry, so `ls -l` costs no further request. */
	if (flags & FUSE_READDIR_PLUS)
		f.flags = FUSE_FILL_DIR_PLUS;
	return tree_readdir(f.fs->tree, path, off, fs_fill_one, &f);
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	int keep, r = tree_opendir(fs_get()->tree, path, &keep);

	/* The kernel keeps what readdir gave; reused only while the listing is unchanged. */
	fi->cache_readdir = 1;
	fi->keep_cache = keep;
	return r;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct tree_stat ts;
	int r;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	r = tree_getattr(fs_get()->tree, path, &ts);
	if (r < 0)
		return r;
	if (ts.is_dir)
		return -EISDIR;
	fi->keep_cache = 1;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	return tree_read(fs_get()->tree, path, buf, size, off);
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	memset(sv, 0, sizeof(*sv));
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_namemax = 255;
	sv->f_flag = ST_RDONLY | ST_NOSUID;
	return 0;
}

static int fs_access(const char *path, int mask)
{
	struct tree_stat ts;
	int r = tree_getattr(fs_get()->tree, path, &ts);

	if (r < 0)
		return r;
	return (mask & W_OK) ? -EROFS : 0;
}

static int fs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	return tree_getxattr(fs_get()->tree, path, name, value, size);
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	return tree_listxattr(fs_get()->tree, path, list, size);
}

static int fs_rofs_path(const char *path, mode_t mode)
{
	(void)path, (void)mode;
	return -EROFS;
}

static int fs_rofs_one(const char *path)
{
	(void)path;
	return -EROFS;
}

static int fs_rofs_two(const char *from, const char *to)
{
	(void)from, (void)to;
	return -EROFS;
}

static int fs_rofs_rename(const char *from, const char *to, unsigned int flags)
{
	(void)flags;
	return fs_rofs_two(from, to);
}

static int fs_rofs_mknod(const char *path, mode_t mode, dev_t dev)
{
	(void)dev;
	return fs_rofs_path(path, mode);
}

static int fs_rofs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)fi;
	return fs_rofs_path(path, mode);
}

static int fs_rofs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	(void)uid, (void)gid, (void)fi;
	return fs_rofs_one(path);
}

static int fs_rofs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)size, (void)fi;
	return fs_rofs_one(path);
}

static int fs_rofs_write(const char *path, const char *buf, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	(void)buf, (void)size, (void)off, (void)fi;
	return fs_rofs_one(path);
}

static int fs_rofs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)fi;
	return fs_rofs_path(path, mode);
}

static int fs_rofs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)tv, (void)fi;
	return fs_rofs_one(path);
}

static int fs_rofs_setxattr(const char *path, const char *name, const char *value, size_t size,
			    int flags)
{
	(void)name, (void)value, (void)size, (void)flags;
	return fs_rofs_one(path);
}

static int fs_rofs_removexattr(const char *path, const char *name)
{
	(void)name;
	return fs_rofs_one(path);
}

static const struct fuse_operations fs_ops = {
    .init = fs_init,
    .getattr = fs_getattr,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .open = fs_open,
    .read = fs_read,
    .statfs = fs_statfs,
    .access = fs_access,
    .mknod = fs_rofs_mknod,
    .mkdir = fs_rofs_path,
    .unlink = fs_rofs_one,
    .rmdir = fs_rofs_one,
    .symlink = fs_rofs_two,
    .rename = fs_rofs_rename,
    .link = fs_rofs_two,
    .chmod = fs_rofs_chmod,
    .chown = fs_rofs_chown,
    .truncate = fs_rofs_truncate,
    .write = fs_rofs_write,
    .create = fs_rofs_create,
    .utimens = fs_rofs_utimens,
    .getxattr = fs_getxattr,
    .listxattr = fs_listxattr,
    .setxattr = fs_rofs_setxattr,
    .removexattr = fs_rofs_removexattr,
};

const struct fuse_operations *fs_operations(void)
{
	return &fs_ops;
}
