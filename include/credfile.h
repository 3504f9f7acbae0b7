/* credfile: credentials from where the vendors' own tools keep them; each function is a
 * cloud's prov_desc.credfile hook, called after the file and the environment. */
#ifndef CODESRCFS_CREDFILE_H
#define CODESRCFS_CREDFILE_H

#include <stddef.h>

#include <sys/stat.h>

#include "config.h"

/* The aliyun CLI's ~/.aliyun/config.json, profile `profile` (its current one when NULL),
 * for pc without a key; a profile asked for while pc has a key is an error. 0, or
 * -EINVAL/-errno with one line in err naming the file and the problem. */
int credfile_aliyun(struct prov_conf *pc, const char *profile, char *err, size_t errlen);
/* The Volcengine SDKs' ~/.volc/config for pc without a key; profile is not used. */
int credfile_volc(struct prov_conf *pc, const char *profile, char *err, size_t errlen);

/* 0 when the file path (stat st) belongs to the user or root and no one else can write it;
 * else -EINVAL and one line in err naming the file and what to fix. */
int credfile_trusted(const char *path, const struct stat *st, char *err, size_t errlen);

#endif
