/* cfgenv: the environment's variables for the configuration (config.h). */
#ifndef CODESRCFS_CFGENV_H
#define CODESRCFS_CFGENV_H

#include <stddef.h>

#include "config.h"

/* Each cloud's variables into c, over what the file said, key by key. 0, or -EINVAL/-ENOMEM
 * with one line in err naming the variable. */
int cfgenv_apply(struct config *c, char *err, size_t errlen);

#endif
