/* cfgstore: a checked configuration value stored in its cloud's struct prov_conf
 * (config.h), and where it came from, for the messages of a refusal at mount. */
#ifndef CODESRCFS_CFGSTORE_H
#define CODESRCFS_CFGSTORE_H

#include "config.h"
#include "provider.h"

/* value (checked with cfgcheck_value) into field f of pc, replacing what was there; an empty
 * value unsets it. 0, -ENOMEM, or for a list -E2BIG/-EINVAL (an id too long, '.' or '..'). */
int cfgstore_set(struct prov_conf *pc, enum prov_field f, const char *value);
/* fmt as where the value of f came from (set), or none (!set); 0 or -ENOMEM. */
int cfgstore_origin(struct prov_conf *pc, enum prov_field f, int set, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Release every value and origin pc holds (secrets wiped); pc->desc is kept. */
void cfgstore_free(struct prov_conf *pc);

#endif
