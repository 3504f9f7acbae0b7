/* fs: the FUSE low-level operations over a tree; knows nothing of clouds, HTTP or JSON. */
#ifndef CODESRCFS_FS_H
#define CODESRCFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "tree.h"

struct notify;
struct fs_answers;

/* The extended attribute whose read lists a directory again now and answers what changed
 * (codesrcfs --refresh). Never listed. */
#define FS_REFRESH_XATTR "user.codesrcfs.refresh"
/* The longest value the kernel passes back from getxattr (XATTR_SIZE_MAX). */
#define FS_XATTR_MAX 65536

struct fs {
	struct tree *tree;
	struct notify *notify;	    /* what the kernel is told unasked; NULL: nothing */
	struct fs_answers *answers; /* refreshes kept for their reader's second call (fs.c) */
	double attr_ttl;	    /* kernel entry and attribute timeout */
	double dir_attr_ttl;	    /* a directory's: no longer than a listing is trusted */
	double neg_ttl;		    /* kernel negative-entry timeout */
	uid_t uid;
	gid_t gid;
};

/* The operations table; fuse_session_new's userdata must be a struct fs. */
const struct fuse_lowlevel_ops *fs_operations(void);

#endif
