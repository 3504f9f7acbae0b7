/* fs: the FUSE operations over a tree; knows nothing of clouds, HTTP or JSON. */
#ifndef CODESRCFS_FS_H
#define CODESRCFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include "tree.h"

struct fs {
	struct tree *tree;
	double attr_ttl; /* kernel entry and attribute timeout */
	double neg_ttl;	 /* kernel negative-entry timeout */
	uid_t uid;
	gid_t gid;
};

/* The operations table; fuse_new's private_data must be a struct fs. */
const struct fuse_operations *fs_operations(void);

#endif
