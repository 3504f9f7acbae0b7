/* credfile: credentials from where the vendors' own tools keep them. */
#ifndef CODESRCFS_CREDFILE_H
#define CODESRCFS_CREDFILE_H

#include <stddef.h>

#include "config.h"

/* Fill pai and volc credentials that the file and environment left out, from
 * ~/.aliyun/config.json (profile, or its current one when NULL) and ~/.volc/config.
 * 0, or -EINVAL/-errno with one line in err naming the file and the problem. */
int credfile_fill(struct config *c, const char *profile, char *err, size_t errlen);

#endif
