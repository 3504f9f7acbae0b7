/* credfile: credentials from where the vendors' own tools keep them. */
#ifndef CODESRCFS_CREDFILE_H
#define CODESRCFS_CREDFILE_H

#include <stddef.h>

#include <sys/stat.h>

#include "config.h"

/* Fill pai and volc credentials that the file and environment left out, from
 * ~/.aliyun/config.json (profile, or its current one when NULL) and ~/.volc/config.
 * 0, or -EINVAL/-errno with one line in err naming the file and the problem. */
int credfile_fill(struct config *c, const char *profile, char *err, size_t errlen);

/* 0 when the file path (stat st) belongs to the user or root and no one else can write it;
 * else -EINVAL and one line in err naming the file and what to fix. */
int credfile_trusted(const char *path, const struct stat *st, char *err, size_t errlen);

#endif
