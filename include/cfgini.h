/* cfgini: the configuration file, an INI file with a section per cloud (config.h). */
#ifndef CODESRCFS_CFGINI_H
#define CODESRCFS_CFGINI_H

#include <stddef.h>

#include "config.h"

/* Read path into c (whose clouds are set) and set c->path; a missing file is fine when
 * explicit == 0. 0, or -EINVAL/-errno with one line in err naming the file and line. */
int cfgini_read(struct config *c, const char *path, int explicit, char *err, size_t errlen);

#endif
