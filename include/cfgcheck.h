/* cfgcheck: whether one configuration value holds, and the one line that says why not;
 * shared by every source of the configuration (config.h). A message names files, lines,
 * sections and keys but never prints a value. */
#ifndef CODESRCFS_CFGCHECK_H
#define CODESRCFS_CFGCHECK_H

#include <stddef.h>

#include "provider.h"

#define CFGCHECK_MAX_NAME 32 /* longest name worth echoing back in an error */
#define CFGCHECK_SHOWN	  (CFGCHECK_MAX_NAME * 4 + 1) /* a name escaped by cfgcheck_name */

/* fmt into err (when err and errlen are set); returns -EINVAL. */
int cfgcheck_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "out of memory" into err; returns -ENOMEM. */
int cfgcheck_nomem(char *err, size_t errlen);
/* name as written, escaped, into buf (CFGCHECK_SHOWN bytes do): 0, or -1 and buf empty when
 * it looks like a credential. */
int cfgcheck_name(const char *name, char *buf, size_t len);
/* An endpoint: https://, or http:// to a loopback host only. 0 or -EINVAL + err. */
int cfgcheck_endpoint(const char *url, char *err, size_t errlen);
/* A value for field f: 0, -E2BIG when too long, -EINVAL for control characters. */
int cfgcheck_value(const char *v, enum prov_field f);
/* Why a value for f was refused with rc (cfgcheck_value's or cfgstore_set's error). */
const char *cfgcheck_why(int rc, enum prov_field f);
/* 1 when r is a valid region id, else 0. */
int cfgcheck_region(const char *r);

#endif
